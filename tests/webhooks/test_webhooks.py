"""Webhooks: a signed call per finished task to a real HTTP receiver, retried until accepted, never lost."""

from __future__ import annotations

import io
import json
import socket
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from rq.job import Job, JobStatus
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from studio import queue
from jobs import webhooks as webhooks_job
from jobs.maintenance import reconcile_tasks
from studio.extensions import db
from studio.models import Task
from studio.queue import get_redis, webhook_job_id
from studio.storage import get_storage
from studio.webhooks import new_secret
from tests.support.studio import load_task, run_worker, upload
from tests.support.receiver import Receiver

PHOTO = "rifle2.jpeg"


@pytest.fixture
def hook_app(make_app):
    """The app allowed to call the local receiver, with two immediate retries of a webhook."""
    return make_app(STUDIO_WEBHOOK_ALLOW_PRIVATE=True, STUDIO_WEBHOOK_RETRIES=2, STUDIO_WEBHOOK_RETRY_INTERVALS=[0],
                    STUDIO_WEBHOOK_TIMEOUT_SECONDS=5, STUDIO_PENDING_GRACE_SECONDS=0)


@pytest.fixture
def api(hook_app, make_user, make_token):
    """Return a test client and the bearer header of a new account."""
    return hook_app.test_client(), make_token(make_user())


def _upload(hook_app, api, photo_bytes, receiver: Receiver) -> str:
    client, headers = api
    response = upload(client, headers, photo_bytes(PHOTO), filename=PHOTO, webhook_url=receiver.url)
    assert response.status_code == 202, response.get_data(as_text=True)
    webhook = response.get_json()["webhook"]
    assert webhook == {"url": receiver.url, "status": "PENDING", "attempts": 0, "last_response": None,
                       "delivered_at": None}
    return response.get_json()["id"]


def _webhook(api, task_id: str) -> dict[str, Any]:
    client, headers = api
    return client.get(f"/api/v1/tasks/{task_id}", headers=headers).get_json()["webhook"]


def _secret(api) -> str:
    client, headers = api
    return client.get("/api/v1/webhook-secret", headers=headers).get_json()["secret"]


def test_a_completed_task_calls_its_webhook_once_signed_as_standard_webhooks_says(
        hook_app, api, photo_bytes, receiver, model_ready):
    task_id = _upload(hook_app, api, photo_bytes, receiver)
    assert receiver.calls == []  # called when the task is finished, not before

    run_worker(hook_app)

    [call] = receiver.calls
    assert call["path"] == "/hooks/photo?source=studio"
    assert call["headers"]["Content-Type"] == "application/json"
    secret = _secret(api)
    assert secret.startswith("whsec_")
    payload = Webhook(secret).verify(call["body"], call["headers"])
    assert payload["type"] == "task.completed"
    assert payload["data"]["id"] == task_id and payload["data"]["status"] == "COMPLETED"
    assert payload["data"]["progress"] == 100 and payload["data"]["error"] is None
    with pytest.raises(WebhookVerificationError):
        Webhook(new_secret()).verify(call["body"], call["headers"])
    tampered = call["body"].replace(b"task.completed", b"task.failed")
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(tampered, call["headers"])

    webhook = _webhook(api, task_id)
    assert (webhook["status"], webhook["attempts"], webhook["last_response"]) == ("DELIVERED", 1, "HTTP 204")
    assert webhook["delivered_at"] is not None
    # Nothing left to do: the reconciler does not call it again.
    assert reconcile_tasks()["webhooks"] == 0
    run_worker(hook_app)
    assert len(receiver.calls) == 1


def test_a_refusing_receiver_gets_the_same_event_again_until_it_accepts(
        hook_app, api, photo_bytes, receiver, model_ready):
    receiver.answers = [500, 503, 200]
    task_id = _upload(hook_app, api, photo_bytes, receiver)

    run_worker(hook_app)

    assert len(receiver.calls) == 3
    # One event, three tries: the same webhook-id and body each time, so the receiver can drop repeats.
    assert len({call["headers"]["webhook-id"] for call in receiver.calls}) == 1
    assert len({call["body"] for call in receiver.calls}) == 1
    webhook = _webhook(api, task_id)
    assert (webhook["status"], webhook["attempts"], webhook["last_response"]) == ("DELIVERED", 3, "HTTP 200")
    assert load_task(hook_app, task_id).status == "COMPLETED"


def test_a_receiver_that_never_accepts_leaves_a_failed_webhook_and_a_completed_task(
        hook_app, api, photo_bytes, receiver, model_ready):
    receiver.answers = [502]
    task_id = _upload(hook_app, api, photo_bytes, receiver)

    run_worker(hook_app)

    assert len(receiver.calls) == 3  # the first call and STUDIO_WEBHOOK_RETRIES=2 retries
    webhook = _webhook(api, task_id)
    assert (webhook["status"], webhook["attempts"], webhook["last_response"]) == ("FAILED", 3, "HTTP 502")
    assert webhook["delivered_at"] is None
    assert load_task(hook_app, task_id).status == "COMPLETED"
    assert reconcile_tasks()["webhooks"] == 0  # given up: not started again


