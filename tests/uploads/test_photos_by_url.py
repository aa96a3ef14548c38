"""Photos by URL: image_url (and bg_image_url) instead of a file, checked without the network at the request,
fetched by a real worker from a real local HTTP server, then checked exactly as an upload; every refusal is a 400
naming the field or a FAILED task with a readable reason."""

from __future__ import annotations

import io
from typing import Any, Callable, Iterator

import numpy as np
import pytest
from flask import Flask
from PIL import Image

from jobs import process_image as job_module
from ml.runner import EncodedOutput
from studio.extensions import db
from studio.models import Task
from studio.storage import get_storage
from tests.support.photo_server import Answer, PhotoServer
from tests.support.security import png_bytes
from tests.support.studio import load_task, run_worker

pytestmark = pytest.mark.integration

# The local photo server is on loopback: these tests are about the fetch and the checks after it, the refusal of
# private addresses is tests/security/test_ssrf_photo_urls_security.py's.
PRIVATE_ALLOWED = {"STUDIO_IMAGE_URL_ALLOW_PRIVATE": True}
GREEN = (0, 200, 0)


@pytest.fixture
def server() -> Iterator[PhotoServer]:
    photo_server = PhotoServer()
    yield photo_server
    photo_server.close()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(**PRIVATE_ALLOWED)


@pytest.fixture
def ran(monkeypatch: pytest.MonkeyPatch) -> list[bytes]:
    """Record the photos the operation runs on instead of running a model."""
    photos: list[bytes] = []

    def process(operation: Any, photo: bytes, *args: Any, **kwargs: Any) -> list[EncodedOutput]:
        photos.append(photo)
        return [EncodedOutput("result", png_bytes((8, 8)), "image/png", ".png")]

    monkeypatch.setattr(job_module, "process", process)
    return photos


def _by_url(client, headers, url: str, **fields: Any):
    return client.post("/api/v1/tasks", headers=headers, json={"image_url": url, **fields})


def _finished(app: Flask, response) -> Task:
    assert response.status_code == 202, response.get_json()
    run_worker(app)
    return load_task(app, response.get_json()["id"])


def _jpeg_with_exif(size: tuple[int, int] = (40, 30)) -> bytes:
    image = Image.new("RGB", size, (90, 120, 200))
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", exif=exif)
    return buffer.getvalue()


@pytest.mark.parametrize("fields, words", [
    ({"image_url": "ftp://photos.example.com/a.jpg"}, "image_url must be an http:// or https:// URL"),
    ({"image_url": "http://photos.example.com/a b.jpg"}, "image_url must be an ASCII URL without spaces"),
    ({"image_url": "https://user:pw@photos.example.com/a.jpg"}, "image_url must not hold a user name"),
    ({"image_url": "https://photos.example.com/a.jpg", "bg_image_url": "file:///etc/passwd"},
     "bg_image_url must be an http:// or https:// URL"),
    ({"image_url": 7}, "image_url: give the URL of a JPEG, PNG or WebP photo"),
])
def test_a_url_that_cannot_be_fetched_is_a_400_naming_the_field(make_app, client, headers, fields, words):
    app = make_app()
    response = app.test_client().post("/api/v1/tasks", headers=headers, json=fields)
    assert response.status_code == 400, response.get_json()
    error = response.get_json()["error"]
    assert error["code"] == "invalid_url" and words in error["message"], error
    with app.app_context():
        assert db.session.query(Task).count() == 0


def test_a_file_and_a_url_together_are_refused(client, headers, server):
    response = client.post("/api/v1/tasks", headers=headers, content_type="multipart/form-data", data={
        "image": (io.BytesIO(png_bytes()), "a.png"), "image_url": server.url("/a.png")})
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == ("image_url: send the photo as a file or as a URL, not "
                                                       "both.")


def test_a_json_body_without_image_url_names_it(client, headers):
    response = client.post("/api/v1/tasks", headers=headers, json={"operation": "remove_background"})
    assert response.status_code == 400
    assert response.get_json()["error"]["message"].startswith("image_url: give the photo's URL")


def test_the_worker_fetches_the_photo_and_cleans_it_like_an_upload(app, client, headers, server, ran):
    photo = _jpeg_with_exif()
    url = server.serve("/shots/holiday.jpg?size=large", photo, "image/jpeg")
    # A multipart form without a file works as well as JSON.
    response = client.post("/api/v1/tasks", headers=headers, content_type="multipart/form-data",
                           data={"image_url": url})
    body = response.get_json()
    assert response.status_code == 202, body
    assert body["source_urls"] == {"image": url} and body["original_filename"] == "holiday.jpg"
    assert server.requests == []  # the web request fetched nothing

    task = _finished(app, response)

    assert task.status == "COMPLETED", task.error
    assert server.requests == ["/shots/holiday.jpg?size=large"]
    stored = get_storage(app).get(task.input_key)
    assert task.input_key.endswith(".jpg") and task.inputs_clean and ran == [stored]
    assert b"SecretCam" in photo and b"SecretCam" not in stored  # the clean copy, as an upload's
    assert (task.input_width, task.input_height, task.input_size) == (40, 30, len(stored))
    assert task.work_pixels == 40 * 30


