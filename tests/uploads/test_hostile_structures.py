"""Files whose structure multiplies the work of decoding them (a progressive JPEG with thousands of scans, a JPEG
with a hundred thousand segments before its first scan, a PNG with a hundred thousand chunks, a WebP with thousands of
frames) are refused from their bytes, before any decoder
sees them: a clear 400 on both routes, nothing stored, and a FAILED task with a readable reason in the worker."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from ml import imageio
from ml.imageio import MAX_JPEG_SCANS, MAX_PNG_CHUNKS, MAX_WEBP_CHUNKS, TooComplex, decode_image
from studio.extensions import db
from studio.models import Task
from studio.storage import ObjectNotFound, get_storage
from studio.tasks import uploads
from studio.tasks.strip import strip_metadata
from tests.support import samples
from tests.support.studio import load_task, run_worker, upload

pytestmark = pytest.mark.integration

# (file, name sent, words the refusal names the problem with)
HOSTILE = {
    "jpeg-thousands-of-scans": (samples.jpeg_many_scans(5000), "photo.jpg", "5,010 scans"),
    "jpeg-flood-of-segments": (samples.jpeg_many_segments(100_000), "photo.jpg", "segments before its first scan"),
    "png-hundred-thousand-chunks": (samples.png_many_chunks(100_000), "photo.png", "chunks"),
    "webp-thousands-of-frames": (samples.webp_many_frames(5000), "photo.webp", "frames"),
}


@pytest.fixture
def no_decoder(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Record any attempt to open or decode an image while the upload is handled."""
    opened: list[object] = []
    monkeypatch.setattr(uploads, "decode_image", lambda *args, **kwargs: opened.append(args) or 1 / 0)
    monkeypatch.setattr(imageio.Image, "open", lambda *args, **kwargs: opened.append(args) or 1 / 0)
    return opened


@pytest.mark.parametrize("name", HOSTILE)
def test_a_file_that_multiplies_decoding_work_is_refused_from_its_bytes(uploader, nothing_kept, no_decoder, name):
    data, filename, words = HOSTILE[name]
    answer = uploader.send(data, filename)
    assert answer.status == 400, answer.text
    if uploader.route == "api":
        assert answer.code == "image_too_complex"
    assert words in answer.text and "still photo" in answer.text
    assert no_decoder == []
    nothing_kept()


@pytest.mark.parametrize("name", HOSTILE)
def test_every_decode_is_bounded_by_the_same_check(name):
    # The worker decodes through decode_image too: it refuses the file before decoding a pixel.
    with pytest.raises(TooComplex):
        decode_image(HOSTILE[name][0])


def test_the_hostile_files_are_real_images_that_only_the_bounds_keep_out():
    for data, _, _ in HOSTILE.values():
        with Image.open(io.BytesIO(data)) as image:
            assert image.format in ("JPEG", "PNG", "WEBP")
    with Image.open(io.BytesIO(HOSTILE["webp-thousands-of-frames"][0])) as image:
        assert image.n_frames == 5000


def test_photos_within_the_bounds_are_accepted(uploader):
    # A progressive JPEG with more scans than encoders write, and a PNG with many chunks, are still photos.
    scans = samples.jpeg_many_scans(MAX_JPEG_SCANS - 20)
    assert scans.count(b"\xff\xda") <= MAX_JPEG_SCANS
    assert uploader.send(scans, "scans.jpg").status in (201, 202, 302)
    chunks = samples.png_many_chunks(MAX_PNG_CHUNKS - 10)
    assert uploader.send(chunks, "chunks.png").status in (201, 202, 302)
    # An animation within the chunk bound is refused as an animation, as before.
    few_frames = samples.webp_many_frames(MAX_WEBP_CHUNKS // 2)
    answer = uploader.send(few_frames, "cat.webp")
    assert answer.status == 415 and "Animated" in answer.text


@pytest.mark.parametrize("cleaned", [False, True], ids=["uploaded", "clean-copy"])
@pytest.mark.parametrize("name", HOSTILE)
def test_the_worker_fails_such_a_photo_with_a_readable_reason(app, client, headers, name, cleaned):
    task_id = upload(client, headers, samples.jpeg()).get_json()["id"]
    task = load_task(app, task_id)
    with app.app_context():
        get_storage().put(task.input_key, HOSTILE[name][0], "image/jpeg")
        # Either the upload its job cleans first, or a stored clean copy the operation's decode reads.
        db.session.get(Task, task_id).inputs_clean = cleaned
        db.session.commit()
    run_worker(app)
    task = load_task(app, task_id)
    assert (task.status, task.attempts) == ("FAILED", 1)
    assert HOSTILE[name][2] in task.error
    if cleaned:
        assert task.error.startswith("The photo could not be read: the ")
    else:
        assert "still photo" in task.error
        with app.app_context(), pytest.raises(ObjectNotFound):
            get_storage().get(task.input_key)  # never cleaned: deleted


def test_segments_after_the_first_scan_cost_no_walk_in_python(uploader):
    # libjpeg skips them in C; the metadata cutter's walk gives up on so many, so the photo is re-encoded instead.
    flood = samples.jpeg_many_segments(100_000, before_first_scan=False)
    assert strip_metadata(flood, "JPEG") is None
    assert strip_metadata(samples.jpeg_many_segments(100, before_first_scan=False), "JPEG") is not None
    answer = uploader.send(flood, "comments.jpg")
    assert answer.status in (201, 202, 302), answer.text