def test_410_gone_stops_the_calls_at_once(hook_app, api, photo_bytes, receiver, model_ready):
    receiver.answers = [410]
    task_id = _upload(hook_app, api, photo_bytes, receiver)

    run_worker(hook_app)

    assert len(receiver.calls) == 1
    webhook = _webhook(api, task_id)
    assert (webhook["status"], webhook["attempts"]) == ("FAILED", 1)
    assert webhook["last_response"].startswith("HTTP 410")


def test_an_unreachable_receiver_is_retried_then_given_up(hook_app, api, photo_bytes, receiver, model_ready):
    task_id = _upload(hook_app, api, photo_bytes, receiver)
    receiver.close()  # nothing listens on the port any more

    run_worker(hook_app)

    webhook = _webhook(api, task_id)
    assert (webhook["status"], webhook["attempts"], webhook["last_response"]) == ("FAILED", 3, "could not connect")


def test_a_failed_task_sends_task_failed_with_its_reason(hook_app, api, photo_bytes, receiver, model_ready):
    task_id = _upload(hook_app, api, photo_bytes, receiver)
    # The photo vanishes from storage before the worker gets to it: the task fails for good.
    get_storage(hook_app).delete(load_task(hook_app, task_id).input_key)

    run_worker(hook_app)

    [call] = receiver.calls
    payload = Webhook(_secret(api)).verify(call["body"], call["headers"])
    assert payload["type"] == "task.failed"
    assert payload["data"]["status"] == "FAILED"
    assert "no longer in storage" in payload["data"]["error"]
    assert _webhook(api, task_id)["status"] == "DELIVERED"


def test_a_webhook_whose_job_was_lost_is_queued_again_by_the_reconciler(
        hook_app, api, photo_bytes, receiver, model_ready, monkeypatch):
    # As if Redis went away between the task's commit and the webhook's enqueue.
    monkeypatch.setattr(queue, "enqueue_webhook", lambda task: False)
    task_id = _upload(hook_app, api, photo_bytes, receiver)
    run_worker(hook_app)
    assert load_task(hook_app, task_id).status == "COMPLETED"
    assert receiver.calls == [] and _webhook(api, task_id)["status"] == "PENDING"

    assert reconcile_tasks()["webhooks"] == 1
    assert reconcile_tasks()["webhooks"] == 0  # its job is queued now: not a second one
    run_worker(hook_app)

    assert len(receiver.calls) == 1
    assert _webhook(api, task_id)["status"] == "DELIVERED"


def test_delivery_refuses_a_host_name_that_resolves_to_a_private_address(
        make_app, make_user, make_token, photo_bytes, receiver, model_ready, monkeypatch):
    app = make_app(STUDIO_WEBHOOK_RETRIES=2, STUDIO_WEBHOOK_RETRY_INTERVALS=[0])  # private addresses not allowed
    client, headers = app.test_client(), make_token(make_user())
    port = receiver.server.server_port
    url = f"http://hooks.example.com:{port}/hook"
    response = upload(client, headers, photo_bytes(PHOTO), filename=PHOTO, webhook_url=url)
    assert response.status_code == 202  # a public-looking name: its addresses are checked at delivery
    task_id = response.get_json()["id"]
    # The name points at the service's own machine, as a DNS rebinding attack or a careless record would.
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: str, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host == "hooks.example.com":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port))]
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)

    run_worker(app)

    assert receiver.calls == []
    webhook = client.get(f"/api/v1/tasks/{task_id}", headers=headers).get_json()["webhook"]
    assert (webhook["status"], webhook["attempts"]) == ("FAILED", 1)  # refused, not retried
    assert webhook["last_response"] == ("not sent: hooks.example.com resolves to 127.0.0.1, a loopback address; "
                                        "webhooks only call public addresses")


@pytest.mark.parametrize("url, message", [
    ("ftp://hooks.example.com/x", "must be an http:// or https:// URL"),
    ("hooks.example.com/x", "must be an http:// or https:// URL"),
    ("https://", "must be an http:// or https:// URL"),
    ("http://127.0.0.1:8080/hook", "(127.0.0.1 is a loopback address)"),
    ("http://localhost/hook", "not localhost"),
    ("http://api.localhost/hook", "not localhost"),
    ("http://10.1.2.3/hook", "(10.1.2.3 is a private address)"),
    ("http://169.254.169.254/latest/meta-data/", "(169.254.169.254 is a link-local address)"),
    ("http://[::1]/hook", "(::1 is a loopback address)"),
    ("http://[::ffff:192.168.0.1]/hook", "is a private address"),
    ("http://0.0.0.0/hook", "(0.0.0.0 is "),
    ("https://user:secret@hooks.example.com/", "must not hold a user name or password"),
    ("https://hooks.example.com:99999/", "is not a valid URL"),
    ("https://hooks.example.com/a b", "without spaces"),
    ("https://hôoks.example.com/", "ASCII"),
    ("https://hooks.example.com/" + "x" * 2100, "is too long"),
])
def test_a_bad_webhook_url_is_refused_before_anything_is_stored(
        make_app, make_user, make_token, photo_bytes, model_ready, url, message):
    app = make_app()
    client, headers = app.test_client(), make_token(make_user())

    response = upload(client, headers, photo_bytes(PHOTO), filename=PHOTO, webhook_url=url)

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_webhook_url" and message in error["message"], error
    with app.app_context():
        assert db.session.query(Task).count() == 0
    assert not [path for path in Path(app.config["STUDIO_STORAGE_DIR"]).rglob("*") if path.is_file()]


