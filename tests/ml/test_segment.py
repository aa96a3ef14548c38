"""segment and remove_background's keep: masks inside their boxes, COCO RLE both ways, the chosen objects kept."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from ml.edits.coco_rle import decode_rle, encode_rle
from ml.edits.segments import (CONTEXT_MARGIN, OBJECT_COLOURS, ObjectMask, draw_segments, object_mask, pixel_box,
                               union_mask)
from ml.models.nanodet.infer import Detection
from ml.operations import InvalidOptions, Limits, get_operation
from ml.operations.keep import KeepChoice, parse_keep
from ml.operations.segment import MAX_OBJECTS
from ml.registry import MODELS
from ml.runner import OperationFailed, process
from ml.runs.keep import chosen_objects

LIMITS = Limits(50_000_000, 64_000_000)
INSTALLED = tuple(MODELS)


def reference_counts(mask: np.ndarray) -> list[int]:
    """Return COCO's uncompressed RLE counts, written from its definition: column-major runs, zeros first."""
    flat = mask.flatten(order="F").astype(bool)
    counts, value, run = [], False, 0
    for pixel in flat:
        if pixel == value:
            run += 1
        else:
            counts.append(run)
            value, run = pixel, 1
    counts.append(run)
    return counts


@pytest.mark.parametrize("shape", [(1, 1), (1, 37), (29, 1), (17, 23), (64, 48)])
@pytest.mark.parametrize("fill", [0.0, 0.3, 1.0])
def test_rle_round_trips_and_matches_cocos_definition(shape, fill):
    mask = (np.random.default_rng(shape[0] * 100 + shape[1]).random(shape) < fill).astype(np.uint8)
    rle = encode_rle(mask)
    assert rle["size"] == list(shape) and isinstance(rle["counts"], str)
    json.dumps(rle)
    assert np.array_equal(decode_rle(rle), mask)
    # The same mask written as COCO documents uncompressed RLE decodes to it too, so our strings are COCO's.
    assert np.array_equal(decode_rle({"size": list(shape), "counts": reference_counts(mask)}), mask)


def test_a_box_becomes_whole_pixels_inside_the_photo():
    assert pixel_box((10.4, 20.6, 30.5, 40.0), (100, 100)) == (10, 20, 31, 40)
    assert pixel_box((-5.0, -5.0, 150.0, 120.0), (100, 80)) == (0, 0, 100, 80)
    assert pixel_box((99.5, 79.5, 99.6, 79.6), (100, 80)) == (99, 79, 100, 80)


def test_an_objects_mask_is_the_model_on_its_box_with_context_cut_back_to_the_box():
    photo = Image.new("RGB", (200, 100), "white")
    seen: list[tuple[int, int]] = []

    def everywhere(crop: Image.Image) -> Image.Image:
        seen.append(crop.size)
        return Image.new("L", crop.size, 255)

    item = object_mask(photo, Detection("dog", (50.0, 20.0, 150.0, 70.0), 0.9), everywhere)
    # The model saw the box grown by the margin on each side...
    assert seen == [(round(100 * (1 + 2 * CONTEXT_MARGIN)), round(50 * (1 + 2 * CONTEXT_MARGIN)))]
    # ...and the mask is the box only: nothing outside it, however much the model marked there.
    full = item.full(photo.size, 128)
    assert full[20:70, 50:150].all() and full.sum() == 100 * 50


def test_union_takes_each_pixels_surest_object():
    left = ObjectMask(Detection("dog", (0, 0, 4, 4), 0.9), (0, 0, 4, 4), np.full((4, 4), 100, np.uint8))
    right = ObjectMask(Detection("cat", (2, 2, 6, 6), 0.9), (2, 2, 6, 6), np.full((4, 4), 200, np.uint8))
    union = union_mask([left, right], (8, 8))
    assert union[0, 0] == 100 and union[3, 3] == 200 and union[7, 7] == 0


