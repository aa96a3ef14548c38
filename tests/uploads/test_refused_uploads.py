"""Files that are not a still JPEG, PNG or WebP photo: a clear 4xx on both routes, and nothing stored or queued.

What the header cannot tell (pixel data cut off or corrupt) the job finds, in the worker: the task fails with a
reason, and the upload is deleted.
"""

from __future__ import annotations

import io

import pytest
from PIL import Image

from studio.tasks import quota, uploads
from tests.support import samples
from tests.support.studio import load_task, run_worker
from tests.support.uploads import stored_files

pytestmark = pytest.mark.integration

_JPEG = samples.jpeg()
_PNG = samples.png()
NOT_SUPPORTED = "not a JPEG, PNG or WebP image"

# (file, name sent, content type claimed, status, API error code, words the person reads)
REFUSED = {
    "zero-bytes": (b"", "photo.jpg", "image/jpeg", 400, "empty_file", "empty"),
    "tiff-renamed": (samples.tiff(), "photo.png", None, 415, "unsupported_image", NOT_SUPPORTED),
    "tiff-false-type": (samples.tiff(), "scan.tiff", "image/jpeg", 415, "unsupported_image", NOT_SUPPORTED),
    "psd-renamed": (samples.psd(), "photo.png", "image/png", 415, "unsupported_image", NOT_SUPPORTED),
    "ico-renamed": (samples.ico(), "photo.png", "image/png", 415, "unsupported_image", NOT_SUPPORTED),
    "fits-renamed": (samples.fits(), "photo.jpg", "image/jpeg", 415, "unsupported_image", NOT_SUPPORTED),
    "svg-renamed": (samples.svg(), "photo.png", "image/png", 415, "unsupported_image", NOT_SUPPORTED),
    "html-renamed": (samples.html(), "photo.jpg", "image/jpeg", 415, "unsupported_image", NOT_SUPPORTED),
    "pdf-renamed": (samples.pdf(), "photo.png", None, 415, "unsupported_image", NOT_SUPPORTED),
    "pdf-false-type": (samples.pdf(), "report.pdf", "image/png", 415, "unsupported_image", NOT_SUPPORTED),
    "gif-animated": (samples.gif_animated(), "cat.gif", "image/gif", 415, "unsupported_image", NOT_SUPPORTED),
    "webp-animated": (samples.webp_animated(), "cat.webp", "image/webp", 415, "animated_image", "Animated"),
    "png-animated": (samples.png_animated(), "cat.png", "image/png", 415, "animated_image", "Animated"),
}


@pytest.mark.parametrize("name", REFUSED)
def test_bad_file_is_refused_with_a_reason_and_nothing_is_kept(uploader, nothing_kept, name):
    data, filename, content_type, status, code, words = REFUSED[name]
    answer = uploader.send(data, filename, content_type)
    assert answer.status == status, answer.text
    if uploader.route == "api":
        assert answer.code == code
    assert words in answer.text
    nothing_kept()


@pytest.mark.parametrize("data, filename", [(_JPEG[: len(_JPEG) // 2], "photo.jpg"),
                                            (_PNG[: len(_PNG) // 2], "photo.png")], ids=["jpeg", "png"])
def test_a_truncated_photo_fails_its_task_with_a_reason_and_is_deleted(uploader, app, data, filename):
    # Its header is whole: the request, which decodes no pixel, accepts it; the job cannot read it.
    task_id = uploader.task_id(uploader.send(data, filename))
    run_worker(app)
    task = load_task(app, task_id)
    assert (task.status, task.attempts) == ("FAILED", 1)  # permanent: not retried
    assert task.error.startswith("The image is damaged or incomplete"), task.error
    assert stored_files(app) == []
    with app.app_context():
        assert quota.storage_used(task.user_id) == 0 == task.stored_bytes


@pytest.mark.parametrize("make, pillow_format, animated", [
    (samples.tiff, "TIFF", False), (samples.psd, "PSD", False), (samples.ico, "ICO", False),
    (samples.fits, "FITS", False), (samples.gif_animated, "GIF", True), (samples.webp_animated, "WEBP", True),
    (samples.png_animated, "PNG", True),
], ids=lambda value: getattr(value, "__name__", str(value)))
def test_the_refused_files_are_real_images_that_only_the_allowlist_keeps_out(make, pillow_format, animated):
    # Pillow, without our allowlist, opens every one of them: the refusals above are the allowlist's doing.
    with Image.open(io.BytesIO(make())) as image:
        image.load()
        assert image.format == pillow_format
        assert getattr(image, "is_animated", False) is animated
    assert samples.pdf().startswith(b"%PDF-")


def test_decompression_bomb_is_refused_from_its_header_without_decoding(uploader, nothing_kept, monkeypatch):
    decoded = []
    monkeypatch.setattr(uploads, "decode_image", lambda *args, **kwargs: decoded.append(args) or 1 / 0)
    answer = uploader.send(samples.png_bomb(20000, 20000), "small.png", "image/png")
    assert answer.status == 400
    if uploader.route == "api":
        assert answer.code == "too_many_pixels"
    assert "the limit is 50,000,000 pixels" in answer.text
    assert decoded == []
    nothing_kept()


def test_fifty_megabyte_body_is_413_from_the_app(uploader, nothing_kept, app):
    assert app.config["MAX_CONTENT_LENGTH"] < 50 * 1024 * 1024
    answer = uploader.send(_JPEG + b"\0" * (50 * 1024 * 1024), "huge.jpg", "image/jpeg")
    assert answer.status == 413
    if uploader.route == "api":
        assert answer.code == "request_entity_too_large"
    assert "larger than the limit" in (answer.text or answer.body)
    nothing_kept()
