"""A product on a canvas (ml/edits/placement.py, ml/edits/shadow.py): the shadow, the subject's position and size,
the canvas and the region of interest, through remove_background's compose on a fixture photo and its mask."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from ml.edits.compose import compose
from ml.edits.placement import subject_box
from ml.operations import get_operation
from tests.support.services import FIXTURES_DIR, require

WHITE = "#ffffff"


@pytest.fixture(scope="module")
def horse() -> tuple[Image.Image, Image.Image]:
    """Return the horse photo and the U-2-Net authors' mask of it."""
    photo_path = FIXTURES_DIR / "photos" / "horse.jpg"
    require(photo_path.is_file(), f"fixture photos not found in {photo_path.parent}")
    photo = Image.open(photo_path).convert("RGB")
    return photo, Image.open(FIXTURES_DIR / "u2net_reference" / "horse.png").convert("L").resize(photo.size)


def cut(horse: tuple[Image.Image, Image.Image], **options: object) -> Image.Image:
    operation = get_operation("remove_background")
    return compose(*horse, operation.parse({"estimate_foreground": False, **options}))


def test_the_shadow_darkens_the_canvas_below_the_subject_and_only_when_asked(horse):
    with_shadow = np.asarray(cut(horse, bg_color=WHITE, add_shadow=True, shadow_offset_y=3), dtype=int)
    without = np.asarray(cut(horse, bg_color=WHITE), dtype=int)
    left, _, right, bottom = subject_box(horse[1])
    below_with, below_without = with_shadow[bottom + 2:bottom + 12, left:right], without[bottom + 2:bottom + 12,
                                                                                         left:right]
    assert (below_without == 255).all()
    assert below_with.mean() < 250 and below_with.min() < 235
    far = with_shadow[:, :max(1, left - 60)]
    assert (far == 255).all(), "the shadow reaches far from the subject"


def test_a_shadow_on_transparency_is_black_and_partly_transparent(horse):
    result = np.asarray(cut(horse, add_shadow=True, shadow_opacity=80))
    plain = np.asarray(cut(horse))
    shadow_only = (plain[..., 3] == 0) & (result[..., 3] > 0)
    assert shadow_only.any()
    assert (result[shadow_only][:, :3] == 0).all() and (result[shadow_only][:, 3] < 255).all()


@pytest.mark.parametrize("position, scale, expected", [
    ("center", 50, (0.5, 0.5)),
    ("0,100", 60, (0.0, 1.0)),
    ("100,0", 40, (1.0, 0.0)),
])
def test_position_and_scale_put_the_subject_where_asked(horse, position, scale, expected):
    result = cut(horse, canvas="1000x800", position=position, scale=scale, padding=5)
    assert result.size == (1000, 800)
    left, top, right, bottom = subject_box(result.getchannel("A"))
    width, height = right - left, bottom - top
    free_width, free_height = 900, 720  # the canvas less 5% padding on each side
    # The subject fills scale% of the free space on its limiting side (the horse is wider than 900x720's ratio).
    assert abs(width - free_width * scale / 100) <= 3
    horse_box = subject_box(horse[1])
    assert abs(width / height - (horse_box[2] - horse_box[0]) / (horse_box[3] - horse_box[1])) < 0.02
    assert abs(left - (50 + (free_width - width) * expected[0])) <= 2
    assert abs(top - (40 + (free_height - height) * expected[1])) <= 2


def test_original_position_keeps_the_subject_in_place_and_scale_shrinks_it_around_its_centre(horse):
    assert np.array_equal(np.asarray(cut(horse, position="original")), np.asarray(cut(horse)))
    box = subject_box(horse[1])
    left, top, right, bottom = subject_box(cut(horse, scale=50).getchannel("A"))
    assert abs((right - left) - (box[2] - box[0]) / 2) <= 2
    assert abs((left + right) / 2 - (box[0] + box[2]) / 2) <= 2 and abs((top + bottom) / 2 - (box[1] + box[3]) / 2) <= 2


def test_an_aspect_ratio_canvas_covers_the_photo(horse):
    result = cut(horse, canvas="1:1", bg_color=WHITE)
    assert result.size == (770, 770) and result.mode == "RGB"


def test_the_mask_output_is_placed_as_the_cutout_is(horse):
    cutout = cut(horse, canvas="500x500", position="center", scale=70)
    mask = cut(horse, canvas="500x500", position="center", scale=70, output="mask")
    assert mask.mode == "L" and subject_box(mask) == subject_box(cutout.getchannel("A"))


def test_the_region_of_interest_limits_where_the_subject_is_looked_for(horse, monkeypatch):
    import ml.runs.remove_background as run_module

    seen = []

    def predict(photo: Image.Image, session: object) -> Image.Image:
        seen.append(photo.size)
        return Image.new("L", photo.size, 255)

    monkeypatch.setattr(run_module, "predict_mask", predict)
    values = np.asarray(run_module.subject_mask(horse[0], object(), "10%,20,50%,300"))
    assert seen == [(308, 280)]
    assert (values[20:300, 77:385] == 255).all()
    assert values.sum() == 255 * 308 * 280
