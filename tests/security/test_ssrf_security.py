"""Webhooks cannot be turned against the service's own network: one strict parse, one pinned resolution, the
connected address judged after unwrapping embedded IPv4, a capped answer, and a queue of their own."""

from __future__ import annotations

import ipaddress
from typing import Any, Callable

import pytest
from flask import Flask
from redis import Redis
from rq.job import Job, JobStatus

from jobs.webhooks import DeliveryFailed, deliver_webhook
from studio.extensions import db
from studio.models import Task, WebhookStatus
from studio.outbound import UnsafeURL, check_url, non_public_reason
from tests.support.studio import load_task, run_worker, upload
from tests.support.network import scripted_resolver

pytestmark = pytest.mark.integration

DIFFERENTIAL_HOST = "127.0.0.1\\x.attacker.test"
PUBLIC_ADDRESS = "93.184.216.34"
# Every way to write an address we must not call, and what it is once unwrapped.
NON_PUBLIC = [
    ("127.0.0.1", "loopback"), ("10.1.2.3", "private"), ("169.254.169.254", "link-local"), ("0.0.0.0", ""),
    ("100.64.0.7", "carrier-grade NAT"), ("192.0.0.8", ""), ("198.18.0.1", ""), ("224.0.0.1", "multicast"),
    ("::1", "loopback"), ("::ffff:127.0.0.1", "loopback address inside an IPv6 address"),
    ("::127.0.0.1", "loopback address inside an IPv6 address"),  # IPv4-compatible
    ("64:ff9b::7f00:1", "loopback address inside an IPv6 address"),  # NAT64 of 127.0.0.1
    ("64:ff9b::a00:1", "private address inside an IPv6 address"),  # NAT64 of 10.0.0.1
    ("64:ff9b:1::a9fe:a9fe", "link-local address inside an IPv6 address"),  # local-use NAT64 of the metadata IP
    ("2002:7f00:1::", "loopback address inside an IPv6 address"),  # 6to4 of 127.0.0.1
    ("2002:a9fe:a9fe::1", "link-local address inside an IPv6 address"),  # 6to4 of 169.254.169.254
    # Teredo: server 65.54.227.120 (public), client 10.0.0.1 stored XOR 0xffffffff in the last 32 bits.
    ("2001:0:4136:e378:8000:63bf:f5ff:fffe", "private address inside an IPv6 address"),
    ("fec0::1", "site-local"), ("fc00::1", "private"), ("fe80::1", "link-local"), ("ff02::1", "multicast"),
]
PUBLIC = ["93.184.216.34", "2606:2800:220:1:248:1893:25c8:1946", "2002:5db8:d822::1", "64:ff9b::5db8:d822"]


def url_host(address: str) -> str:
    """Return how an address is written as a URL's host."""
    return f"[{address}]" if ":" in address else address


@pytest.mark.parametrize("address, kind", NON_PUBLIC)
def test_every_non_public_address_is_refused_whatever_its_spelling(address, kind):
    reason = non_public_reason(ipaddress.ip_address(address))
    assert reason and kind in reason, (address, reason)
    with pytest.raises(UnsafeURL, match="must point to a public address"):
        check_url(f"http://{url_host(address)}:8080/hook", allow_private=False)


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_and_ipv6_forms_of_public_ipv4_are_allowed(address):
    assert non_public_reason(ipaddress.ip_address(address)) is None
    assert check_url(f"https://{url_host(address)}/hook", allow_private=False).host == address


@pytest.mark.parametrize("url, words", [
    (f"http://{DIFFERENTIAL_HOST}/", "characters RFC 3986 does not allow"),
    ("http://hooks.example.com\\@127.0.0.1/", "characters RFC 3986 does not allow"),
    ("http://hooks.example.com/a\tb", "control characters"),
    ("http://hooks.example.com:80 /", "without spaces"),
    ("http://hooks.exampl%65.com/", "the host must be a DNS name"),
    ("http://127.0.0.1%2f@hooks.example.com/", "must not hold a user name"),
    ("http://hooks.example.com/%zz", "characters RFC 3986 does not allow"),
    ("http://hooks.example.com/<script>", "characters RFC 3986 does not allow"),
    ("http://2130706433/", "four decimal numbers"),
    ("http://0x7f.0.0.1/", "four decimal numbers"),
    ("http://127.1/", "four decimal numbers"),
    ("http://[fe80::1%25eth0]/", "zone identifiers"),
    ("http://hooks_internal/", "the host must be a DNS name"),
    ("http://localhost./", "not localhost"),
])
def test_urls_that_parsers_could_read_differently_are_refused_at_upload(security_app, make_user, make_token, url,
                                                                        words):
    app = security_app()
    client, headers = app.test_client(), make_token(make_user())
    response = upload(client, headers, _png(), webhook_url=url)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "invalid_webhook_url" and words in error["message"], error
    with app.app_context():
        assert db.session.query(Task).count() == 0


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    """Answer DNS questions for chosen names (as an attacker's DNS would); every question is recorded."""
    return scripted_resolver(monkeypatch)


