"""What an operation's declaration says it will make and do, checked before anything is stored or runs: the output
(margins, scales, sheets) against STUDIO_MAX_OUTPUT_PIXELS and the encoders' longest side, the photo against the
operation's own input limit, and the work the plan's megapixels count."""

from __future__ import annotations

import pytest

from ml.operations import InvalidOptions, Limits, get_operation
from ml.registry import MODELS
from studio.settings import from_environment

LIMITS = Limits(max_pixels=50_000_000, max_output_pixels=64_000_000)


def options(name: str, **values: str):
    return get_operation(name).parse(values, models=tuple(MODELS))


def check(name: str, width: int, height: int, limits: Limits = LIMITS, **values: str) -> None:
    operation = get_operation(name)
    operation.check_photo(options(name, **values), width, height, limits)


def test_a_crop_margin_cannot_grow_a_strip_past_the_output_limit():
    # A 4 MP strip: a 2000-pixel margin on every side could make 20000x4250 (85 MP).
    with pytest.raises(InvalidOptions, match=r"^margin: the result could be up to 20000x4250 \(85.0 MP\), above this "
                                             r"server's limit of 64 MP"):
        check("remove_background", 16000, 250, crop="true", margin="2000")
    check("remove_background", 16000, 250, crop="true", margin="100")
    check("remove_background", 16000, 250, margin="2000")  # no crop: the margin does nothing
    assert get_operation("remove_background").output_size(
        options("remove_background", crop="true", margin="2000"), 16000, 250) == (20000, 4250)


def test_an_upscale_is_refused_by_its_own_input_limit_unless_the_operator_raises_it():
    with pytest.raises(InvalidOptions, match=r"^photo: upscale takes photos of up to 2.1 MP on this server; this one "
                                             r"is 4000x4000 \(16.0 MP\)"):
        check("upscale", 4000, 4000)
    check("upscale", 1920, 1080)
    raised = Limits(50_000_000, 64_000_000, {"upscale": 16_000_000})
    check("upscale", 4000, 4000, raised)  # 8000x8000: 64 MP
    with pytest.raises(InvalidOptions, match=r"^scale: the result could be up to 16000x16000"):
        check("upscale", 4000, 4000, raised, scale="4")
    # STUDIO_MAX_PIXELS still caps what an operation's setting allows.
    assert get_operation("upscale").input_limit(Limits(10_000_000, 64_000_000, {"upscale": 16_000_000})) == 10_000_000


def test_an_operation_without_an_input_limit_takes_what_the_server_takes():
    check("remove_background", 7000, 7000)
    assert get_operation("remove_background").input_limit(LIMITS) == 50_000_000
    assert get_operation("remove_background").input_limit(Limits(50_000_000, 1, {"remove_background": 1000})) == 1000


def test_a_print_sheet_counts_against_the_output_limit():
    small = Limits(50_000_000, 5_000_000)
    check("id_photo", 1000, 1000, small, dpi="600")  # the photo alone: 827x1063
    with pytest.raises(InvalidOptions, match=r"^sheet: the result could be up to 3543x2362"):
        check("id_photo", 1000, 1000, small, dpi="600", sheet="true")


@pytest.mark.parametrize("name, values, field", [
    ("remove_background", {"format": "webp"}, "format"),
    ("stylize", {"format": "jpeg"}, "format"),
    ("faces", {}, "photo"),  # its preview is a JPEG of the photo's size
    ("detect", {}, "photo"),
])
def test_a_result_longer_than_its_encoder_can_write_is_refused_naming_why(name, values, field):
    width = 70_000 if field == "photo" or values["format"] == "jpeg" else 20_000
    with pytest.raises(InvalidOptions, match=rf"^{field}: [A-Z]+ images can be at most"):
        check(name, width, 10, **values)


def test_thin_photos_whose_outputs_can_be_written_are_taken():
    check("remove_background", 200_000, 5, format="png")
    check("mask_stats", 2_000_000, 10)  # its preview is at most 1600 pixels long
    check("smart_crop", 200_000, 5, format="png")


def test_the_work_a_plan_counts_is_what_the_operation_does():
    assert get_operation("remove_background").work_pixels(options("remove_background"), 4000, 3000) == 12_000_000
    # Real-ESRGAN makes the 4x image for either scale.
    for scale in ("2", "4"):
        assert get_operation("upscale").work_pixels(options("upscale", scale=scale), 1000, 1000) == 16_000_000
    # The face detector scans a pyramid that starts at 12 / min_face_size of the photo.
    faces = get_operation("faces")
    assert faces.work_pixels(options("faces"), 1000, 1000) == 1_000_000
    assert faces.work_pixels(options("faces", min_face_size="10"), 1000, 1000) > 2_800_000


def test_the_operators_input_limits_are_read_and_checked():
    assert from_environment({})["STUDIO_OPERATION_MAX_PIXELS"] == {}
    setting = from_environment({"STUDIO_OPERATION_MAX_PIXELS": '{"upscale": 16000000}'})
    assert setting["STUDIO_OPERATION_MAX_PIXELS"] == {"upscale": 16_000_000}
    assert Limits.from_config(setting).operation_max_pixels == {"upscale": 16_000_000}
    for bad in ('{"upscale": "lots"}', '{"upscale": 0}', '{"upscale": true}', "[1]"):
        with pytest.raises(ValueError, match="STUDIO_OPERATION_MAX_PIXELS"):
            from_environment({"STUDIO_OPERATION_MAX_PIXELS": bad})
