"""smart_crop crops: at any shape the result is the photo itself, never flat bars, and keeps the main subject's centre;
padding is an explicit choice (fill: a blurred extension or a colour) that holds the whole subject."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from ml.edits.smart_crop import smart_crop_box
from ml.models.nanodet.infer import Detection
from ml.operations import InvalidOptions, Limits, get_operation
from ml.registry import MODELS
from ml.runner import process

LIMITS = Limits(50_000_000, 64_000_000)
PHOTOS = ("girl.png", "horse.jpg", "Two_dancers.jpg", "Athlete-Intake.jpg", "vangogh.jpeg", "boat.jpg")
ASPECTS = ("1:1", "4:5", "16:9")
# A border row or column of these photos varies more than this (0-255); a flat bar, JPEG-encoded, does not.
FLAT_STD = 4.0
# Photos whose top is a clear sky, as flat as a bar: their crops are checked against the photo instead.
SKIES = ("boat.jpg",)


def run(name: str, photo: bytes, model_dir, **options) -> dict:
    operation = get_operation(name)
    parsed = operation.parse(options, models=tuple(MODELS))
    outputs = process(operation, photo, parsed, model_dir=model_dir, limits=LIMITS, progress=lambda *_: None)
    return {output.name: output for output in outputs}


def decoded(output) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(output.data)).convert("RGB"), dtype=float)


def borders(pixels: np.ndarray) -> dict[str, np.ndarray]:
    return {"top": pixels[0], "bottom": pixels[-1], "left": pixels[:, 0], "right": pixels[:, -1]}


def centre(box) -> tuple[float, float]:
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def inside(point, box) -> bool:
    return box[0] <= point[0] <= box[2] and box[1] <= point[1] <= box[3]


@pytest.fixture(scope="module")
def objects(model_dir, photos_dir) -> dict[str, list[dict]]:
    """Return what detect finds on each photo."""
    found = {}
    for name in PHOTOS:
        result = run("detect", (photos_dir / name).read_bytes(), model_dir)["result"]
        found[name] = json.loads(result.data)["objects"]
    return found


def main_subject(objects: list[dict]) -> dict:
    """Return the main subject as documented: the object with the largest area times score."""
    return max(objects, key=lambda item: (item["box"][2] - item["box"][0]) * (item["box"][3] - item["box"][1])
               * item["score"])


@pytest.mark.slow
@pytest.mark.parametrize("aspect", ASPECTS)
@pytest.mark.parametrize("name", PHOTOS)
def test_the_crop_is_the_photo_at_the_shape_with_the_main_subjects_centre(model_dir, photos_dir, objects, name,
                                                                          aspect):
    outputs = run("smart_crop", (photos_dir / name).read_bytes(), model_dir, aspect=aspect)
    pixels, crop = decoded(outputs["result"]), json.loads(outputs["crop"].data)
    height, width = pixels.shape[:2]
    across, down = (int(side) for side in aspect.split(":"))
    assert abs(width - height * across / down) <= 1, (width, height)
    if name not in SKIES:
        for side, line in borders(pixels).items():
            assert line.std(axis=0).max() > FLAT_STD, f"the {side} border is a flat colour"
    photo = Image.open(photos_dir / name).convert("RGB")
    left, top, right, bottom = crop["box"]
    assert 0 <= left and 0 <= top and right <= photo.width and bottom <= photo.height
    assert (right - left, bottom - top) == (width, height)
    # Every border is the photo's own pixels there (up to JPEG's rounding).
    expected = borders(np.asarray(photo.crop(crop["box"]), dtype=float))
    for side, line in borders(pixels).items():
        assert np.abs(line - expected[side]).mean() < 6, f"the {side} border is not the photo's"
    assert inside(centre(main_subject(objects[name])["box"]), crop["box"])


@pytest.mark.slow
@pytest.mark.parametrize("aspect", ASPECTS)
def test_the_girl_beside_the_horse_is_kept_when_both_cannot_fit(model_dir, photos_dir, objects, aspect):
    people = [item for item in objects["girl.png"] if item["label"] == "person"]
    outputs = run("smart_crop", (photos_dir / "girl.png").read_bytes(), model_dir, aspect=aspect)
    box = json.loads(outputs["crop"].data)["box"]
    if aspect == "4:5":
        # Too narrow for the horse's middle and the girl together: the main subject's middle stays.
        assert inside(centre(main_subject(objects["girl.png"])["box"]), box)
    else:
        assert people and inside(centre(people[0]["box"]), box)


@pytest.mark.slow
def test_with_nothing_detected_the_subject_masks_centroid_stays(model_dir, photos_dir):
    photo = (photos_dir / "Two_dancers.jpg").read_bytes()
    outputs = run("smart_crop", photo, model_dir, aspect="16:9", classes="giraffe")
    crop = json.loads(outputs["crop"].data)
    assert crop["basis"] == "mask" and crop["whole"] is False
    mask = run("remove_background", photo, model_dir, output="mask")["result"]
    rows, columns = np.nonzero(np.asarray(Image.open(io.BytesIO(mask.data)).convert("L")) >= 128)
    assert inside((columns.mean(), rows.mean()), crop["box"])
    for side, line in borders(decoded(outputs["result"])).items():
        assert line.std(axis=0).max() > FLAT_STD, f"the {side} border is a flat colour"


@pytest.mark.slow
@pytest.mark.parametrize("aspect", ["1:1", "4:5"])
def test_fill_extends_the_photo_to_hold_the_whole_subject(model_dir, photos_dir, aspect):
    photo = (photos_dir / "horse.jpg").read_bytes()
    size = Image.open(photos_dir / "horse.jpg").size
    across, down = (int(side) for side in aspect.split(":"))
    for fill in ({"fill": "blur"}, {"fill": "color", "fill_color": "#ff0000"}):
        outputs = run("smart_crop", photo, model_dir, aspect=aspect, format="png", **fill)
        crop, pixels = json.loads(outputs["crop"].data), decoded(outputs["result"])
        left, top, right, bottom = crop["box"]
        subject = crop["subject"]
        assert crop["whole"] is True
        assert left <= subject[0] and top <= subject[1] and right >= subject[2] and bottom >= subject[3]
        assert pixels.shape[:2] == (bottom - top, right - left)
        assert pixels.shape[1] * down == pixels.shape[0] * across
        # The horse is wider than the photo is tall: the crop reaches past the top or the bottom.
        assert top < 0 or bottom > size[1]
        past = pixels[0] if top < 0 else pixels[-1]
        if fill["fill"] == "color":
            assert {tuple(pixel) for pixel in past} == {(255, 0, 0)}
        else:
            assert past.std(axis=0).max() > FLAT_STD


@pytest.mark.parametrize("options, field", [
    ({"fill": "pad"}, "fill"),
    ({"fill": "color", "fill_color": "greenish"}, "fill_color"),
    ({"fill": "color", "fill_color": "#00000080"}, "fill_color"),
])
def test_bad_fill_options_are_refused_naming_the_field(options, field):
    with pytest.raises(InvalidOptions) as refused:
        get_operation("smart_crop").parse(options)
    assert refused.value.field == field


def test_crop_is_the_default_and_colour_an_alias():
    operation = get_operation("smart_crop")
    assert operation.parse({}).fill == "none"
    options = operation.parse({"fill": "Colour", "fill_color": "#0f0", "format": "png"})
    assert options.fill == "color" and options.fill_rgba == (0, 255, 0, 255)
    assert operation.parse({"fill": "color", "fill_color": "#00000080", "format": "png"}).fill_rgba[3] == 0x80


def test_a_fill_that_could_exceed_the_output_limit_is_refused_naming_it():
    operation = get_operation("smart_crop")
    # A 200000x5 strip in a square holding all of it: 200000x200000.
    with pytest.raises(InvalidOptions, match=r"^fill: the result could be up to 200000x200000"):
        operation.check_photo(operation.parse({"fill": "blur", "format": "png"}), 200_000, 5, LIMITS)
    operation.check_photo(operation.parse({"format": "png"}), 200_000, 5, LIMITS)  # a crop is never larger
    assert operation.output_size(operation.parse({"fill": "blur", "aspect": "16:9"}), 1000, 1000) == (1792, 1008)


# The geometry alone, with made-up detections.

def test_a_person_beside_the_main_object_is_kept_with_its_centre():
    horse, girl = Detection("horse", (7, 34, 263, 250), 0.8), Detection("person", (304, 98, 368, 249), 0.65)
    choice = smart_crop_box((400, 267), [horse, girl], None, (1, 1), 0.1)
    assert choice.box[2] - choice.box[0] == 267 and choice.whole is False
    assert inside(centre(girl.box), choice.box) and inside(centre(horse.box), choice.box)
    # A cup as sure as the girl counts half as much: the crop keeps the horse whole instead.
    cup = smart_crop_box((400, 267), [horse, Detection("cup", (304, 98, 368, 249), 0.65)], None, (1, 1), 0.1)
    assert cup.box[0] <= horse.box[0] and cup.box[2] >= horse.box[2]


def test_a_person_too_tall_for_the_shape_keeps_the_head():
    person = Detection("person", (400, 100, 600, 900), 0.9)
    choice = smart_crop_box((1000, 1000), [person], None, (16, 9), 0.1)
    assert choice.box[1] <= 100 and choice.box[3] < 900 and choice.whole is False
    assert (choice.box[2] - choice.box[0], choice.box[3] - choice.box[1]) == (992, 558)


def test_two_people_are_not_both_cut_in_half():
    left, right = Detection("person", (90, 0, 510, 580), 0.55), Detection("person", (480, 20, 1090, 620), 0.7)
    choice = smart_crop_box((1200, 628), [left, right], None, (4, 5), 0.1)
    kept = [max(0, min(choice.box[2], box[2]) - max(choice.box[0], box[0])) / (box[2] - box[0])
            for box in (left.box, right.box)]
    assert max(kept) > 0.8, kept
