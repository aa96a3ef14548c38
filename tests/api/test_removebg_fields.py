"""remove.bg's fields translated into the studio's remove_background upload (no services: the translation alone)."""

from __future__ import annotations

import base64

import pytest
from werkzeug.datastructures import FileStorage

from studio.removebg.fields import translate
from studio.tasks.uploads import UploadRejected

URL = {"image_url": "https://example.com/shoe.jpg"}


def photo() -> FileStorage:
    return FileStorage(b"not read here", filename="shoe.jpg", name="image_file")


@pytest.mark.parametrize("size, preset", [(None, "preview"), ("preview", "preview"), ("small", "preview"),
                                          ("regular", "preview"), ("medium", "medium"), ("hd", "hd"), ("4k", "4k"),
                                          ("full", "full"), ("auto", "full"), ("HD", "hd")])
def test_sizes_map_onto_the_studio_presets(size, preset) -> None:
    assert translate({**URL, "size": size}, {}).fields["size"] == preset


@pytest.mark.parametrize("values, placed", [
    ({"scale": "50%"}, {"scale": "50", "position": "center"}),  # a scale centres the subject, as at remove.bg
    ({"scale": "80%", "position": "50% 100%"}, {"scale": "80", "position": "50,100"}),
    ({"position": "30%"}, {"position": "30,30"}),
    ({"position": "center"}, {"position": "center"}),
    ({"roi": "10% 10% 90% 90%"}, {"roi": "10%,10%,90%,90%"}),
    ({"roi": "0px 0px 100px 50px"}, {"roi": "0,0,100,50"}),
    ({"add_shadow": "true"}, {"add_shadow": "true"}),
    ({"scale": "original", "position": "original", "roi": "0% 0% 100% 100%", "add_shadow": "false"}, {}),
])
def test_shadow_scale_position_and_roi_map_onto_the_operation(values, placed) -> None:
    fields = translate({**URL, **values}, {}).fields
    assert {name: fields[name] for name in ("scale", "position", "roi", "add_shadow") if name in fields} == placed


@pytest.mark.parametrize("values, format_", [
    ({}, "png"), ({"format": "auto"}, "png"), ({"format": "jpg"}, "jpeg"), ({"format": "webp"}, "webp"),
    ({"bg_color": "ffffff"}, "jpeg"), ({"bg_color": "#ffffff80"}, "png"), ({"bg_color": "fff8"}, "png"),
    ({"bg_color": "green"}, "jpeg"), ({"bg_image_url": "https://example.com/sea.jpg"}, "jpeg"),
    ({"bg_color": "ffffff", "channels": "alpha"}, "png"), ({"format": "zip"}, "png"),
])
def test_format_auto_is_jpeg_only_for_an_opaque_background(values, format_) -> None:
    assert translate({**URL, **values}, {}).fields["format"] == format_


def test_the_other_options_map_onto_the_operation() -> None:
    call = translate({**URL, "crop": True, "crop_margin": "12px 12px", "bg_color": "red", "channels": "rgba",
                      "type": "product", "add_shadow": "true", "semitransparency": False, "scale": "original",
                      "position": "original", "roi": "0% 0% 100% 100%", "type_level": "2",
                      "bg_image_url": None}, {})

    assert call.fields == {"operation": "remove_background", "size": "preview", "output": "cutout", "crop": "true",
                           "margin": "12", "bg_color": "#ff0000", "format": "jpeg", "image_url": URL["image_url"],
                           "add_shadow": "true"}
    assert call.photo is None and call.detected_type == "product"
    assert translate({**URL, "channels": "alpha"}, {}).fields["output"] == "mask"
    assert translate(URL, {}).detected_type == "other"
    # A margin without crop has no effect at remove.bg either.
    assert "margin" not in translate({**URL, "crop_margin": "30px"}, {}).fields


def test_the_photo_comes_from_a_file_base64_or_a_url() -> None:
    upload = photo()
    assert translate({}, {"image_file": upload}).photo is upload
    decoded = translate({"image_file_b64": "data:image/png;base64," + base64.b64encode(b"\x89PNG").decode()}, {})
    assert decoded.photo.read() == b"\x89PNG"
    background = FileStorage(b"x", filename="sea.jpg", name="bg_image_file")
    assert translate(URL, {"bg_image_file": background}).files == {"bg_image": background}


@pytest.mark.parametrize("values, files, field", [
    ({}, {}, "image_file"),
    ({**URL, "image_file_b64": "aGk="}, {}, "image_url"),
    ({"image_file_b64": "not base64!"}, {}, "image_file_b64"),
    ({"image_file": "shoe.jpg"}, {}, "image_file"),
    ({**URL, "bg_image_file": "sea.jpg"}, {}, "bg_image_file"),
    (URL, {"size": photo()}, "size"),
    ({**URL, "size": "gigantic"}, {}, "size"),
    ({**URL, "format": "gif"}, {}, "format"),
    ({**URL, "type": "spaceship"}, {}, "type"),
    ({**URL, "channels": "rgb"}, {}, "channels"),
    ({**URL, "crop": "maybe"}, {}, "crop"),
    ({**URL, "crop": "true", "crop_margin": "10%"}, {}, "crop_margin"),
    ({**URL, "crop": "true", "crop_margin": "10px 20px"}, {}, "crop_margin"),
    ({**URL, "crop": "true", "crop_margin": "1px 1px 1px"}, {}, "crop_margin"),
    ({**URL, "crop": "true", "crop_margin": "501px"}, {}, "crop_margin"),
    ({**URL, "crop": "true", "crop_margin": "-5px"}, {}, "crop_margin"),
    ({**URL, "scale": "half"}, {}, "scale"),
    ({**URL, "position": "left"}, {}, "position"),
    ({**URL, "position": "10% 20% 30%"}, {}, "position"),
    ({**URL, "roi": "10% 10% 90%"}, {}, "roi"),
    ({**URL, "bg_color": "not-a-colour"}, {}, "bg_color"),
    ({**URL, "format": "zip", "bg_color": "ffffff"}, {}, "format"),
    ({**URL, "format": "zip", "channels": "alpha"}, {}, "format"),
    ({**URL, "webhook_url": "https://example.com/hook"}, {}, "webhook_url"),
    ({**URL, "size": ["hd"]}, {}, "size"),
])
def test_a_bad_field_is_a_400_naming_it(values, files, field) -> None:
    with pytest.raises(UploadRejected) as refused:
        translate(values, files)

    assert refused.value.status == 400
    assert refused.value.message.startswith(f"{field}:")
