"""Accepted uploads are stored as clean copies under generated keys: upright, no metadata, no payload.

The web request stores the upload as received; the task's job replaces it by its clean copy before its operation
runs: every check here reads storage once a real worker has run the job.

Which copies keep the upload's own compressed pixels and which are re-encoded: test_lossless_copies.py.
"""

from __future__ import annotations

import io
import re
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from rq.job import Job

from jobs import maintenance
from jobs import process_image as job_module
from studio.extensions import db
from studio.models import Task
from studio.queue import get_redis
from studio.storage import get_storage
from studio.tasks import cleaning, lifecycle, quota, service
from tests.support import samples
from tests.support.studio import run_worker
from tests.support.uploads import sign_in, stored_files

pytestmark = pytest.mark.integration

KEY = re.compile(r"inputs/\d+/[0-9a-f-]{36}\.(jpg|png|webp)")


def stored_input(app, task_id: str, job: bool = True) -> tuple[Task, bytes]:
    """Run the queued jobs (unless job is False), then return a task row and the bytes stored as its input."""
    if job:
        run_worker(app)
    with app.app_context():
        task = db.session.get(Task, task_id)
        db.session.expunge(task)
        return task, get_storage().get(task.input_key)


def mean_difference(first: Image.Image, second: Image.Image) -> float:
    """Return the mean absolute difference of two same-sized images' RGB pixels (0-255)."""
    assert first.size == second.size
    return float(np.abs(np.asarray(first.convert("RGB"), dtype=np.int16)
                        - np.asarray(second.convert("RGB"), dtype=np.int16)).mean())


def test_jpeg_with_html_appended_is_stored_and_served_without_it(uploader, app, user):
    photo = samples.jpeg((96, 64))
    data = photo + samples.SCRIPT
    assert data.endswith(samples.SCRIPT)
    task_id = uploader.task_id(uploader.send(data, "innocent.jpg", "image/jpeg"))
    task, stored = stored_input(app, task_id)
    assert b"<script" not in stored and stored.endswith(b"\xff\xd9")
    # Cut at the JPEG's end, not re-encoded: the photo itself carries nothing else to remove.
    assert stored == photo
    assert task.input_content_type == "image/jpeg" and task.input_size == len(stored)
    assert Image.open(io.BytesIO(stored)).format == "JPEG"
    browser = app.test_client()
    sign_in(browser, user.email)
    served = browser.get(f"/tasks/{task_id}/input")
    assert served.status_code == 200 and served.data == stored
    assert served.mimetype == "image/jpeg"
    assert served.headers["X-Content-Type-Options"] == "nosniff"


def test_exif_orientation_is_applied_and_exif_and_gps_are_dropped_by_the_job(uploader, app):
    upright = samples.picture((90, 60))
    data = samples.jpeg_rotated_with_gps(upright)
    assert Image.open(io.BytesIO(data)).size == (60, 90) and b"SecretCam" in data
    task, stored = stored_input(app, uploader.task_id(uploader.send(data, "phone.jpg")))
    image = Image.open(io.BytesIO(stored))
    assert image.size == (90, 60) and (task.input_width, task.input_height) == (90, 60)
    assert len(image.getexif()) == 0 and b"Exif" not in stored and b"SecretCam" not in stored
    assert "exif" not in image.info
    # Upright, not just the right shape: the stored pixels are the upright picture's (JPEG noise aside).
    assert mean_difference(image, upright) < 4 < 40 < mean_difference(image, upright.rotate(180))


def test_mpo_from_a_phone_is_accepted_as_its_first_jpeg(uploader, app):
    task, stored = stored_input(app, uploader.task_id(uploader.send(samples.mpo(), "phone.jpg")))
    assert task.input_content_type == "image/jpeg" and task.input_key.endswith(".jpg")
    image = Image.open(io.BytesIO(stored))
    assert image.format == "JPEG" and image.size == (96, 64)
    assert mean_difference(image, samples.picture((96, 64), 1)) < 4


