"""Object detection and smart crops: decoding, what the model finds on real photos, and the crop geometry."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image, ImageChops, ImageDraw

from ml.edits.smart_crop import main_object, smart_crop, smart_crop_box
from ml.models.nanodet import network as nanodet
from ml.models.nanodet.infer import (DETECTION_MODEL, Detection, class_indices, detect_objects, draw_detections,
                                     letterbox)
from ml.models.u2net.infer import predict_mask
from ml.registry import MODELS
from ml.sessions import ModelSession, get_session
from tests.support.services import MODEL_DIR, require

ASPECTS = [(1, 1), (4, 5), (16, 9), (9, 16), (3, 2), (2, 3)]


# Decoding, on outputs built by hand.

def index_of(name: str) -> int:
    return nanodet.COCO_CLASSES.index(name)


def name_of(index: int) -> str:
    return nanodet.COCO_CLASSES[index]


def one_hot_logits(points: int, bins_per_point: dict[int, tuple[int, int, int, int]]) -> torch.Tensor:
    """Return box logits (points, 44) whose distributions are sharply peaked on the given bins."""
    logits = torch.full((points, 4, nanodet.REG_MAX + 1), -30.0)
    for point, bins in bins_per_point.items():
        for side, chosen in enumerate(bins):
            logits[point, side, chosen] = 30.0
    return logits.reshape(points, -1)


def test_decode_puts_a_box_around_its_cell():
    points = len(nanodet.center_priors((416, 416)))
    scores = torch.zeros(points, 80)
    cell = 5 * 52 + 10  # stride 8 map, row 5, column 10: centre (84, 44)
    scores[cell, index_of("horse")] = 0.9
    found = nanodet.decode(scores, one_hot_logits(points, {cell: (3, 2, 4, 1)}), (416, 416), score_threshold=0.5)
    assert len(found) == 1
    assert found[0].class_index == index_of("horse") and found[0].score == pytest.approx(0.9)
    assert found[0].box == pytest.approx((84 - 24, 44 - 16, 84 + 32, 44 + 8), abs=1e-3)


def test_decode_uses_each_levels_stride_and_clips_to_the_input():
    points = len(nanodet.center_priors((416, 416)))
    scores = torch.zeros(points, 80)
    cell = 52 * 52 + 26 * 26  # first cell of the stride 32 map: centre (16, 16)
    scores[cell, 0] = 0.8
    found = nanodet.decode(scores, one_hot_logits(points, {cell: (10, 0, 2, 1)}), (416, 416), score_threshold=0.5)
    assert found[0].box == pytest.approx((0, 16, 16 + 64, 16 + 32), abs=1e-3)


def test_suppression_acts_within_a_class_only():
    points = len(nanodet.center_priors((416, 416)))
    scores = torch.zeros(points, 80)
    first, neighbour = 20 * 52 + 20, 20 * 52 + 21  # adjacent cells with nearly the same box
    bins = {first: (5, 5, 5, 5), neighbour: (6, 5, 4, 5)}
    scores[first, index_of("dog")], scores[neighbour, index_of("dog")] = 0.9, 0.7
    found = nanodet.decode(scores, one_hot_logits(points, bins), (416, 416), score_threshold=0.3)
    assert [(name_of(raw.class_index), round(raw.score, 2)) for raw in found] == [("dog", 0.9)]
    scores[neighbour, index_of("dog")], scores[neighbour, index_of("cat")] = 0.0, 0.7
    found = nanodet.decode(scores, one_hot_logits(points, bins), (416, 416), score_threshold=0.3)
    assert [name_of(raw.class_index) for raw in found] == ["dog", "cat"]


def test_nothing_above_the_threshold_decodes_to_nothing():
    points = len(nanodet.center_priors((416, 416)))
    assert nanodet.decode(torch.full((points, 80), 0.2), torch.zeros(points, 44), (416, 416),
                          score_threshold=0.3) == []


def test_coco_classes_are_cocos_eighty_names():
    assert len(nanodet.COCO_CLASSES) == len(set(nanodet.COCO_CLASSES)) == 80
    assert nanodet.COCO_CLASSES[:3] == ("person", "bicycle", "car")
    assert "traffic light" in nanodet.COCO_CLASSES and nanodet.COCO_CLASSES[-1] == "toothbrush"


def test_unknown_class_names_are_refused():
    assert class_indices({"Horse", " boat"}) == [index_of("boat"), index_of("horse")]
    with pytest.raises(ValueError, match="'unicorn'"):
        class_indices({"horse", "unicorn"})


@pytest.mark.parametrize("size", [(1280, 720), (300, 900), (416, 416), (7, 5)])
def test_letterbox_maps_boxes_back_to_the_photo(size):
    square, placement = letterbox(Image.new("RGB", size, (200, 10, 10)), 416)
    assert square.size == (416, 416)
    x1, y1 = placement.left, placement.top
    x2, y2 = x1 + placement.scale_x * size[0], y1 + placement.scale_y * size[1]
    assert placement.to_photo((x1, y1, x2, y2), size) == pytest.approx((0, 0, *size))
    # Beyond the photo (in the black border) clips to its edges.
    assert placement.to_photo((0, 0, 416, 416), size) == pytest.approx((0, 0, *size))


def test_detection_json_uses_whole_pixels():
    detection = Detection("bicycle", (10.4, 20.6, 30.5, 40.0), 0.876543)
    assert detection.to_dict() == {"label": "bicycle", "box": [10, 21, 30, 40], "score": 0.8765}


# Smart crop geometry.

def assert_crop_is_sound(choice, size, aspect, subject=None, fit_subject=False):
    left, top, right, bottom = choice.box
    width, height = right - left, bottom - top
    assert width > 0 and height > 0
    assert width * aspect[1] == height * aspect[0], "the aspect ratio must be exact"
    unit = math.gcd(*aspect)
    largest_inside = min(size[0] // (aspect[0] // unit), size[1] // (aspect[1] // unit))
    fits = subject is None or max(math.ceil((subject[2] - subject[0]) / (aspect[0] // unit)),
                                  math.ceil((subject[3] - subject[1]) / (aspect[1] // unit))) <= largest_inside
    holds = subject is None or (left <= subject[0] and top <= subject[1] and right >= subject[2]
                                and bottom >= subject[3])
    # The whole subject when some crop inside the photo holds it, or when asked to fit it; else the most of it.
    # (A photo narrower than one unit of the shape has no crop inside it at all.)
    assert holds == choice.whole and (choice.whole == (fits or fit_subject) or largest_inside == 0)
    if (fits or not fit_subject) and largest_inside > 0:
        assert left >= 0 and top >= 0 and right <= size[0] and bottom <= size[1], "must stay inside the photo"


@pytest.mark.parametrize("aspect", ASPECTS)
def test_crop_holds_the_main_object_at_the_exact_ratio(aspect):
    detections = [Detection("cup", (50, 50, 90, 80), 0.9), Detection("dog", (400, 300, 700, 600), 0.6)]
    choice = smart_crop_box((1000, 800), detections, None, aspect, 0.1)
    assert (choice.basis, choice.label, choice.subject) == ("object", "dog", (400, 300, 700, 600))
    assert_crop_is_sound(choice, (1000, 800), aspect, choice.subject)
    # A margin of a tenth of the subject on each side, as far as the photo allows.
    left, top, right, bottom = choice.box
    assert right - left >= 300 * 1.2 or bottom - top >= 300 * 1.2


def test_main_object_weighs_area_by_score():
    small_sure = Detection("cup", (0, 0, 100, 100), 0.95)
    large_unsure = Detection("dining table", (0, 0, 300, 300), 0.35)
    assert main_object([small_sure, large_unsure]) is large_unsure
    assert main_object([small_sure, Detection("bowl", (0, 0, 120, 120), 0.4)]) is small_sure
    assert main_object([]) is None


def test_crop_falls_back_to_the_mask_then_to_the_centre():
    mask = Image.new("L", (640, 480))
    ImageDraw.Draw(mask).ellipse((400, 100, 520, 300), fill=255)
    choice = smart_crop_box((640, 480), [], mask, (4, 5), 0.1)
    assert choice.basis == "mask" and choice.label is None
    assert choice.subject == pytest.approx((400, 100, 521, 301), abs=1)
    assert_crop_is_sound(choice, (640, 480), (4, 5), choice.subject)
    for empty in (None, Image.new("L", (640, 480))):
        centre = smart_crop_box((640, 480), [], empty, (16, 9), 0.1)
        assert centre.basis == "centre" and centre.box == (0, 60, 640, 420)


def test_a_mask_of_another_size_is_refused():
    with pytest.raises(ValueError, match="mask"):
        smart_crop_box((640, 480), [], Image.new("L", (320, 240), 255), (1, 1), 0.1)


@pytest.mark.parametrize("aspect, margin", [((0, 1), 0.1), ((1, -2), 0.1), ((1, 1), -0.1), ((1, 1), 2.0)])
def test_bad_crop_options_are_refused(aspect, margin):
    with pytest.raises(ValueError):
        smart_crop_box((100, 100), [], None, aspect, margin)


@given(width=st.integers(1, 3000), height=st.integers(1, 3000), corners=st.tuples(*[st.floats(0, 1)] * 4),
       aspect=st.sampled_from(ASPECTS + [(5, 4), (21, 9), (10, 10)]), margin=st.floats(0, 1),
       fit_subject=st.booleans())
def test_any_crop_is_exact_holds_the_subject_and_stays_inside_when_it_can(
        width, height, corners, aspect, margin, fit_subject):
    xs, ys = sorted((corners[0] * width, corners[1] * width)), sorted((corners[2] * height, corners[3] * height))
    detection = Detection("person", (xs[0], ys[0], xs[1], ys[1]), 0.5)
    choice = smart_crop_box((width, height), [detection], None, aspect, margin, fit_subject=fit_subject)
    assert_crop_is_sound(choice, (width, height), aspect, choice.subject, fit_subject)
    assert choice.subject[0] <= xs[0] and choice.subject[2] >= min(xs[1], width)


def test_a_crop_past_the_edges_is_filled_with_the_colour_asked():
    photo = Image.new("RGB", (200, 100), (10, 120, 30))
    crop = smart_crop(photo, (-50, 0, 250, 100), (200, 200, 200, 255))
    assert crop.size == (300, 100) and crop.mode == "RGB"
    assert crop.getpixel((10, 50)) == (200, 200, 200) and crop.getpixel((150, 50)) == (10, 120, 30)
    cutout = smart_crop(Image.new("RGBA", (200, 100), (10, 120, 30, 255)), (0, -50, 200, 150), (0, 0, 0, 0))
    assert cutout.getpixel((100, 10)) == (0, 0, 0, 0) and cutout.getpixel((100, 100)) == (10, 120, 30, 255)
    assert smart_crop(photo, (20, 10, 60, 50)).size == (40, 40)


def test_a_crop_past_the_edges_is_filled_with_the_blurred_photo_by_default():
    gradient = Image.linear_gradient("L").resize((200, 100)).convert("RGB")
    crop = smart_crop(gradient, (0, -100, 200, 200))
    assert crop.size == (200, 300)
    assert crop.crop((0, 100, 200, 200)).tobytes() == gradient.tobytes()
    backdrop = np.asarray(crop.convert("L"), dtype=float)
    # Above and below the photo: its blurred copy, changing down the rows as the photo does, no flat band.
    assert backdrop[:100].std(axis=1).max() < 10 and backdrop[:100].mean(axis=1).std() > 5
    assert backdrop[200:].mean(axis=1).std() > 5


# The model on real photos.

@pytest.fixture(scope="module")
def detector() -> ModelSession:
    """Return the installed NanoDet-g session."""
    require(MODELS[DETECTION_MODEL].weights_path(MODEL_DIR).is_file(),
            f"NanoDet weights not installed in {MODEL_DIR} (make install)")
    return get_session(DETECTION_MODEL, MODEL_DIR)


@pytest.fixture(scope="module")
def found(detector, photos_dir):
    """Return each photo and its detections at a low threshold, computed once."""
    names = ("horse.jpg", "boat.jpg", "girl.png", "Two_dancers.jpg", "track-runners-hurdles-1280.jpg", "hockey.png")
    results = {}
    for name in names:
        image = Image.open(photos_dir / name)
        image.load()
        results[name] = (image, detect_objects(image, detector, score_threshold=0.2))
    return results


@pytest.mark.slow
@pytest.mark.parametrize("name, label, count", [
    ("horse.jpg", "horse", 1), ("boat.jpg", "boat", 1), ("girl.png", "horse", 1), ("girl.png", "person", 1),
    ("Two_dancers.jpg", "person", 2), ("track-runners-hurdles-1280.jpg", "person", 2), ("hockey.png", "person", 5),
])
def test_finds_what_is_in_the_photo(found, name, label, count):
    image, detections = found[name]
    confident = [item for item in detections if item.label == label and item.score >= 0.5]
    assert len(confident) >= count, [item.to_dict() for item in detections]
    for item in detections:
        x1, y1, x2, y2 = item.box
        assert 0 <= x1 < x2 <= image.width and 0 <= y1 < y2 <= image.height
        assert item.label in nanodet.COCO_CLASSES
    assert [item.score for item in detections] == sorted((item.score for item in detections), reverse=True)


@pytest.mark.slow
def test_the_horse_box_frames_the_horse(found):
    image, detections = found["horse.jpg"]
    horse = next(item for item in detections if item.label == "horse")
    # The horse fills most of this photo: its box is most of the frame, not a patch.
    assert horse.area >= 0.4 * image.width * image.height


@pytest.mark.slow
def test_threshold_and_class_filter(found, detector):
    image, low = found["boat.jpg"]
    high = detect_objects(image, detector, score_threshold=0.5)
    assert high and all(item.score >= 0.5 for item in high)
    assert high == [item for item in low if item.score >= 0.5]
    people = detect_objects(image, detector, score_threshold=0.2, classes={"person"})
    assert people and {item.label for item in people} == {"person"}
    assert people == [item for item in low if item.label == "person"]
    assert detect_objects(image, detector, classes={"giraffe"}) == []
    assert detect_objects(image, detector, score_threshold=0.2, classes=set()) == low


@pytest.mark.slow
def test_progress_is_reported(found, detector):
    image, _ = found["horse.jpg"]
    calls = []
    detect_objects(image, detector, progress=lambda percent, message: calls.append((percent, message)))
    assert calls[0][0] == 0 and calls[-1] == (100, "found 1 object")


@pytest.mark.slow
def test_preview_draws_labelled_boxes(found):
    image, detections = found["girl.png"]
    preview = draw_detections(image, detections)
    assert preview.size == image.size and preview.mode == "RGB"
    changed = ImageChops.difference(preview, image.convert("RGB")).getbbox()
    assert changed is not None
    first = detections[0].box
    # Pixels are changed on the box outline, not in the middle of a box.
    middle = (round((first[0] + first[2]) / 2), round((first[1] + first[3]) / 2))
    assert preview.getpixel((round(first[0]), round(middle[1]))) != image.convert("RGB").getpixel(
        (round(first[0]), round(middle[1])))
    assert preview.getpixel(middle) == image.convert("RGB").getpixel(middle)


@pytest.mark.slow
@pytest.mark.parametrize("aspect", [(1, 1), (4, 5), (16, 9)])
def test_smart_crop_centres_the_main_object(found, aspect):
    image, detections = found["horse.jpg"]
    choice = smart_crop_box(image.size, detections, None, aspect, 0.05)
    assert choice.basis == "object" and choice.label == "horse"
    assert_crop_is_sound(choice, image.size, aspect, choice.subject)
    crop = smart_crop(image, choice.box)
    assert crop.width * aspect[1] == crop.height * aspect[0]


@pytest.mark.slow
def test_smart_crop_falls_back_to_the_subject_mask(detector, photos_dir, model_dir):
    image = Image.open(photos_dir / "vangogh.jpeg")
    nothing = detect_objects(image, detector, classes={"giraffe"})
    mask = predict_mask(image, get_session("u2netp", model_dir))
    choice = smart_crop_box(image.size, nothing, mask, (1, 1), 0.1)
    assert choice.basis == "mask"
    assert choice.subject == mask.point(lambda value: 255 if value >= 128 else 0).getbbox()
    assert_crop_is_sound(choice, image.size, (1, 1), choice.subject)
