"""Uploads through the API: validation before anything is stored or queued, storage keys, the queue entry."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image
from redis import Redis
from rq.job import Job

from studio.storage import get_storage
from tests.support.studio import load_task, upload

pytestmark = pytest.mark.integration


def _png(width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), "white").save(buffer, "PNG")
    return buffer.getvalue()


def _stored_files(app) -> list[Path]:
    root = Path(app.config["STUDIO_STORAGE_DIR"])
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def _queued_ids(app) -> list[str]:
    return Redis.from_url(app.config["REDIS_URL"]).lrange(f"rq:queue:{app.config['STUDIO_QUEUE']}", 0, -1)


def test_upload_stores_photo_under_generated_key_and_queues_job(app, client, headers, user, photo_bytes):
    data = photo_bytes("horse.jpg")
    response = upload(client, headers, data, filename="../../etc/My Horse.jpg", format="webp")
    assert response.status_code == 202, response.get_json()
    body = response.get_json()
    assert body["status"] == "PENDING" and body["result_url"] is None
    assert body["original_filename"] == "My Horse.jpg"
    assert body["options"]["format"] == "webp"
    assert response.headers["Location"].endswith(f"/api/v1/tasks/{body['id']}")
    task = load_task(app, body["id"])
    assert task.input_key == f"inputs/{user.id}/{body['id']}.jpg"
    assert (task.input_content_type, task.input_width, task.input_height) == ("image/jpeg", *Image.open(
        io.BytesIO(data)).size)
    with app.app_context():
        # A clean copy is stored: the upload cut of its metadata and trailing bytes, or re-encoded where its
        # pixels must change (tests/uploads checks what it holds).
        stored = get_storage().get(task.input_key)
        assert Image.open(io.BytesIO(stored)).size == Image.open(io.BytesIO(data)).size
        assert task.input_size == len(stored)
        job = Job.fetch(body["id"], connection=Redis.from_url(app.config["REDIS_URL"]))
    assert job.func_name == "jobs.process_image.process_task" and job.args == (body["id"],)
    assert job.retries_left == app.config["STUDIO_JOB_RETRIES"]
    assert job.timeout == app.config["STUDIO_JOB_TIMEOUT"]
    assert _queued_ids(app) == [body["id"].encode()]


def test_content_type_comes_from_the_bytes_not_the_name(app, client, headers, photo_bytes):
    response = upload(client, headers, photo_bytes("girl.png"), filename="girl.jpg")
    assert response.status_code == 202
    task = load_task(app, response.get_json()["id"])
    assert task.input_content_type == "image/png" and task.input_key.endswith(".png")


@pytest.mark.parametrize("data, filename, status, code", [
    (b"", "empty.jpg", 400, "empty_file"),
    (b"GIF89a not really a photo", "photo.jpg", 415, "unsupported_image"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "photo.png", 415, "unsupported_image"),
])
def test_bad_files_are_refused_before_storing_or_queueing(app, client, headers, data, filename, status, code):
    response = upload(client, headers, data, filename=filename)
    assert response.status_code == status
    assert response.get_json()["error"]["code"] == code
    assert _stored_files(app) == [] and _queued_ids(app) == []


def test_missing_image_field_is_400(app, client, headers):
    response = client.post("/api/v1/tasks", headers=headers, data={"format": "png"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "missing_file"


def test_too_many_pixels_is_refused(make_app, make_user, make_token):
    app = make_app(STUDIO_MAX_PIXELS=100 * 100)
    headers = make_token(make_user())
    response = upload(app.test_client(), headers, _png(101, 100), filename="wide.png")
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "too_many_pixels" and "10,000" in error["message"]
    assert _stored_files(app) == []
    assert upload(app.test_client(), headers, _png(100, 100)).status_code == 202


def test_request_over_max_content_length_is_json_413(make_app, make_user, make_token, photo_bytes):
    app = make_app(MAX_CONTENT_LENGTH=50_000)
    headers = make_token(make_user())
    data = photo_bytes("horse.jpg")
    assert len(data) > 50_000
    response = upload(app.test_client(), headers, data)
    assert response.status_code == 413
    assert response.get_json()["error"]["code"] == "request_entity_too_large"
    assert _stored_files(app) == [] and _queued_ids(app) == []


@pytest.mark.parametrize("options, field", [
    ({"colour": "red"}, "colour"),
    ({"format": "gif"}, "format"),
    ({"model": "no-such-model"}, "model"),
    ({"blur": "-1"}, "blur"),
    ({"format": "jpeg"}, "format"),
])
def test_invalid_options_are_400_and_nothing_is_stored(app, client, headers, photo_bytes, options, field):
    response = upload(client, headers, photo_bytes("boat.jpg"), **options)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_option" and error["message"].startswith(f"{field}:")
    assert _stored_files(app) == [] and _queued_ids(app) == []


def test_upload_succeeds_when_redis_is_down(make_app, make_user, make_token, photo_bytes, caplog):
    app = make_app(REDIS_URL="redis://127.0.0.1:1/0", RATELIMIT_STORAGE_URI="memory://")
    headers = make_token(make_user())
    response = upload(app.test_client(), headers, photo_bytes("boat.jpg"))
    assert response.status_code == 202
    task_id = response.get_json()["id"]
    assert load_task(app, task_id).status == "PENDING"
    assert any(task_id in record.getMessage() and record.levelname == "WARNING" for record in caplog.records)


def test_list_is_newest_first_paginated_and_own_tasks_only(app, client, headers, make_user, make_token,
                                                           photo_bytes):
    other_headers = make_token(make_user())
    ids = [upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"] for _ in range(3)]
    upload(client, other_headers, photo_bytes("boat.jpg"))
    first = client.get("/api/v1/tasks?per_page=2", headers=headers).get_json()
    second = client.get("/api/v1/tasks?per_page=2&page=2", headers=headers).get_json()
    assert (first["total"], first["pages"], first["page"], first["per_page"]) == (3, 2, 1, 2)
    assert [task["id"] for task in first["items"] + second["items"]] == ids[::-1]
    beyond = client.get("/api/v1/tasks?page=9", headers=headers)
    assert beyond.status_code == 200 and beyond.get_json()["items"] == []


def test_input_response_serves_the_original_photo_safely(app, client, headers, user, photo_bytes):
    from studio.tasks import files, service

    data = photo_bytes("vangogh.jpeg")
    task_id = upload(client, headers, data, filename="Starry <Night>.jpeg").get_json()["id"]
    with app.test_request_context():
        response = files.serve_input(service.get_task(user, task_id))
        response.direct_passthrough = False
        assert response.get_data() == get_storage().get(service.get_task(user, task_id).input_key)
    assert response.mimetype == "image/jpeg"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"] == "inline; filename=Starry_Night.jpg"
