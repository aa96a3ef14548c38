"""Each operation run the way the worker runs it (decode, run, encode) on real photos: its outputs are what its
declaration says, and its options change what they should. The models' own accuracy is tested beside each model."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest
from PIL import Image

from ml.operations import Limits, get_operation
from ml.registry import MODELS
from ml.runner import OperationFailed, process

pytestmark = pytest.mark.slow

LIMITS = Limits(50_000_000, 64_000_000)
INSTALLED = tuple(MODELS)


def run(name: str, photo: bytes, model_dir, **options):
    operation = get_operation(name)
    parsed = operation.parse(options, models=INSTALLED)
    stages: list[tuple[int, str | None]] = []
    outputs = process(operation, photo, parsed, model_dir=model_dir, limits=LIMITS,
                      progress=lambda percent, stage: stages.append((percent, stage)))
    assert [percent for percent, _ in stages] == sorted(percent for percent, _ in stages)
    return {output.name: output for output in outputs}, stages


def image(output) -> Image.Image:
    return Image.open(io.BytesIO(output.data))


@pytest.fixture(scope="module")
def dancers(photos_dir) -> bytes:
    return (photos_dir / "Two_dancers.jpg").read_bytes()


def test_stylize_paints_only_the_background_when_asked_and_keeps_the_photos_size(model_dir, photos_dir):
    photo = (photos_dir / "horse.jpg").read_bytes()
    whole, stages = run("stylize", photo, model_dir, style="sepia-oils", working_size="512", format="png")
    assert any(stage and "stylizing" in stage for _, stage in stages)
    background, _ = run("stylize", photo, model_dir, style="sepia-oils", working_size="512", format="png",
                        apply_to="background", feather="0")
    original = np.asarray(Image.open(io.BytesIO(photo)).convert("RGB"), dtype=np.int16)
    painted = np.asarray(image(whole["result"]), dtype=np.int16)
    kept = np.asarray(image(background["result"]), dtype=np.int16)
    assert painted.shape == kept.shape == original.shape
    # The horse (the subject, in the middle) keeps its pixels; the sky (the background, top left) is painted.
    middle = (slice(280, 320), slice(330, 380))
    corner = (slice(0, 40), slice(0, 60))
    assert np.abs(kept[middle] - original[middle]).mean() < 2
    assert np.abs(kept[corner] - original[corner]).mean() > 10
    assert np.abs(painted[middle] - original[middle]).mean() > 10


def test_faces_finds_both_dancers_with_landmarks_and_draws_them(model_dir, dancers):
    outputs, _ = run("faces", dancers, model_dir)
    data = json.loads(outputs["result"].data)
    assert data["count"] == 2 and len(data["faces"]) == 2
    assert set(data["faces"][0]["landmarks"]) == {"left_eye", "right_eye", "nose", "mouth_left", "mouth_right"}
    assert image(outputs["preview"]).size == Image.open(io.BytesIO(dancers)).size
    assert run("faces", dancers, model_dir, min_face_size="200")[0]["result"].data == b'{"count":0,"faces":[]}'


def test_anonymize_changes_the_faces_and_nothing_far_from_them(model_dir, dancers):
    outputs, _ = run("anonymize", dancers, model_dir, method="pixelate", format="png")
    hidden = json.loads(outputs["faces"].data)
    assert hidden["count"] == 2
    before = np.asarray(Image.open(io.BytesIO(dancers)).convert("RGB"), dtype=np.int16)
    after = np.asarray(image(outputs["result"]), dtype=np.int16)
    changed = np.abs(after - before).sum(axis=2) > 0
    inside = np.zeros_like(changed)
    for entry in hidden["hidden"]:
        x1, y1, x2, y2 = entry["region"]
        inside[y1:y2, x1:x2] = True
        assert changed[y1:y2, x1:x2].mean() > 0.5
    assert not changed[~inside].any()


def test_beautify_smooths_within_the_faces_only(model_dir, dancers):
    outputs, _ = run("beautify", dancers, model_dir, strength="100", format="png")
    assert json.loads(outputs["faces"].data)["count"] == 2
    before = np.asarray(Image.open(io.BytesIO(dancers)).convert("RGB"), dtype=np.int16)
    after = np.asarray(image(outputs["result"]), dtype=np.int16)
    assert not np.array_equal(before, after)
    assert np.array_equal(before[700:, :], after[700:, :])  # the floor, far below both faces


def test_an_id_photo_of_two_people_is_refused_with_the_reason(model_dir, dancers):
    with pytest.raises(OperationFailed, match="2 faces were found: an ID photo needs a photo of one person alone"):
        run("id_photo", dancers, model_dir)


def test_detect_and_smart_crop_find_the_horse_and_frame_it(model_dir, photos_dir):
    photo = (photos_dir / "horse.jpg").read_bytes()
    outputs, _ = run("detect", photo, model_dir)
    objects = json.loads(outputs["result"].data)["objects"]
    assert objects and objects[0]["label"] == "horse"
    assert run("detect", photo, model_dir, classes="person")[0]["result"].data.startswith(b'{"count":0')
    cropped, _ = run("smart_crop", photo, model_dir, aspect="4:5")
    crop = json.loads(cropped["crop"].data)
    assert crop["basis"] == "object" and crop["label"] == "horse"
    width, height = image(cropped["result"]).size
    assert abs(width / height - 4 / 5) < 0.01


def test_upscale_makes_a_cutout_twice_the_size_with_progress_per_tile(model_dir, photos_dir):
    crop = Image.open(photos_dir / "rifle2.jpeg").convert("RGB").crop((100, 40, 196, 104))
    buffer = io.BytesIO()
    crop.save(buffer, "PNG")
    outputs, stages = run("upscale", buffer.getvalue(), model_dir, scale="2", remove_background="true",
                          mask_model="u2netp")
    upscaled = image(outputs["result"])
    assert upscaled.size == (192, 128) and upscaled.mode == "RGBA"
    assert any(stage and stage.startswith("tile 1 of") for _, stage in stages)
    alpha = np.asarray(upscaled.getchannel("A"))
    assert alpha.min() == 0 and alpha.max() == 255
