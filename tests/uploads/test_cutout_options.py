"""Matting, shadow and placement options (issue 21): bad values are a 400 naming the field, through the API and the
form, before anything is stored or queued; the checks are remove_background's declaration's."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.support import samples

pytestmark = pytest.mark.integration

PHOTO = samples.jpeg((48, 32))


@pytest.mark.parametrize("options, field", [
    ({"alpha_matting": "true", "alpha_matting_foreground_threshold": "300"}, "alpha_matting_foreground_threshold"),
    ({"alpha_matting_background_threshold": "-1"}, "alpha_matting_background_threshold"),
    ({"alpha_matting_erode_size": "101"}, "alpha_matting_erode_size"),
    ({"alpha_matting_foreground_threshold": "20", "alpha_matting_background_threshold": "30"},
     "alpha_matting_foreground_threshold"),
    ({"alpha_matting": "sometimes"}, "alpha_matting"),
    ({"shadow_opacity": "101"}, "shadow_opacity"),
    ({"shadow_offset_y": "-51"}, "shadow_offset_y"),
    ({"scale": "5"}, "scale"),
    ({"padding": "41"}, "padding"),
    ({"position": "left-ish"}, "position"),
    ({"position": "50,120"}, "position"),
    ({"canvas": "big"}, "canvas"),
    ({"canvas": "0x100"}, "canvas"),
    ({"roi": "1,2,3"}, "roi"),
    ({"roi": "0,0,200%,10"}, "roi"),
    ({"roi": "0,0,4000,10"}, "roi"),  # past the 48x32 photo
    ({"crop": "true", "position": "center"}, "crop"),
])
def test_bad_cutout_options_are_400_naming_the_field(uploader, nothing_kept, options, field):
    answer = uploader.send(PHOTO, **options)
    assert answer.status == 400
    if uploader.route == "api":
        assert answer.code == "invalid_option"
    assert uploader.names(field) in answer.text
    nothing_kept()


@pytest.mark.parametrize("operation, options", [
    ("upscale", {"remove_background": "true", "alpha_matting_erode_size": "-2"}),
    ("stylize", {"apply_to": "background", "alpha_matting_foreground_threshold": "0"}),
    ("id_photo", {"alpha_matting_background_threshold": "255"}),
])
def test_every_cutting_operation_checks_its_matting_options(uploader, nothing_kept, operation, options):
    answer = uploader.send(PHOTO, operation=operation, **options)
    assert answer.status == 400
    assert uploader.names(next(iter(options.keys() - {'remove_background', 'apply_to'})), operation) in answer.text
    nothing_kept()


def test_a_canvas_past_the_output_limit_is_a_400_naming_it(uploader, nothing_kept):
    answer = uploader.send(PHOTO, canvas="9000x9000")
    assert answer.status == 400
    refusal = "the result could be up to 9000x9000 (81.0 MP), above this server's limit of 64 MP"
    assert uploader.says("canvas", refusal) in answer.text
    nothing_kept()


def test_an_aspect_canvas_covering_a_large_photo_is_checked_too(uploader, nothing_kept):
    buffer = io.BytesIO()
    Image.new("RGB", (16000, 1000), (90, 120, 150)).save(buffer, "JPEG", quality=80)
    answer = uploader.send(buffer.getvalue(), canvas="1:1")
    assert answer.status == 400
    assert uploader.says("canvas", "the result could be up to 16000x16000") in answer.text
    nothing_kept()


def test_good_cutout_options_are_accepted(uploader):
    answer = uploader.send(PHOTO, alpha_matting="true", add_shadow="true", position="50,100", scale="80",
                           canvas="64x64", padding="5", roi="10%,0,100%,100%", bg_color="#ffffff")
    assert answer.status in (201, 202, 302), answer.text
