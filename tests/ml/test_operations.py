"""Operations as data: each declaration validates its options, publishes them as JSON Schema, and runs; the
registry is importable without torch; remove_background keeps every rule of the old option parser."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from ml.operations import DEFAULT_OPERATION, OPERATIONS, InvalidOptions, Limits, UnknownOperation, get_operation
from ml.operations.base import Inputs
from ml.operations.remove_background import parse_colour
from ml.runner import RunContext, encode, run

MODELS = ("u2netp", "u2net")
MODELS_REGISTERED = tuple(__import__("ml.registry", fromlist=["MODELS"]).MODELS)
REMOVE_BACKGROUND = get_operation("remove_background")


def parse(**data):
    return REMOVE_BACKGROUND.parse(data, models=MODELS)


def test_the_registry_and_every_declaration_load_without_torch():
    code = ("import sys, ml.operations, ml.registry, studio.tasks.forms; "
            "print(sorted(ml.operations.OPERATIONS)); print('torch' in sys.modules)")
    output = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    names, torch_loaded = output.split("\n")[:2]
    assert json.loads(names.replace("'", '"')) == sorted(OPERATIONS) and torch_loaded == "False"


def test_operations_are_found_by_name_and_unknown_ones_named_in_the_error():
    assert get_operation(" Mask_Stats ").name == "mask_stats"
    assert DEFAULT_OPERATION == "remove_background"
    with pytest.raises(UnknownOperation, match="'sharpen' is not an operation; choose one of remove_background"):
        get_operation("sharpen")


@pytest.mark.parametrize("operation", OPERATIONS.values(), ids=list(OPERATIONS))
def test_every_declaration_is_complete_and_its_schema_describes_its_options(operation):
    assert operation.title and operation.description.endswith(".") and operation.outputs
    assert operation.result.name == "result" and len({output.name for output in operation.outputs}) == \
        len(operation.outputs)
    schema = operation.option_schema()
    assert schema["type"] == "object" and schema["additionalProperties"] is False
    for name, prop in schema["properties"].items():
        assert prop.get("title") and prop.get("description"), name
        assert "default" in prop, f"{operation.name}.{name} needs a default: the form and the CLI show it"
    defaults = operation.parse({}, models=tuple(MODELS_REGISTERED))
    assert operation.restore(defaults.to_dict()) == defaults
    assert set(operation.models) <= set(MODELS_REGISTERED)
    if operation.models:
        assert schema["properties"]["model"]["enum"] == list(operation.models)


def test_defaults_are_a_png_cutout_with_the_default_model():
    options = parse()
    assert (options.model, options.output, options.format, options.bg_color) == ("u2netp", "cutout", "png", None)
    assert REMOVE_BACKGROUND.parse({}, models=MODELS, default_model="u2net").model == "u2net"


def test_form_strings_are_parsed():
    options = parse(model="u2net", output="MASK", format="jpg", blur="12", crop="on", margin="30", bg_color="#FFF")
    assert (options.model, options.output, options.format, options.blur, options.crop, options.margin,
            options.bg_color) == ("u2net", "mask", "jpeg", 12, True, 30, "#ffffffff")


@pytest.mark.parametrize("value, rgba", [("#000", (0, 0, 0, 255)), ("00ff0080", (0, 255, 0, 128)),
                                         ("#12345678", (0x12, 0x34, 0x56, 0x78)), ("#abcd", (0xAA, 0xBB, 0xCC, 0xDD))])
def test_hex_colours_with_or_without_alpha(value, rgba):
    assert parse_colour(value) == rgba


@pytest.mark.parametrize("value, rgba", [("white", (255, 255, 255, 255)), ("Black", (0, 0, 0, 255)),
                                         (" light grey ", (211, 211, 211, 255)), ("skyblue", (135, 206, 235, 255))])
def test_colours_by_css_name(value, rgba):
    assert parse_colour(value) == rgba


@pytest.mark.parametrize("value", ["reddish", "", "#12", "rgb(1,2,3)", "white!"])
def test_what_is_not_a_colour_is_refused_saying_what_is(value):
    with pytest.raises(ValueError, match="is not a colour: use a name like white or black, or a hex code"):
        parse_colour(value)


@pytest.mark.parametrize("data, field", [
    ({"model": "dall-e"}, "model"), ({"output": "sketch"}, "output"), ({"format": "gif"}, "format"),
    ({"bg_color": "reddish"}, "bg_color"), ({"blur": "-1"}, "blur"), ({"blur": "101"}, "blur"), ({"blur": 2.5}, "blur"),
    ({"margin": "x"}, "margin"), ({"crop": "maybe"}, "crop"), ({"crop": []}, "crop"), ({"format": 3}, "format"),
    ({"colour": "#fff"}, "colour"), ({"format": "jpeg"}, "format"), ({"format": "jpeg", "bg_color": "#fff8"}, "format"),
    ({"model": ["u2netp"]}, "model"), ({"bg_color": 16777215}, "bg_color"), ({"blur": True}, "blur"),
    ({"size": "huge"}, "size"),
])
def test_bad_values_name_the_field(data, field):
    with pytest.raises(InvalidOptions) as error:
        parse(**data)
    assert error.value.field == field and error.value.message


def test_messages_read_like_the_option_rules():
    cases = [({"size": "huge"}, "size: 'huge' is not one of full, 4k, hd, medium, preview"),
             ({"blur": "101"}, "blur: must be from 0 to 100, got 101"),
             ({"blur": "lots"}, "blur: must be a whole number from 0 to 100"),
             ({"post_process": "maybe"}, "post_process: must be true or false"),
             ({"format": "jpeg"}, "format: JPEG has no transparency: choose a background colour (bg_color) or a "
                                  "blur, or PNG")]
    for data, message in cases:
        with pytest.raises(InvalidOptions) as error:
            parse(**data)
        assert str(error.value) == message


def test_a_model_that_is_registered_but_not_installed_is_refused_as_such():
    with pytest.raises(InvalidOptions, match="'u2net_human_seg' is not installed on this server; installed: u2netp"):
        REMOVE_BACKGROUND.parse({"model": "u2net_human_seg"}, models=("u2netp",))
    with pytest.raises(InvalidOptions, match="no model for remove_background is installed"):
        REMOVE_BACKGROUND.parse({}, models=())


def test_an_attachment_is_an_option_set_by_the_file_never_typed_in():
    assert REMOVE_BACKGROUND.parse({"format": "jpeg"}, models=MODELS, attachments=frozenset({"bg_image"})).bg_image
    # Typed in, it is overruled by whether a file came.
    assert not REMOVE_BACKGROUND.parse({"bg_image": "true"}, models=MODELS).bg_image
    for other in ({"bg_color": "#fff"}, {"blur": "5"}):
        with pytest.raises(InvalidOptions, match="bg_image: choose one background"):
            REMOVE_BACKGROUND.parse(other, models=MODELS, attachments=frozenset({"bg_image"}))
    schema = REMOVE_BACKGROUND.option_schema()["properties"]
    assert schema["bg_image"]["readOnly"] is True and schema["margin"]["x-requires"] == {"crop": True}


def test_huge_values_are_refused_with_a_short_message():
    with pytest.raises(InvalidOptions) as error:
        parse(format="x" * 100_000)
    assert len(str(error.value)) < 200


json_values = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30),
                        st.lists(st.integers(), max_size=3), st.dictionaries(st.text(max_size=5), st.integers()))
option_names = sorted({name for operation in OPERATIONS.values() for name in operation.options.model_fields})


@given(st.sampled_from(list(OPERATIONS.values())),
       st.dictionaries(st.sampled_from(option_names + ["other"]), json_values, max_size=8))
def test_any_input_parses_or_raises_invalid_options_naming_a_field(operation, data):
    try:
        options = operation.parse(data, models=MODELS_REGISTERED)
    except InvalidOptions as error:
        assert error.field and error.message
    else:
        assert operation.restore(options.to_dict()) == options


def test_the_declarations_agree_with_the_models_they_describe():
    from ml.edits.id_photo import ID_PRESETS
    from ml.operations.id_photo import IdPhotoOptions
    from ml.operations.stylize import STYLE_NAMES
    from ml.models.style26.infer import STYLES

    assert STYLE_NAMES == STYLES
    assert list(IdPhotoOptions.model_json_schema()["properties"]["preset"]["enum"]) == list(ID_PRESETS)


def test_a_helper_model_that_is_not_installed_is_refused_naming_its_option():
    stylize = get_operation("stylize")
    with pytest.raises(InvalidOptions, match="mask_model: 'u2net' is not installed"):
        stylize.parse({"apply_to": "background", "mask_model": "u2net"}, models=("style26", "u2netp"))
    assert stylize.parse({"apply_to": "all", "mask_model": "u2net"}, models=("style26",)).apply_to == "all"
    with pytest.raises(InvalidOptions, match="blend_with: choose a second style other than the first"):
        stylize.parse({"style": "sepia-oils", "blend_with": "sepia-oils"}, models=("style26",))
    with pytest.raises(InvalidOptions, match="classes: 'unicorn' is not a kind of object the detector knows"):
        get_operation("detect").parse({"classes": "dog, unicorn"}, models=("nanodet",))
    assert get_operation("detect").parse({"classes": " Dog,person,dog "}, models=("nanodet",)).classes == \
        "dog, person"


def test_mask_stats_reports_the_subject_in_photo_pixels(model_dir):
    operation = get_operation("mask_stats")
    photo = Image.new("RGB", (120, 80), (20, 20, 20))
    photo.paste((250, 250, 250), (30, 20, 90, 60))
    options = operation.parse({"threshold": "128"}, models=("u2netp",))
    result = run(operation, Inputs(photo), options, RunContext(model_dir, Limits(10**8, 10**8)))
    subject = result.main["subject"]
    assert (result.main["width"], result.main["height"]) == (120, 80) and subject["found"]
    x1, y1, x2, y2 = subject["box"]
    assert abs(x1 - 30) <= 6 and abs(y1 - 20) <= 6 and abs(x2 - 90) <= 6 and abs(y2 - 60) <= 6
    assert subject["area"] == round(subject["area_fraction"] * 120 * 80)
    assert subject["centroid"] == pytest.approx([60, 40], abs=4)
    encoded = encode(operation, result, options)
    kinds = [(output.name, output.media_type) for output in encoded]
    assert kinds == [("result", "application/json"), ("preview", "image/jpeg")]
    assert json.loads(encoded[0].data) == result.main


def test_mask_stats_says_when_there_is_no_subject():
    from ml.runs.mask_stats import measure

    stats = measure(Image.fromarray(np.zeros((10, 20), dtype=np.uint8)), 128)
    assert stats == {"width": 20, "height": 10, "subject": {"found": False, "box": None, "area": 0,
                                                            "area_fraction": 0.0, "centroid": None}}


def test_an_upscale_too_large_for_the_servers_limit_is_refused_before_anything_runs():
    upscale = get_operation("upscale")
    options = upscale.parse({"scale": "4"}, models=MODELS_REGISTERED)
    limits = Limits(max_pixels=50_000_000, max_output_pixels=64_000_000,
                    operation_max_pixels={"upscale": 50_000_000})
    upscale.check_photo(options, 2000, 2000, limits)  # 8000x8000 = 64 MP: just within
    with pytest.raises(InvalidOptions, match=r"scale: the result could be up to 8004x8000 \(64.0 MP\), above this "
                                             r"server's limit of 64 MP"):
        upscale.check_photo(options, 2001, 2000, limits)
    # The job's time follows the photo's size: minutes per megapixel on one thread.
    assert upscale.timeout(options, 2_000_000) > 10 * upscale.timeout(options, 100_000) / 4
    with pytest.raises(InvalidOptions, match="format: JPEG has no transparency"):
        upscale.parse({"remove_background": "true", "format": "jpeg"}, models=MODELS_REGISTERED)