@pytest.mark.parametrize("value, choice", [
    ("Dog, person ,dog", KeepChoice(labels=frozenset({"dog", "person"}))),
    ("LARGEST", KeepChoice(largest=True)),
    ("2, 0", KeepChoice(indices=(2, 0))),
    ("traffic  light", KeepChoice(labels=frozenset({"traffic light"}))),
    ("", None),
])
def test_keep_is_read_as_labels_the_largest_or_indices(value, choice):
    options = get_operation("remove_background").parse({"keep": value})
    assert parse_keep(options.keep) == choice


@pytest.mark.parametrize("value, words", [
    ("unicorn", "'unicorn' is not a kind of object the detector knows"),
    ("dog, unicorn", "'unicorn' is not a kind of object"),
    ("largest, dog", "largest keeps one object"),
    ("dog, 1", "not both"),
    ("10", "indices go from 0 to 9"),
    ("-1", "'-1' is not a kind of object"),
])
def test_a_bad_keep_is_refused_naming_keep(value, words):
    with pytest.raises(InvalidOptions) as refused:
        get_operation("remove_background").parse({"keep": value})
    assert refused.value.field == "keep" and words in refused.value.message


def test_keep_needs_the_detector_and_counts_each_objects_work():
    operation = get_operation("remove_background")
    plain, keeping = operation.parse({}), operation.parse({"keep": "dog"})
    assert operation.models_for(plain) == ("u2netp",) and operation.models_for(keeping) == ("u2netp", "nanodet")
    assert operation.work_pixels(plain, 1000, 1000) == 1_000_000
    assert operation.work_pixels(keeping, 1000, 1000) > 2_000_000


def test_segment_bounds_its_objects_and_counts_each_one():
    operation = get_operation("segment")
    with pytest.raises(InvalidOptions) as refused:
        operation.parse({"max_objects": MAX_OBJECTS + 1})
    assert refused.value.field == "max_objects"
    few, many = operation.parse({"max_objects": 2}), operation.parse({"max_objects": MAX_OBJECTS})
    assert operation.work_pixels(few, 1000, 1000) == 3_000_000
    assert operation.work_pixels(many, 1000, 1000) == (1 + MAX_OBJECTS) * 1_000_000
    assert operation.models_for(few) == ("nanodet", "u2netp")


def test_keep_chooses_objects_by_label_size_or_index_and_says_when_none_is_there():
    found = [Detection("person", (0, 0, 10, 10), 0.9), Detection("dog", (0, 0, 50, 50), 0.8),
             Detection("dog", (60, 60, 70, 70), 0.7)]
    assert chosen_objects(KeepChoice(labels=frozenset({"dog"})), found) == [1, 2]
    assert chosen_objects(KeepChoice(largest=True), found) == [1]
    assert chosen_objects(KeepChoice(indices=(2, 0)), found) == [2, 0]
    with pytest.raises(OperationFailed, match="no cat was found in this photo; segment finds 0: person, 1: dog"):
        chosen_objects(KeepChoice(labels=frozenset({"cat"})), found)
    with pytest.raises(OperationFailed, match="no object 3"):
        chosen_objects(KeepChoice(indices=(3,)), found)
    with pytest.raises(OperationFailed, match="segment finds no object"):
        chosen_objects(KeepChoice(largest=True), [])


# The models on a fixture photo with two kinds of object: a horse led by a girl.

def run(name: str, photo: bytes, model_dir, **options):
    operation = get_operation(name)
    outputs = process(operation, photo, operation.parse(options, models=INSTALLED), model_dir=model_dir,
                      limits=LIMITS)
    return {output.name: output for output in outputs}


@pytest.fixture(scope="module")
def girl(photos_dir) -> bytes:
    return (photos_dir / "girl.png").read_bytes()


@pytest.fixture(scope="module")
def segmented(girl, model_dir) -> dict:
    outputs = run("segment", girl, model_dir)
    assert Image.open(io.BytesIO(outputs["preview"].data)).size == (400, 267)
    return json.loads(outputs["result"].data)


