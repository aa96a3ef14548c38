"""Accepted uploads are stored as clean copies under generated keys: upright, no metadata, no payload.

Which copies keep the upload's own compressed pixels and which are re-encoded: test_lossless_copies.py.
"""

from __future__ import annotations

import io
import re

import numpy as np
import pytest
from PIL import Image

from studio.extensions import db
from studio.models import Task
from studio.storage import get_storage
from tests.support import samples
from tests.support.uploads import sign_in, stored_files

pytestmark = pytest.mark.integration

KEY = re.compile(r"inputs/\d+/[0-9a-f-]{36}\.(jpg|png|webp)")


def stored_input(app, task_id: str) -> tuple[Task, bytes]:
    """Return a task row and the bytes stored as its input."""
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


def test_exif_orientation_is_applied_and_exif_and_gps_are_dropped_at_upload(uploader, app):
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
    task, _ = stored_input(app, task_id)
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