def test_a_repeated_webhook_url_is_refused(make_app, make_user, make_token, photo_bytes, model_ready):
    app = make_app()
    client, headers = app.test_client(), make_token(make_user())
    response = client.post("/api/v1/tasks", headers=headers, content_type="multipart/form-data", data={
        "image": (io.BytesIO(photo_bytes(PHOTO)), PHOTO),
        "webhook_url": ["https://a.example.com/", "https://b.example.com/"]})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_webhook_url"


def test_a_task_without_a_webhook_says_so_and_never_calls_anything(
        hook_app, api, photo_bytes, receiver, model_ready):
    client, headers = api
    response = upload(client, headers, photo_bytes(PHOTO), filename=PHOTO)
    assert response.status_code == 202 and response.get_json()["webhook"] is None
    run_worker(hook_app)
    assert receiver.calls == []
    assert _secret(api) is None  # no secret is made for an account that never used a webhook


def test_the_signing_secret_can_be_read_and_replaced_through_the_api(
        hook_app, api, photo_bytes, receiver, model_ready):
    client, headers = api
    assert client.get("/api/v1/webhook-secret", headers=headers).get_json() == {"secret": None}
    rotated = client.post("/api/v1/webhook-secret", headers=headers)
    assert rotated.status_code == 201
    first = rotated.get_json()["secret"]
    assert first.startswith("whsec_") and _secret(api) == first
    second = client.post("/api/v1/webhook-secret", headers=headers).get_json()["secret"]
    assert second != first and _secret(api) == second

    _upload(hook_app, api, photo_bytes, receiver)
    run_worker(hook_app)
    [call] = receiver.calls
    Webhook(second).verify(call["body"], call["headers"])  # the upload kept the secret, signed with it
    with pytest.raises(WebhookVerificationError):
        Webhook(first).verify(call["body"], call["headers"])
    assert json.loads(call["body"])["type"] == "task.completed"
    assert client.get("/api/v1/webhook-secret").status_code == 401


def test_a_task_the_reconciler_fails_sends_task_failed(hook_app, api, photo_bytes, receiver, model_ready):
    task_id = _upload(hook_app, api, photo_bytes, receiver)
    # As after a worker vanished on the last attempt: PROCESSING, a silent heartbeat, no job left in Redis.
    with hook_app.app_context():
        task = db.session.get(Task, task_id)
        task.status, task.attempts = "PROCESSING", 1 + hook_app.config["STUDIO_JOB_RETRIES"]
        task.heartbeat_at = task.updated_at = datetime.now(timezone.utc) - timedelta(hours=1)
        db.session.commit()
        Job.fetch(task_id, connection=get_redis()).delete()

    assert reconcile_tasks()["failed"] == 1
    run_worker(hook_app)

    [call] = receiver.calls
    payload = Webhook(_secret(api)).verify(call["body"], call["headers"])
    assert payload["type"] == "task.failed" and "stopped unexpectedly" in payload["data"]["error"]
    assert _webhook(api, task_id)["status"] == "DELIVERED"


def test_a_webhook_rq_gave_up_on_without_recording_it_is_marked_failed_by_the_reconciler(
        hook_app, api, photo_bytes, receiver, model_ready, monkeypatch):
    receiver.answers = [500]
    # As if the failure callback could not reach the database when RQ ran it.
    monkeypatch.setattr(webhooks_job, "give_up", lambda task_id: False)
    task_id = _upload(hook_app, api, photo_bytes, receiver)
    run_worker(hook_app)
    assert len(receiver.calls) == 3 and _webhook(api, task_id)["status"] == "PENDING"
    with hook_app.app_context():
        assert Job.fetch(webhook_job_id(task_id), connection=get_redis()).get_status() == JobStatus.FAILED

    assert reconcile_tasks()["webhooks"] == 0  # not started again with a fresh budget...
    webhook = _webhook(api, task_id)
    assert (webhook["status"], webhook["last_response"]) == ("FAILED", "HTTP 500")  # ...but recorded as given up
    run_worker(hook_app)
    assert len(receiver.calls) == 3