def masks_by_label(segmented: dict) -> dict[str, np.ndarray]:
    return {item["label"]: decode_rle(item["mask"]).astype(bool) for item in segmented["objects"]}


@pytest.mark.slow
def test_segment_outlines_the_horse_and_the_girl_each_inside_its_box(segmented):
    assert (segmented["width"], segmented["height"]) == (400, 267)
    assert [item["label"] for item in segmented["objects"]] == ["horse", "person"]
    for index, item in enumerate(segmented["objects"]):
        mask = decode_rle(item["mask"]).astype(bool)
        x1, y1, x2, y2 = item["box"]
        outside = mask.copy()
        outside[max(y1 - 1, 0):y2 + 1, max(x1 - 1, 0):x2 + 1] = False
        assert item["index"] == index and item["area"] == mask.sum()
        assert not outside.any()
        # The outline, not the box: a good share of it, far from all of it.
        assert 0.2 < mask.sum() / ((x2 - x1) * (y2 - y1)) < 0.9
    masks = masks_by_label(segmented)
    assert (masks["horse"] & masks["person"]).sum() < 0.02 * masks["person"].sum()


@pytest.mark.slow
def test_segment_takes_only_the_classes_asked_and_at_most_max_objects(girl, model_dir):
    people = json.loads(run("segment", girl, model_dir, classes="person")["result"].data)
    assert [item["label"] for item in people["objects"]] == ["person"]
    one = json.loads(run("segment", girl, model_dir, max_objects=1)["result"].data)
    assert one["count"] == 1 and one["objects"][0]["label"] == "horse"


def alpha(output) -> np.ndarray:
    return np.asarray(Image.open(io.BytesIO(output.data)).getchannel("A"))


@pytest.mark.slow
@pytest.mark.parametrize("keep, kept, gone", [
    ("horse", "horse", "person"), ("person", "person", "horse"), ("largest", "horse", "person"),
    ("1", "person", "horse"),
])
def test_keep_leaves_the_chosen_objects_pixels_and_takes_the_others(girl, model_dir, segmented, keep, kept, gone):
    masks = masks_by_label(segmented)
    cutout = alpha(run("remove_background", girl, model_dir, keep=keep)["result"])
    assert cutout[masks[kept]].mean() > 200
    assert cutout[masks[gone]].mean() < 5
    # Nothing of the meadow around them either.
    assert cutout[~(masks["horse"] | masks["person"])].mean() < 10


@pytest.mark.slow
def test_keep_fails_with_a_reason_when_the_photo_has_no_such_object(girl, model_dir):
    with pytest.raises(OperationFailed, match="keep: no dog was found in this photo; segment finds 0: horse, "
                                              "1: person"):
        run("remove_background", girl, model_dir, keep="dog")


def test_the_preview_tints_each_object_in_its_own_colour_and_leaves_the_rest():
    photo = Image.new("RGB", (300, 200), (128, 128, 128))
    first = np.zeros((100, 100), np.uint8)
    first[20:80, 20:80] = 255
    objects = [ObjectMask(Detection("dog", (0, 0, 100, 100), 0.9), (0, 0, 100, 100), first),
               ObjectMask(Detection("dog", (150, 50, 250, 150), 0.8), (150, 50, 250, 150),
                          np.full((100, 100), 255, np.uint8))]
    preview = np.asarray(draw_segments(photo, objects, 128)).astype(int)
    for (x, y), colour in (((50, 50), OBJECT_COLOURS[0]), ((200, 100), OBJECT_COLOURS[1])):
        assert np.abs(preview[y, x] - (np.asarray(colour) + 128) / 2).max() <= 1
    # Inside the first box but outside its mask, and outside every box: the photo as it was.
    assert (preview[50, 10] == 128).all() and (preview[180, 120] == 128).all()