NAMES = {
    "parent-directories": ("../../x.png", "x.png"),
    "windows-parents": ("..\\..\\windows\\x.png", None),
    "very-long": ("a" * 5000 + ".png", "a" * 120),
    "unicode": ("Фото été 🌅 写真.png", "Фото été 🌅 写真.png"),
    "markup": ("<img src=x onerror=alert(1)>.png", "<img src=x onerror=alert(1)>.png"),
    "control-characters": ("evil\u202egnp.exe\x07.png", "evilgnp.exe.png"),
}


@pytest.mark.parametrize("name", NAMES)
def test_awkward_filenames_are_kept_for_display_only(uploader, app, user, name):
    sent, shown = NAMES[name]
    task_id = uploader.task_id(uploader.send(samples.png((24, 16)), sent, "image/png"))
    task, _ = stored_input(app, task_id, job=False)  # the key and the name are given at upload
    assert KEY.fullmatch(task.input_key) and task.input_key.startswith(f"inputs/{user.id}/{task_id}.")
    root = app.config["STUDIO_STORAGE_DIR"]
    assert [str(path.relative_to(root)) for path in stored_files(app)] == [task.input_key]
    if shown is None:  # the test client drops backslashes; what is left must still be one plain name
        assert task.original_filename.endswith("x.png") and not set("/\\") & set(task.original_filename)
    else:
        assert task.original_filename == shown
    browser = app.test_client()
    sign_in(browser, user.email)
    page = browser.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "<img src=x" not in page
    if name == "markup":
        assert "&lt;img src=x onerror=alert(1)&gt;.png" in page
    disposition = browser.get(f"/tasks/{task_id}/input").headers["Content-Disposition"]
    assert disposition.isascii() and "/" not in disposition and ".." not in disposition


def _secret_free(stored: bytes) -> bool:
    return b"Exif" not in stored and b"SecretCam" not in stored


@pytest.fixture
def decodes(monkeypatch) -> list[str]:
    """Record every pixel decoder Pillow creates (each load() of pixel data makes one), from now on."""
    created: list[str] = []
    original = Image._getdecoder

    def spy(mode, decoder_name, *args, **kwargs):
        created.append(decoder_name)
        return original(mode, decoder_name, *args, **kwargs)

    monkeypatch.setattr(Image, "_getdecoder", spy)
    return created


@pytest.mark.parametrize("image_format", ["JPEG", "PNG", "WEBP"])
def test_the_upload_request_decodes_no_pixel_and_the_job_cleans_the_photo(uploader, app, decodes, image_format):
    upright = samples.picture((90, 60))
    exif = samples.exif_with_gps(6)
    data = samples.encoded(upright.transpose(Image.Transpose.ROTATE_90), image_format, exif=exif)
    assert b"SecretCam" in data
    decodes.clear()  # making the picture used one
    task_id = uploader.task_id(uploader.send(data, "phone." + image_format.lower()))
    assert decodes == []
    # Stored as received until the job runs, with the upright size read from the header.
    task, stored = stored_input(app, task_id, job=False)
    assert stored == data and not task.inputs_clean and (task.input_width, task.input_height) == (90, 60)
    task, stored = stored_input(app, task_id)
    assert decodes != []  # the worker decoded it
    assert task.inputs_clean and _secret_free(stored) and task.input_size == len(stored)
    assert Image.open(io.BytesIO(stored)).size == (90, 60) == (task.input_width, task.input_height)


def test_a_large_photo_is_accepted_without_being_decoded(app, client, headers, decodes):
    # 48 megapixels, under the 50-megapixel limit: decoding it takes the worker seconds, the request none.
    data = samples.encoded(Image.new("RGB", (8000, 6000), (40, 90, 160)), "JPEG", quality=50)
    response = client.post("/api/v1/tasks", headers=headers, content_type="multipart/form-data",
                           data={"image": (io.BytesIO(data), "large.jpg")})
    assert response.status_code == 202, response.get_data(as_text=True)
    assert decodes == []
    task, stored = stored_input(app, response.get_json()["id"], job=False)
    assert stored == data and (task.input_width, task.input_height) == (8000, 6000)


