"""Outputs: cutout, mask, background colour, blur, crop with margin, formats."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ml.edits.compose import compose
from ml.operations import get_operation
from ml.operations.base import Result
from ml.operations.remove_background import RemoveBackgroundOptions as ProcessingOptions
from ml.runner import encode


@pytest.fixture
def photo() -> Image.Image:
    return Image.fromarray(np.random.default_rng(3).integers(0, 255, (60, 80, 3), dtype=np.uint8))


@pytest.fixture
def mask() -> Image.Image:
    """A subject at x 20..39, y 10..29, with a soft edge column at x 40."""
    values = np.zeros((60, 80), dtype=np.uint8)
    values[10:30, 20:40] = 255
    values[10:30, 40] = 128
    return Image.fromarray(values)


def test_cutout_uses_the_mask_as_alpha_and_keeps_colours(photo, mask):
    result = compose(photo, mask, ProcessingOptions())
    pixels, original = np.asarray(result), np.asarray(photo)
    assert result.mode == "RGBA"
    assert (pixels[..., 3] == np.asarray(mask)).all()
    assert (pixels[15, 40, :3] == original[15, 40]).all(), "edge colours are not darkened"
    assert (pixels[0, 0] == 0).all(), "fully transparent pixels are zeroed"


def test_mask_output_is_the_mask_at_the_photo_size(photo, mask):
    assert compose(photo, mask, ProcessingOptions(output="mask")).tobytes() == mask.tobytes()


def test_an_opaque_background_colour_gives_an_opaque_image(photo, mask):
    result = compose(photo, mask, ProcessingOptions(bg_color="#0000ffff"))
    assert result.mode == "RGB" and result.getpixel((0, 0)) == (0, 0, 255)
    assert result.getpixel((25, 15)) == photo.getpixel((25, 15))


def test_a_translucent_background_colour_keeps_alpha(photo, mask):
    result = compose(photo, mask, ProcessingOptions(bg_color="#ff000080"))
    assert result.mode == "RGBA" and result.getpixel((0, 0)) == (255, 0, 0, 128)


def test_blur_replaces_the_background_with_the_blurred_photo(photo, mask):
    result = np.asarray(compose(photo, mask, ProcessingOptions(blur=10)), dtype=np.int16)
    assert result.shape == (60, 80, 3)
    assert (result[15, 25] == np.asarray(photo)[15, 25]).all()
    assert np.asarray(photo, dtype=np.int16)[40:, :].std() > 3 * result[40:, :].std()


def test_crop_keeps_the_subject_and_the_margin(photo, mask):
    assert compose(photo, mask, ProcessingOptions(crop=True)).size == (21, 20)
    assert compose(photo, mask, ProcessingOptions(crop=True, margin=5)).size == (31, 30)
    wide = compose(photo, mask, ProcessingOptions(crop=True, margin=30, bg_color="#00ff00"))
    assert wide.size == (81, 80) and wide.getpixel((0, 0)) == (0, 255, 0), "margin past the edge is background"


def test_crop_of_an_empty_mask_keeps_the_whole_photo(photo):
    empty = Image.new("L", photo.size, 0)
    assert compose(photo, empty, ProcessingOptions(crop=True)).size == photo.size


def test_a_transparent_input_stays_transparent(mask):
    photo = Image.new("RGBA", mask.size, (10, 20, 30, 0))
    assert compose(photo, mask, ProcessingOptions()).getchannel("A").getextrema() == (0, 0)


@pytest.mark.parametrize("options, image_format, mode", [
    (ProcessingOptions(), "PNG", "RGBA"),
    (ProcessingOptions(format="webp"), "WEBP", "RGBA"),
    (ProcessingOptions(format="jpeg", bg_color="#ffffffff"), "JPEG", "RGB"),
    (ProcessingOptions(output="mask", format="png"), "PNG", "L"),
])
def test_the_result_is_encoded_in_the_requested_format(photo, mask, options, image_format, mode):
    [result] = encode(get_operation("remove_background"), Result(compose(photo, mask, options)), options)
    decoded = Image.open(io.BytesIO(result.data))
    assert decoded.format == image_format and decoded.mode == mode and decoded.size == photo.size
    assert result.media_type == f"image/{image_format.lower()}" and result.name == "result"


@pytest.mark.parametrize("size, budget", [("preview", 250_000), ("medium", 1_500_000), ("hd", 4_000_000)])
@pytest.mark.parametrize("output", ["cutout", "mask"])
def test_a_size_preset_scales_the_output_down_to_its_budget_keeping_proportions(size, budget, output):
    photo = Image.fromarray(np.random.default_rng(5).integers(0, 255, (1800, 2700, 3), dtype=np.uint8))
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (900, 600, 1800, 1200))
    result = compose(photo, mask, ProcessingOptions(output=output, size=size))
    width, height = result.size
    assert width * height <= budget
    assert width * height > 0.99 * budget  # as large as the budget allows, not a rough halving
    assert abs(width / height - 1.5) < 0.01
    assert result.mode == ("RGBA" if output == "cutout" else "L")
    # The subject is where it was, scaled: the middle of the frame is opaque, the corner transparent or black.
    channel = result.getchannel("A") if output == "cutout" else result
    assert channel.getpixel((width // 2, height // 2)) == 255 and channel.getpixel((2, 2)) == 0


def test_a_size_preset_never_scales_up_and_full_keeps_the_photo_size(photo, mask):
    for size in ("full", "4k", "hd", "medium", "preview"):
        assert compose(photo, mask, ProcessingOptions(size=size)).size == photo.size


def test_a_size_preset_applies_to_the_cropped_output(mask):
    photo = Image.fromarray(np.random.default_rng(6).integers(0, 255, (1200, 1600, 3), dtype=np.uint8))
    big_mask = Image.new("L", photo.size, 0)
    big_mask.paste(255, (0, 0, 1000, 1000))
    cropped = compose(photo, big_mask, ProcessingOptions(crop=True, size="preview"))
    assert cropped.size == (500, 500)  # the 1000x1000 crop, then 0.25 MP


def test_scaling_a_cutout_down_leaves_no_dark_fringe():
    # A white subject on a fully transparent black background: a straight (not premultiplied) resize would mix the
    # invisible black into the edge pixels and grey them.
    photo = Image.new("RGB", (2000, 1000), (0, 0, 0))
    photo.paste((255, 255, 255), (500, 0, 1500, 1000))
    mask = Image.new("L", photo.size, 0)
    mask.paste(255, (500, 0, 1500, 1000))
    result = np.asarray(compose(photo, mask, ProcessingOptions(size="preview")))
    visible = result[..., 3] > 0
    assert visible.any() and result[visible][:, :3].min() >= 250


def _halves(size: tuple[int, int], left: tuple[int, int, int], right: tuple[int, int, int]) -> Image.Image:
    picture = Image.new("RGB", size, left)
    picture.paste(right, (size[0] // 2, 0, size[0], size[1]))
    return picture


def test_a_background_image_covers_the_frame_behind_the_cutout(photo, mask):
    # 200x100 is wider than the 80x60 frame: scaled to 120x60, then its middle 80 columns are kept.
    background = _halves((200, 100), (255, 0, 0), (0, 0, 255))
    result = compose(photo, mask, ProcessingOptions(bg_image=True), background)
    assert result.mode == "RGB" and result.size == photo.size
    assert result.getpixel((0, 0)) == (255, 0, 0) and result.getpixel((79, 59)) == (0, 0, 255)
    assert result.getpixel((25, 15)) == photo.getpixel((25, 15))  # the subject itself, untouched


def test_a_background_image_fills_the_cropped_frame_and_its_margin(photo, mask):
    background = Image.new("RGB", (10, 10), (0, 200, 0))
    result = compose(photo, mask, ProcessingOptions(bg_image=True, crop=True, margin=30), background)
    assert result.size == (81, 80) and result.mode == "RGB"
    assert result.getpixel((0, 0)) == (0, 200, 0)  # past the photo's edge: the background image, not a fill


def test_a_mask_ignores_the_background_image(photo, mask):
    result = compose(photo, mask, ProcessingOptions(output="mask", bg_image=True), Image.new("RGB", (5, 5)))
    assert result.mode == "L" and result.tobytes() == mask.tobytes()


def test_bg_image_without_an_image_is_a_programming_error(photo, mask):
    with pytest.raises(ValueError, match="no background image"):
        compose(photo, mask, ProcessingOptions(bg_image=True))


def test_post_processing_drops_specks_and_hardens_the_edges(photo):
    values = np.zeros((60, 80), dtype=np.uint8)
    values[10:40, 20:50] = 255          # the subject
    values[39:45, 20:50] = 120          # a soft, half-transparent edge below it
    values[5, 70] = values[50, 5] = 255  # single-pixel specks of noise
    mask = Image.fromarray(values)

    raw = np.asarray(compose(photo, mask, ProcessingOptions(output="mask")))
    cleaned = np.asarray(compose(photo, mask, ProcessingOptions(output="mask", post_process=True)))

    assert set(np.unique(raw)) == {0, 120, 255}
    assert set(np.unique(cleaned)) <= {0, 255}  # hard edges: nothing half transparent left
    assert cleaned[5, 70] == 0 and cleaned[50, 5] == 0  # the specks are gone
    assert cleaned[25, 35] == 255  # the subject stays
    assert abs(int(cleaned.astype(bool).sum()) - 30 * 30) < 0.1 * 30 * 30  # and keeps about its size
    cutout = compose(photo, mask, ProcessingOptions(post_process=True))
    assert set(np.unique(np.asarray(cutout.getchannel("A")))) <= {0, 255}
