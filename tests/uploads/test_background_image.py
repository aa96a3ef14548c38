"""A background image uploaded with the photo: validated like it, stored beside it, put behind the cutout."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from studio.extensions import db
from studio.models import Task
from studio.storage import get_storage
from studio.tasks import quota
from tests.support.studio import load_task, run_worker

pytestmark = pytest.mark.integration

PHOTO = "horse.jpg"
GREEN = (0, 200, 0)


def _png(colour: tuple[int, int, int] = GREEN, size: tuple[int, int] = (64, 48)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def _post(client, headers, photo: bytes, background: bytes | list | str | None = None, **fields: str):
    data: dict = {"image": (io.BytesIO(photo), PHOTO), **fields}
    if isinstance(background, bytes):
        data["bg_image"] = (io.BytesIO(background), "background.png")
    elif background is not None:
        data["bg_image"] = background
    return client.post("/api/v1/tasks", headers=headers, content_type="multipart/form-data", data=data)


def _stored(app) -> list[str]:
    root = Path(app.config["STUDIO_STORAGE_DIR"])
    return sorted(str(path.relative_to(root)) for path in root.rglob("*") if path.is_file())


def test_the_cutout_is_put_on_the_uploaded_background(app, client, headers, user, photo_bytes, model_ready):
    photo = photo_bytes(PHOTO)
    response = _post(client, headers, photo, _png(), format="jpeg")
    assert response.status_code == 202, response.get_data(as_text=True)
    body = response.get_json()
    assert body["options"]["bg_image"] is True and body["options"]["format"] == "jpeg"
    task = load_task(app, body["id"])
    record = task.attachments["bg_image"]
    assert record["key"] == f"inputs/{user.id}/{task.id}-bg_image.png" and record["media_type"] == "image/png"
    assert task.attachments_size == record["size"] == len(get_storage(app).get(record["key"]))

    run_worker(app)

    task = load_task(app, body["id"])
    assert task.status == "COMPLETED", task.error
    result = Image.open(io.BytesIO(client.get(f"/api/v1/tasks/{task.id}/result", headers=headers).data))
    original = Image.open(io.BytesIO(photo))
    assert result.format == "JPEG" and result.mode == "RGB" and result.size == original.size
    pixels = np.asarray(result, dtype=np.int16)
    # The corners are background in this photo: now the uploaded green, within JPEG's error.
    for corner in (pixels[2, 2], pixels[2, -3], pixels[-3, 2], pixels[-3, -3]):
        assert np.abs(corner - GREEN).max() <= 8, corner
    # The horse is still there: the middle is not green.
    middle = pixels[pixels.shape[0] // 2, pixels.shape[1] // 2]
    assert np.abs(middle - GREEN).max() > 40


def test_the_background_counts_in_the_quota_and_goes_with_the_task(app, client, headers, user, photo_bytes):
    response = _post(client, headers, photo_bytes(PHOTO), _png())
    task_id = response.get_json()["id"]
    task = load_task(app, task_id)
    with app.app_context():
        assert quota.storage_used(user.id) == task.input_size + task.attachments_size
    assert len(_stored(app)) == 2

    assert client.delete(f"/api/v1/tasks/{task_id}", headers=headers).status_code == 204
    assert _stored(app) == []


@pytest.mark.parametrize("background, status, code, message", [
    (b"", 400, "empty_file", "bg_image: The file is empty"),
    (b"%PDF-1.4 not an image", 415, "unsupported_image", "bg_image: The file is not a JPEG, PNG or WebP image"),
    ("true", 400, "invalid_option", "bg_image: send it as an image file"),
    ([(io.BytesIO(_png()), "a.png"), (io.BytesIO(_png()), "b.png")], 400, "invalid_option",
     "bg_image: send one file"),
])
def test_a_bad_background_is_refused_and_nothing_is_stored(
        app, client, headers, photo_bytes, background, status, code, message):
    response = _post(client, headers, photo_bytes(PHOTO), background)
    assert response.status_code == status
    error = response.get_json()["error"]
    assert error["code"] == code and error["message"].startswith(message), error
    with app.app_context():
        assert db.session.query(Task).count() == 0
    assert _stored(app) == []


def test_a_background_with_a_colour_or_blur_is_refused(app, client, headers, photo_bytes):
    for other in ({"bg_color": "#ffffff"}, {"blur": "8"}):
        response = _post(client, headers, photo_bytes(PHOTO), _png(), **other)
        assert response.status_code == 400
        assert "choose one background" in response.get_json()["error"]["message"]
    assert _stored(app) == []


def test_a_damaged_background_fails_the_task_with_a_reason_and_is_deleted(app, client, headers, photo_bytes):
    # Its header is whole: the request, which decodes no pixel, accepts it; the job cannot read it.
    response = _post(client, headers, photo_bytes(PHOTO), _png()[:60])
    assert response.status_code == 202, response.get_data(as_text=True)
    run_worker(app)
    task = load_task(app, response.get_json()["id"])
    assert (task.status, task.attempts) == ("FAILED", 1)
    assert task.error.startswith("bg_image: The image is damaged"), task.error
    assert _stored(app) == []
    with app.app_context():
        assert quota.storage_used(task.user_id) == 0


def test_a_background_lost_from_storage_fails_the_task_with_a_reason(
        app, client, headers, photo_bytes, model_ready):
    task_id = _post(client, headers, photo_bytes(PHOTO), _png()).get_json()["id"]
    get_storage(app).delete(load_task(app, task_id).attachments["bg_image"]["key"])

    run_worker(app)

    task = load_task(app, task_id)
    assert (task.status, task.attempts) == ("FAILED", 1)  # permanent: not retried
    assert task.error == "The background image is no longer in storage; upload it again."
