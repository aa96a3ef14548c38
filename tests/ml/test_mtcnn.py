"""MTCNN: the networks take the released weights, the cascade's pieces behave, and it finds what facenet-pytorch finds.

The reference is facenet-pytorch 2.6.0's own detection code, kept verified under the model directory's sources/ by
the installer and run on our torch, its two torchvision imports stood in for (tests/support/facenet_reference.py).
"""

from __future__ import annotations

import types

import numpy as np
import pytest
import torch
import torch.nn.functional as functional
from PIL import Image

from ml import weights
from ml.models.mtcnn import infer as mtcnn, network
from ml.models.nms import non_maximum_suppression
from ml.registry import MODELS
from ml.sessions import ModelSession
from tests.support.services import require
from tests.support.facenet_reference import reference_mtcnn

SPEC = MODELS["mtcnn"]
PEOPLE = ("Two_dancers.jpg", "Athlete-Intake.jpg", "lionel-messi-athletes-fashion.jpg",
          "track-runners-hurdles-1280.jpg")


def test_networks_have_the_released_layers():
    model = network.mtcnn()
    # P-Net, R-Net and O-Net of the paper: 6,632 + 100,178 + 389,040 parameters.
    assert sum(parameter.numel() for parameter in model.parameters()) == 495_850
    keys = set(model.state_dict())
    for key in ("pnet.conv4_1.weight", "pnet.prelu3.weight", "rnet.dense4.weight", "rnet.dense5_2.bias",
                "onet.dense5.weight", "onet.dense6_3.weight", "onet.prelu5.weight"):
        assert key in keys


def test_networks_output_shapes():
    model = network.mtcnn().eval()
    with torch.inference_mode():
        offsets, probability = model.pnet(torch.randn(1, 3, 40, 31))
        assert offsets.shape == (1, 4, 15, 11) and probability.shape == (1, 15, 11)
        assert len(model.rnet(torch.randn(5, 3, 24, 24))) == 2
        offsets, probability, landmarks = model.onet(torch.randn(5, 3, 48, 48))
    assert offsets.shape == (5, 4) and landmarks.shape == (5, 10)
    assert torch.all((probability >= 0) & (probability <= 1))


def test_banded_scan_equals_a_whole_pass(monkeypatch):
    torch.manual_seed(3)
    pnet = network.PNet().eval()
    session = types.SimpleNamespace(to_device=lambda batch: batch)
    level = torch.randn(1, 3, 157, 61)
    with torch.inference_mode():
        whole = pnet(level)
        monkeypatch.setattr(mtcnn, "_BAND_PIXELS", 61 * 30)
        banded = mtcnn._scan(level, pnet, session)
    for expected, actual in zip(whole, banded):
        assert actual.shape == expected.shape
        assert torch.allclose(actual, expected, atol=1e-5)


@pytest.mark.parametrize("height, width", [(24, 24), (37, 91), (130, 17)])
@pytest.mark.parametrize("side", [24, 48])
def test_area_resize_matches_torch_area_interpolation(height, width, side):
    pixels = np.random.default_rng(height * width).integers(0, 256, (height, width, 3), dtype=np.uint8)
    expected = functional.interpolate(torch.from_numpy(pixels).permute(2, 0, 1)[None].float(), size=(side, side),
                                      mode="area")[0].permute(1, 2, 0).numpy()
    assert np.abs(mtcnn.area_resize(pixels, side) - expected).max() < 1e-3


def test_nms_keeps_the_best_of_overlapping_boxes():
    boxes = np.array([[0, 0, 10, 10], [1, 1, 11, 11], [20, 20, 30, 30], [0, 0, 4, 4]], dtype=np.float32)
    scores = np.array([0.8, 0.9, 0.7, 0.95], dtype=np.float32)
    # IoU of the first two is 81/119 (0.68): kept apart at 0.7, merged at 0.5.
    assert list(non_maximum_suppression(boxes, scores, 0.7)) == [3, 1, 0, 2]
    assert list(non_maximum_suppression(boxes, scores, 0.5)) == [3, 1, 2]
    # Over the smaller area, the small box inside the first counts as fully overlapping.
    assert list(non_maximum_suppression(boxes, scores, 0.7, minimum=True)) == [3, 1, 2]
    assert non_maximum_suppression(np.zeros((0, 4), np.float32), np.zeros(0, np.float32), 0.5).size == 0


