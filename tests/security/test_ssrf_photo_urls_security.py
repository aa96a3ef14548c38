"""Photos by URL cannot be turned against the service's own network: the worker fetches them through the webhooks'
client (studio.outbound), so a URL, every redirect and the address a name resolves to are judged, and the
connection goes to the address that was judged."""

from __future__ import annotations

import ipaddress
from typing import Any, Callable, Iterator

import pytest
from flask import Flask

from jobs import process_image as job_module
from ml.runner import EncodedOutput
from studio import outbound
from studio.extensions import db
from studio.models import Task
from tests.support.network import scripted_resolver
from tests.support.photo_server import PhotoServer
from tests.support.security import png_bytes
from tests.support.studio import load_task, run_worker

pytestmark = pytest.mark.integration

# A loopback address that these tests treat as a public host: the stand-in for a photo server on the internet.
STAND_IN = "127.0.0.2"
NAME = "photos.example.com"


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Record the photos the operation runs on, instead of running a model: these tests are about the fetch."""
    photos: list[bytes] = []

    def process(operation: Any, photo: bytes, *args: Any, **kwargs: Any) -> list[EncodedOutput]:
        photos.append(photo)
        return [EncodedOutput("result", png_bytes((8, 8)), "image/png", ".png")]

    monkeypatch.setattr(job_module, "process", process)
    return photos


@pytest.fixture
def stand_in_is_public(monkeypatch: pytest.MonkeyPatch) -> None:
    """Judge STAND_IN as a public address (and every other address as before, by our rules)."""
    judge = outbound.non_public_reason

    def non_public_reason(address: outbound.IPAddress) -> str | None:
        return None if address == ipaddress.ip_address(STAND_IN) else judge(address)

    monkeypatch.setattr(outbound, "non_public_reason", non_public_reason)
    # requests-hardened's own first check refuses loopback: let it through to ours, which judges what it pinned.
    build = outbound._PublicAddressAdapter.__init__

    def adapter(self: Any, **kwargs: Any) -> None:
        build(self, allow_loopback=True, **kwargs)

    monkeypatch.setattr(outbound._PublicAddressAdapter, "__init__", adapter)


@pytest.fixture
def public_server(stand_in_is_public: None) -> Iterator[PhotoServer]:
    server = PhotoServer(STAND_IN)
    yield server
    server.close()


@pytest.fixture
def private_server() -> Iterator[PhotoServer]:
    server = PhotoServer("127.0.0.1")
    yield server
    server.close()


@pytest.fixture
def resolver(monkeypatch: pytest.MonkeyPatch) -> dict[str, list[str]]:
    return scripted_resolver(monkeypatch)


@pytest.fixture
def send(security_app: Callable[..., Flask], make_user: Callable[..., Any], make_token: Callable[..., Any]):
    """Return a sender of image_url uploads to an app with the given settings; it answers the app and the reply."""
    def post(url: str, **settings: Any) -> tuple[Flask, Any]:
        app = security_app(**settings)
        headers = make_token(make_user())
        return app, app.test_client().post("/api/v1/tasks", headers=headers, json={"image_url": url})
    return post


def _outcome(app: Flask, response: Any) -> Task:
    assert response.status_code == 202, response.get_json()
    run_worker(app)
    return load_task(app, response.get_json()["id"])


def test_a_loopback_url_is_refused_at_the_request_naming_the_field(send, private_server):
    url = private_server.serve("/photo.png", png_bytes((16, 16)))
    app, response = send(url)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_url" and error["message"].startswith("image_url must point to a public address")
    assert private_server.requests == []
    with app.app_context():
        assert db.session.query(Task).count() == 0


def test_a_name_resolving_to_the_local_server_is_refused_by_the_worker(send, private_server, resolver, ran):
    resolver[NAME] = ["127.0.0.1"]
    private_server.serve("/photo.png", png_bytes((16, 16)))
    app, response = send(private_server.url("/photo.png", NAME))

    task = _outcome(app, response)

    assert task.status == "FAILED" and ran == [] and private_server.requests == []
    assert task.error == (f"image_url: {NAME} resolves to 127.0.0.1, a loopback address; photos are only fetched "
                          "from public addresses.")


def test_the_local_server_is_fetched_when_the_setting_allows_private_addresses(send, private_server, ran):
    photo = png_bytes((16, 16))
    app, response = send(private_server.serve("/photo.png", photo), STUDIO_IMAGE_URL_ALLOW_PRIVATE=True)

    task = _outcome(app, response)

    assert task.status == "COMPLETED", task.error
    assert private_server.requests == ["/photo.png"] and len(ran) == 1
    assert (task.input_width, task.input_height, task.source_urls) == (16, 16, {"image": private_server.url(
        "/photo.png")})


@pytest.mark.parametrize("target", ["literal", "name"])
def test_a_redirect_to_a_private_address_is_refused(send, public_server, private_server, resolver, ran, target):
    resolver["internal.example.com"] = ["10.0.0.7"]
    private_server.serve("/secret.png", png_bytes((16, 16)))
    location = (private_server.url("/secret.png") if target == "literal"
                else f"http://internal.example.com:{private_server.port}/secret.png")
    app, response = send(public_server.redirect("/photo.png", location))

    task = _outcome(app, response)

    assert task.status == "FAILED" and ran == [] and private_server.requests == []
    assert public_server.requests == ["/photo.png"]
    if target == "literal":
        assert task.error == ("image_url: it redirected to a URL that must point to a public address (127.0.0.1 is "
                              "a loopback address).")
    else:
        assert task.error == ("image_url: internal.example.com resolves to 10.0.0.7, a private address; photos "
                              "are only fetched from public addresses.")


def test_redirects_are_followed_five_times_and_no_more(send, public_server, ran):
    photo = png_bytes((12, 10))
    public_server.serve("/5", photo)
    for hop in range(5):
        public_server.redirect(f"/{hop}", f"/{hop + 1}")
    app, response = send(public_server.url("/0"))
    assert _outcome(app, response).status == "COMPLETED"
    assert public_server.requests == ["/0", "/1", "/2", "/3", "/4", "/5"] and ran == [photo]

    public_server.requests.clear()
    public_server.redirect("/5", "/6")
    public_server.serve("/6", photo)
    app, response = send(public_server.url("/0"))
    task = _outcome(app, response)
    assert task.status == "FAILED" and task.error == "image_url: the URL redirected more than 5 times."
    assert public_server.requests == ["/0", "/1", "/2", "/3", "/4", "/5"]


def test_dns_rebinding_changes_nothing_the_pinned_address_is_used(
        send, public_server, private_server, resolver, ran):
    # A public answer when the address is judged, the service's own address for any later question.
    resolver[NAME] = [STAND_IN, "127.0.0.1"]
    photo = png_bytes((20, 10))
    public_server.serve("/photo.png", photo)
    private_server.serve("/photo.png", png_bytes((30, 30)))
    app, response = send(public_server.url("/photo.png", NAME))

    task = _outcome(app, response)

    assert task.status == "COMPLETED", task.error
    assert resolver["__asked__"] == [NAME]
    assert public_server.requests == ["/photo.png"] and private_server.requests == []
    assert ran == [photo] and (task.input_width, task.input_height) == (20, 10)
