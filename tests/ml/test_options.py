"""The option parser shared by the CLI, the pages and the API."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ml.options import InvalidOptions, ProcessingOptions, parse_colour

MODELS = ("u2netp", "u2net")


def parse(**data):
    return ProcessingOptions.from_mapping(data, models=MODELS)


def test_defaults_are_a_png_cutout_with_the_default_model():
    assert parse() == ProcessingOptions(model="u2netp", output="cutout", format="png")


def test_form_strings_are_parsed():
    options = parse(model="u2net", output="MASK", format="jpg", blur="12", crop="on", margin="30", bg_color="#FFF")
    assert options == ProcessingOptions("u2net", "mask", "jpeg", "#ffffffff", 12, True, 30)


@pytest.mark.parametrize("value, rgba", [("#000", (0, 0, 0, 255)), ("00ff0080", (0, 255, 0, 128)),
                                         ("#12345678", (0x12, 0x34, 0x56, 0x78)), ("#abcd", (0xAA, 0xBB, 0xCC, 0xDD))])
def test_hex_colours_with_or_without_alpha(value, rgba):
    assert parse_colour(value) == rgba


@pytest.mark.parametrize("data, field", [
    ({"model": "dall-e"}, "model"), ({"output": "sketch"}, "output"), ({"format": "gif"}, "format"),
    ({"bg_color": "red"}, "bg_color"), ({"blur": "-1"}, "blur"), ({"blur": "101"}, "blur"), ({"blur": 2.5}, "blur"),
    ({"margin": "x"}, "margin"), ({"crop": "maybe"}, "crop"), ({"crop": []}, "crop"), ({"format": 3}, "format"),
    ({"colour": "#fff"}, "colour"), ({"format": "jpeg"}, "format"), ({"format": "jpeg", "bg_color": "#fff8"}, "format"),
    ({"model": ["u2netp"]}, "model"), ({"bg_color": 16777215}, "bg_color"), ({"blur": True}, "blur"),
])
def test_bad_values_name_the_field(data, field):
    with pytest.raises(InvalidOptions) as error:
        parse(**data)
    assert error.value.field == field and error.value.message


def test_jpeg_needs_an_opaque_background_or_a_blur():
    assert parse(format="jpeg", bg_color="#ffffff").format == "jpeg"
    assert parse(format="jpeg", blur="5").format == "jpeg"
    assert parse(format="jpeg", output="mask").format == "jpeg"


def test_huge_values_are_refused_with_a_short_message():
    with pytest.raises(InvalidOptions) as error:
        parse(format="x" * 100_000)
    assert len(str(error.value)) < 200


def test_options_round_trip_through_json_data():
    options = parse(bg_color="#102030", blur="3", crop="true", margin="4")
    assert ProcessingOptions.from_mapping(options.to_dict(), models=MODELS) == options


json_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30),
                        st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers()))


@given(st.dictionaries(st.sampled_from(ProcessingOptions.FIELDS + ("other",)), json_values, max_size=8))
def test_any_input_parses_or_raises_invalid_options(data):
    try:
        options = ProcessingOptions.from_mapping(data, models=MODELS)
    except InvalidOptions as error:
        assert error.field and error.message
    else:
        assert options.output in ("cutout", "mask") and 0 <= options.blur <= 100


def test_size_presets_parse_and_others_are_refused():
    assert ProcessingOptions.from_mapping({}).size == "full"
    assert ProcessingOptions.from_mapping({"size": " HD "}).size == "hd"
    assert ProcessingOptions.from_mapping({"size": "preview"}).max_output_pixels == 250_000
    assert ProcessingOptions.from_mapping({"size": "full"}).max_output_pixels is None
    with pytest.raises(InvalidOptions, match="size: 'huge' is not one of full, 4k, hd, medium, preview"):
        ProcessingOptions.from_mapping({"size": "huge"})


def test_a_background_image_is_one_background_among_colour_and_blur():
    assert ProcessingOptions.from_mapping({"bg_image": True, "format": "jpeg"}).bg_image  # opaque: JPEG is fine
    for other in ({"bg_color": "#fff"}, {"blur": "5"}):
        with pytest.raises(InvalidOptions, match="bg_image: choose one background"):
            ProcessingOptions.from_mapping({"bg_image": "true", **other})


def test_post_process_is_a_flag():
    assert ProcessingOptions.from_mapping({"post_process": "on"}).post_process is True
    assert ProcessingOptions.from_mapping({}).post_process is False
    with pytest.raises(InvalidOptions, match="post_process: must be true or false"):
        ProcessingOptions.from_mapping({"post_process": "maybe"})
