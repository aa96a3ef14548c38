"""Valid but awkward photos (CMYK, 16-bit, palette with transparency, greyscale, EXIF-rotated with GPS) go
through upload, a real RQ worker and the real model, and come out right: the same mask as the plain photo."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from studio.extensions import db
from studio.models import Task
from studio.storage import get_storage
from tests.support import samples
from tests.support.studio import run_worker, upload

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# Mean absolute difference (0-255) allowed between two masks of the same picture (JPEG noise).
MASK_TOLERANCE = 3


def _difference(first: Image.Image, second: Image.Image) -> float:
    assert first.size == second.size
    return float(np.abs(np.asarray(first, dtype=np.int16) - np.asarray(second, dtype=np.int16)).mean())


def _palette_with_transparent_strip(picture: Image.Image) -> tuple[bytes, int]:
    """Return the picture as a palette PNG whose left strip is fully transparent, and the strip's width."""
    strip = picture.width // 5
    quantized = picture.quantize(colors=255)
    indices = np.asarray(quantized).copy()
    indices[:, :strip] = 255
    palette = quantized.getpalette()[: 255 * 3] + [0, 0, 0]
    image = Image.fromarray(indices.astype(np.uint8), mode="P")
    image.putpalette(palette)
    return samples.encoded(image, "PNG", transparency=255), strip


@pytest.fixture(scope="module")
def base_photo(photos_dir) -> Image.Image:
    """Return a real photo with a clear subject, small enough to keep the model fast."""
    photo = Image.open(photos_dir / "horse.jpg").convert("RGB")
    photo.thumbnail((320, 320))
    return photo


def test_awkward_photos_are_processed_right_end_to_end(app, client, headers, base_photo, model_ready):
    grey = base_photo.convert("L")
    palette_png, strip = _palette_with_transparent_strip(base_photo)
    uploads = {
        "reference": samples.encoded(base_photo, "PNG"),
        "grey-reference": samples.encoded(grey, "PNG"),
        "cmyk-jpeg": samples.encoded(base_photo.convert("CMYK"), "JPEG", quality=95),
        "png-16-bit-rgb": samples.png16_rgb(base_photo),
        "png-16-bit-grey": samples.png16_grey(base_photo),
        "palette-png-transparent": palette_png,
        "grey-jpeg": samples.encoded(grey, "JPEG", quality=95),
        "exif-6-gps-jpeg": samples.jpeg_rotated_with_gps(base_photo),
    }
    assert Image.open(io.BytesIO(uploads["cmyk-jpeg"])).mode == "CMYK"
    assert Image.open(io.BytesIO(uploads["png-16-bit-grey"])).mode == "I;16"
    ids = {}
    for name, data in uploads.items():
        for output in ("mask", "cutout"):
            response = upload(client, headers, data, filename=f"{name}.img", output=output)
            assert response.status_code == 202, (name, response.get_json())
            ids[name, output] = response.get_json()["id"]

    run_worker(app)

    results, inputs = {}, {}
    for (name, output), task_id in ids.items():
        body = client.get(f"/api/v1/tasks/{task_id}", headers=headers).get_json()
        assert (body["status"], body["error"]) == ("COMPLETED", None), (name, output, body)
        result = client.get(body["result_url"], headers=headers)
        assert result.status_code == 200 and result.mimetype == "image/png"
        assert b"Exif" not in result.data and b"SecretCam" not in result.data
        image = Image.open(io.BytesIO(result.data))
        assert len(image.getexif()) == 0
        assert image.size == base_photo.size, (name, output)
        results[name, output] = image
        with app.app_context():
            stored = get_storage().get(db.session.get(Task, task_id).input_key)
        assert b"Exif" not in stored and b"SecretCam" not in stored
        inputs[name] = Image.open(io.BytesIO(stored))

    reference = results["reference", "mask"]
    grey_reference = results["grey-reference", "mask"]
    low, high = reference.getextrema()
    assert low < 20 and high > 235  # a real subject on a real background
    # The tolerance is far below what a photo processed upside down would give: a wrong result cannot pass.
    assert _difference(reference, reference.rotate(180)) > 4 * MASK_TOLERANCE
    for name in ("cmyk-jpeg", "png-16-bit-rgb", "exif-6-gps-jpeg"):
        assert _difference(results[name, "mask"], reference) < MASK_TOLERANCE, name
    for name in ("png-16-bit-grey", "grey-jpeg"):
        assert _difference(results[name, "mask"], grey_reference) < MASK_TOLERANCE, name

    # Colours survive: CMYK is not inverted, 16 bits are scaled not clipped, the rotated photo is upright.
    for name in ("cmyk-jpeg", "png-16-bit-rgb", "exif-6-gps-jpeg"):
        assert _difference(inputs[name].convert("RGB"), base_photo) < 4, name
    assert _difference(inputs["png-16-bit-grey"].convert("L"), grey) < 1

    # The palette's transparent strip stays transparent in the stored copy and in the cut-out.
    palette_input = inputs["palette-png-transparent"]
    assert palette_input.mode == "RGBA"
    assert palette_input.getchannel("A").crop((0, 0, strip, palette_input.height)).getextrema() == (0, 0)
    cutout = results["palette-png-transparent", "cutout"]
    assert cutout.mode == "RGBA"
    assert cutout.getchannel("A").crop((0, 0, strip, cutout.height)).getextrema() == (0, 0)
    assert _difference(results["palette-png-transparent", "mask"].crop((strip, 0, *cutout.size)),
                       reference.crop((strip, 0, *cutout.size))) < 4 * MASK_TOLERANCE  # 256 colours