def test_square_and_regress():
    boxes = np.array([[10, 20, 30, 60, 0.9]], dtype=np.float32)
    squared = mtcnn.square(boxes)
    assert np.allclose(squared[0, :4], [0, 20, 40, 60]) and squared[0, 4] == pytest.approx(0.9)
    moved = mtcnn.regress(squared, np.array([[0.1, 0, -0.1, 0]], dtype=np.float32))
    assert np.allclose(moved[0, :4], [4.1, 20, 35.9, 60])


def test_pyramid_reaches_from_the_minimum_face_to_the_photo():
    scales = mtcnn.pyramid_scales(480, 640, 20)
    assert scales[0] == pytest.approx(0.6)
    assert 480 * scales[-1] >= 12 > 480 * scales[-1] * mtcnn.PYRAMID_FACTOR
    assert mtcnn.pyramid_scales(10, 10, 20) == []


def test_face_to_dict_names_the_landmarks():
    face = mtcnn.Face((1.04, 2.0, 3.0, 4.0), ((1, 2), (3, 4), (5, 6), (7, 8), (9, 10)), 0.987654)
    data = face.to_dict()
    assert data["box"] == [1.0, 2.0, 3.0, 4.0] and data["confidence"] == 0.9877
    assert list(data["landmarks"]) == list(mtcnn.LANDMARK_NAMES) and data["landmarks"]["mouth_right"] == [9, 10]


def test_detect_faces_reports_progress_and_can_be_cancelled():
    session = types.SimpleNamespace(model=network.mtcnn().eval(), inference=torch.inference_mode,
                                    to_device=lambda batch: batch)
    photo = Image.new("RGB", (120, 90), (128, 100, 90))
    messages = []
    mtcnn.detect_faces(photo, session, progress=lambda percent, message: messages.append((percent, message)))
    assert messages[0][1].startswith("scale 1 of") and messages[-1][0] == 100

    def cancel(percent, message):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        mtcnn.detect_faces(photo, session, progress=cancel)


@pytest.fixture(scope="module")
def installed(model_dir):
    require(SPEC.weights_path(model_dir).is_file(), f"MTCNN weights not installed in {model_dir}")
    files = weights.source_files(model_dir, SPEC.source)
    require(all(path.is_file() for path in files.values()), "facenet-pytorch sources not kept under sources/")
    return files


def test_converter_reproduces_the_pinned_checksum(installed, model_dir, monkeypatch):
    monkeypatch.setattr(weights.subprocess, "run", lambda *args, **kwargs: pytest.fail("must not call pip"))
    assert weights.state_dict_digest(weights.convert(SPEC, model_dir)) == SPEC.checksum


@pytest.fixture(scope="module")
def reference(installed, model_dir):
    """Return facenet-pytorch's own MTCNN, from its kept sources with torchvision stood in for."""
    with reference_mtcnn(weights.sources_dir(model_dir, SPEC.source)) as MTCNN:
        yield MTCNN(keep_all=True, device=torch.device("cpu"))


@pytest.mark.slow
@pytest.mark.parametrize("name", PEOPLE)
def test_same_faces_as_facenet_pytorch(name, reference, model_dir, photos_dir):
    photo = Image.open(photos_dir / name).convert("RGB")
    session = ModelSession(SPEC, model_dir)
    ours = mtcnn.detect_faces(photo, session)
    boxes, probabilities, points = reference.detect(photo, landmarks=True)
    assert boxes is not None and len(ours) == len(boxes) >= 1
    # Both list the largest face first.
    for face, box, probability, landmarks in zip(ours, boxes, probabilities, points):
        assert np.abs(np.asarray(face.box) - box.astype(np.float64)).max() <= 2
        assert np.abs(np.asarray(face.landmarks) - landmarks.astype(np.float64)).max() <= 2
        assert face.confidence == pytest.approx(float(probability), abs=1e-3)