@pytest.fixture
def stored_webhook(app: Flask, make_user: Callable[..., Any], make_stored_task) -> Callable[[str], str]:
    """Return a maker of finished tasks whose webhook (any URL, as if stored before today's checks) is due."""
    def make(url: str) -> str:
        task_id = make_stored_task(make_user().id)
        with app.app_context():
            task = db.session.get(Task, task_id)
            task.webhook_url, task.webhook_status = url, WebhookStatus.PENDING.value
            db.session.commit()
        return task_id
    return make


@pytest.fixture
def app(security_app: Callable[..., Flask]) -> Flask:
    """An app whose webhooks may only call public addresses, with short timeouts."""
    return security_app(STUDIO_WEBHOOK_TIMEOUT_SECONDS=2)


def test_a_parser_differential_url_stored_earlier_is_never_called(app, stored_webhook, receiver, resolver):
    # glibc resolves the whole string as a name (the attacker's wildcard DNS answers with a public address);
    # urllib3 ends the host at the backslash and would POST to 127.0.0.1, the receiver's address.
    resolver[DIFFERENTIAL_HOST] = [PUBLIC_ADDRESS]
    task_id = stored_webhook(f"http://{DIFFERENTIAL_HOST}:{receiver.server.server_port}/")

    deliver_webhook(task_id)

    assert receiver.calls == []
    task = load_task(app, task_id)
    assert task.webhook_status == "FAILED" and task.webhook_response.startswith("not sent: the URL is not a valid URL")


def test_the_name_is_resolved_once_and_the_call_goes_to_the_address_that_was_judged(
        app, stored_webhook, receiver, resolver):
    # DNS rebinding: a public answer for the check, then the service's own address for the connection.
    resolver["hooks.example.com"] = [PUBLIC_ADDRESS, "127.0.0.1"]
    task_id = stored_webhook(f"http://hooks.example.com:{receiver.server.server_port}/hook")

    with pytest.raises(DeliveryFailed):  # the public address does not answer here: retried later
        deliver_webhook(task_id)

    assert receiver.calls == []
    assert resolver["__asked__"] == ["hooks.example.com"]


@pytest.mark.parametrize("address, kind", [entry for entry in NON_PUBLIC if entry[1]])
def test_a_name_resolving_to_any_non_public_address_is_not_called(
        app, stored_webhook, receiver, resolver, address, kind):
    resolver["hooks.example.com"] = [address]
    task_id = stored_webhook(f"http://hooks.example.com:{receiver.server.server_port}/hook")

    deliver_webhook(task_id)

    assert receiver.calls == []
    task = load_task(app, task_id)
    assert (task.webhook_status, task.webhook_attempts) == ("FAILED", 1)
    # requests-hardened unwraps IPv4-mapped addresses itself, so the address said may be the inner one.
    assert task.webhook_response.startswith("not sent: hooks.example.com resolves to ")
    assert kind.split(" inside")[0] in task.webhook_response
    assert task.webhook_response.endswith("; webhooks only call public addresses")


def test_a_delivery_reads_only_a_few_kilobytes_of_an_endless_answer(security_app, stored_webhook, receiver):
    app = security_app(STUDIO_WEBHOOK_ALLOW_PRIVATE=True, STUDIO_WEBHOOK_TIMEOUT_SECONDS=5)
    receiver.endless_answer = True
    task_id = stored_webhook(receiver.url)

    deliver_webhook(task_id)

    assert load_task(app, task_id).webhook_status == "DELIVERED"
    assert len(receiver.calls) == 1
    # The receiver streamed until the caller hung up: what it got out is its socket buffers, not the gigabyte.
    assert receiver.bytes_sent < 64 * 1024 * 1024


def test_webhooks_wait_on_their_own_queue_so_photos_never_queue_behind_them(
        security_app, make_user, make_token, monkeypatch):
    app = security_app(STUDIO_WEBHOOK_ALLOW_PRIVATE=True)
    from jobs import process_image
    from ml.runner import EncodedOutput

    monkeypatch.setattr(process_image, "process",
                        lambda *args, **kwargs: [EncodedOutput("result", b"\x89PNG fake", "image/png", ".png")])
    client, headers = app.test_client(), make_token(make_user())
    ids = [upload(client, headers, _png(), webhook_url="https://hooks.example.com/slow").get_json()["id"]
           for _ in range(2)]

    run_worker(app, queues=[app.config["STUDIO_QUEUE"]])  # a processing worker, no webhook worker at all

    assert [load_task(app, task_id).status for task_id in ids] == ["COMPLETED", "COMPLETED"]
    redis = Redis.from_url(app.config["REDIS_URL"])
    waiting = [job_id.decode() for job_id in redis.lrange(f"rq:queue:{app.config['STUDIO_WEBHOOK_QUEUE']}", 0, -1)]
    # Both deliveries wait for a webhook worker: the first on the webhook queue, the second (beyond the account's
    # STUDIO_WEBHOOK_ACCOUNT_CONCURRENCY) in that queue's concurrency registry.
    assert waiting == [f"webhook-{ids[0]}"]
    second = Job.fetch(f"webhook-{ids[1]}", connection=redis)
    assert (second.origin, second.get_status()) == (app.config["STUDIO_WEBHOOK_QUEUE"], JobStatus.RATE_LIMITED)
    assert redis.llen(f"rq:queue:{app.config['STUDIO_QUEUE']}") == 0


def _png() -> bytes:
    from tests.support.security import png_bytes

    return png_bytes((32, 24))