def test_a_photo_cancelled_before_its_job_ran_is_cleaned_by_a_job_of_its_own(app, client, headers):
    data = samples.jpeg_rotated_with_gps(samples.picture((90, 60)))
    task_id = client.post("/api/v1/tasks", headers=headers, content_type="multipart/form-data",
                          data={"image": (io.BytesIO(data), "phone.jpg")}).get_json()["id"]
    assert client.post(f"/api/v1/tasks/{task_id}/cancel", headers=headers).status_code == 200
    task, stored = stored_input(app, task_id)
    assert task.status == "CANCELLED" and task.outputs == {}
    assert task.inputs_clean and _secret_free(stored) and Image.open(io.BytesIO(stored)).size == (90, 60)


def test_a_re_run_of_a_photo_not_cleaned_yet_is_cleaned_by_its_own_job(app, client, headers):
    data = samples.jpeg_rotated_with_gps(samples.picture((90, 60)))
    first = client.post("/api/v1/tasks", headers=headers, content_type="multipart/form-data",
                        data={"image": (io.BytesIO(data), "phone.jpg")}).get_json()["id"]
    assert client.post(f"/api/v1/tasks/{first}/cancel", headers=headers).status_code == 200
    with app.test_request_context():
        task = db.session.get(Task, first)
        assert not task.inputs_clean  # its cleaning job has not run yet
        second = service.rerun_task(task, {}).id
    task, stored = stored_input(app, second)
    assert task.inputs_clean and _secret_free(stored)
    assert stored_input(app, first, job=False)[0].inputs_clean


def test_an_upload_whose_job_fails_before_cleaning_it_is_deleted(app, client, headers, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("storage unreachable")

    monkeypatch.setattr(cleaning, "clean_inputs", broken)
    data = samples.jpeg_rotated_with_gps(samples.picture((90, 60)))
    task_id = client.post("/api/v1/tasks", headers=headers, content_type="multipart/form-data",
                          data={"image": (io.BytesIO(data), "phone.jpg")}).get_json()["id"]
    run_worker(app)
    with app.app_context():
        task = db.session.get(Task, task_id)
        assert task.status == "FAILED" and task.attempts > 1  # retried, then failed for good
        assert task.inputs_clean and task.stored_bytes == 0 == quota.storage_used(task.user_id)
    assert stored_files(app) == []


def test_an_upload_the_reconciler_fails_before_it_was_cleaned_is_deleted(app, client, headers):
    data = samples.jpeg_rotated_with_gps(samples.picture((90, 60)))
    task_id = client.post("/api/v1/tasks", headers=headers, content_type="multipart/form-data",
                          data={"image": (io.BytesIO(data), "phone.jpg")}).get_json()["id"]
    # As after a worker vanished on the last attempt, before cleaning: PROCESSING, a silent heartbeat, no job left.
    with app.app_context():
        task = db.session.get(Task, task_id)
        task.status, task.attempts = "PROCESSING", 1 + app.config["STUDIO_JOB_RETRIES"]
        task.heartbeat_at = task.updated_at = datetime.now(timezone.utc) - timedelta(hours=1)
        db.session.commit()
        Job.fetch(task_id, connection=get_redis()).delete()
        assert maintenance.reconcile_tasks()["failed"] == 1
    with app.app_context():
        task = db.session.get(Task, task_id)
        assert task.status == "FAILED" and task.inputs_clean and task.stored_bytes == 0
        assert quota.storage_used(task.user_id) == 0
    assert stored_files(app) == []


def test_an_upload_whose_job_was_stopped_before_cleaning_it_is_deleted(app, client, headers):
    data = samples.jpeg_rotated_with_gps(samples.picture((90, 60)))
    task_id = client.post("/api/v1/tasks", headers=headers, content_type="multipart/form-data",
                          data={"image": (io.BytesIO(data), "phone.jpg")}).get_json()["id"]
    # As when an operator stops the job (rq's stop-job command) while it runs, before its first step ended.
    with app.app_context():
        assert lifecycle.started(task_id) is not None
    job_module.on_stopped(SimpleNamespace(id=task_id), None)
    with app.app_context():
        task = db.session.get(Task, task_id)
        assert task.status == "CANCELLED" and task.inputs_clean and task.stored_bytes == 0
    assert stored_files(app) == []