@pytest.mark.parametrize("answer, reason", [
    (Answer(404, b"gone"), "image_url: the URL answered 404 Not Found."),
    (Answer(500, b"oops"), "image_url: the URL answered 500 Internal Server Error."),
    (Answer(200, b"<html>hello</html>", {"Content-Type": "text/html"}),
     "image_url: not an image: the URL sent text/html, not a JPEG, PNG or WebP photo."),
    (Answer(200, b"", {"Content-Type": "image/png"}), "image_url: the URL answered with an empty body."),
    (Answer(200, b"x" * (20 * 1024 * 1024 + 1), {"Content-Type": "image/png"}),
     "image_url: the photo is larger than 20 MB."),
    # No Content-Length: the body is read until the cap, then refused.
    (Answer(200, b"x" * (20 * 1024 * 1024 + 1), {"Content-Type": "image/png", "Content-Length": ""}),
     "image_url: the photo is larger than 20 MB."),
], ids=["404", "500", "not-an-image", "empty", "too-large", "too-large-undeclared"])
def test_what_the_url_answers_instead_of_a_photo_fails_the_task_with_a_reason(
        app, client, headers, server, ran, answer, reason):
    server.answers["/photo.png"] = answer
    task = _finished(app, _by_url(client, headers, server.url("/photo.png")))
    assert (task.status, task.error) == ("FAILED", reason)
    assert ran == [] and task.input_key == "" and task.attempts == 1


def test_a_fetched_photo_over_the_pixel_limit_fails_as_an_upload_would(make_app, make_user, make_token, server, ran):
    app = make_app(STUDIO_MAX_PIXELS=1000, **PRIVATE_ALLOWED)
    headers = make_token(make_user())
    task = _finished(app, _by_url(app.test_client(), headers, server.serve("/big.png", png_bytes((40, 30)))))
    assert task.status == "FAILED", task.error
    assert task.error.startswith("image_url: The image is 40x30 (1,200 pixels); the limit is 1,000"), task.error
    assert ran == []


def test_the_plans_megapixels_are_checked_once_the_photos_size_is_known(
        make_app, make_user, make_token, server, ran):
    app = make_app(STUDIO_PLANS={"tiny": {"megapixels_per_month": 0.001}}, STUDIO_DEFAULT_PLAN="tiny",
                   **PRIVATE_ALLOWED)
    headers = make_token(make_user())
    client = app.test_client()
    small = _finished(app, _by_url(client, headers, server.serve("/small.png", png_bytes((20, 20)))))
    assert small.status == "COMPLETED", small.error
    large = _finished(app, _by_url(client, headers, server.serve("/large.png", png_bytes((40, 30)))))
    assert large.status == "FAILED" and "Your plan (tiny) allows 0" in large.error, large.error
    assert len(ran) == 1


def test_a_task_cancelled_before_its_job_ran_fetches_nothing(app, client, headers, server, ran):
    response = _by_url(client, headers, server.serve("/photo.png", png_bytes()))
    task_id = response.get_json()["id"]
    assert client.post(f"/api/v1/tasks/{task_id}/cancel", headers=headers).status_code == 200
    run_worker(app)
    assert server.requests == [] and load_task(app, task_id).status == "CANCELLED"


def test_a_photo_and_its_background_by_url_end_to_end_with_the_real_model(
        app, client, headers, server, photo_bytes, model_ready):
    background = io.BytesIO()
    Image.new("RGB", (64, 48), GREEN).save(background, "PNG")
    photo = photo_bytes("horse.jpg")
    response = _by_url(client, headers, server.serve("/horse.jpg", photo, "image/jpeg"),
                       bg_image_url=server.serve("/green.png", background.getvalue()), format="jpeg")
    assert response.get_json().get("options", {}).get("bg_image") is True, response.get_json()

    task = _finished(app, response)

    assert task.status == "COMPLETED", task.error
    assert sorted(server.requests) == ["/green.png", "/horse.jpg"]
    assert set(task.attachments) == {"bg_image"}
    result = Image.open(io.BytesIO(client.get(f"/api/v1/tasks/{task.id}/result", headers=headers).data))
    assert result.format == "JPEG" and result.size == Image.open(io.BytesIO(photo)).size
    corner = np.asarray(result, dtype=np.int16)[2, 2]
    assert np.abs(corner - GREEN).max() <= 8, corner


def test_an_attached_file_of_a_url_task_cancelled_before_its_job_ran_is_deleted(app, client, headers, server, ran):
    response = client.post("/api/v1/tasks", headers=headers, content_type="multipart/form-data", data={
        "image_url": server.serve("/photo.png", png_bytes()), "bg_image": (io.BytesIO(png_bytes((8, 8))), "bg.png")})
    assert response.status_code == 202, response.get_json()
    task_id = response.get_json()["id"]
    key = load_task(app, task_id).attachments["bg_image"]["key"]
    assert get_storage(app).exists(key)
    client.post(f"/api/v1/tasks/{task_id}/cancel", headers=headers)
    run_worker(app)
    assert server.requests == [] and not get_storage(app).exists(key)
