"""Parity: our NanoDet-g gives what TF.js itself gives with the original graph model, on the same photos.

TF.js (the npm package @tensorflow/tfjs, pure JavaScript CPU backend) runs the verified nanodet.json/.bin from the
model directory's sources in node, on the very tensors our preprocessing makes; its outputs are decoded in JavaScript
(the authors' GFL decoding, TF.js's own non-maximum suppression), so our decoder is checked too.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ml.models.nanodet.convert import ConversionError, from_tfjs
from ml.models.nanodet.infer import preprocess
from ml.models.nanodet.network import COCO_CLASSES, decode, nanodet_g
from ml.registry import MODELS
from ml.sessions import ModelSession
from ml.weights import source_files, state_dict_digest
from tests.support.services import MODEL_DIR, require

TFJS_DIR = Path(__file__).resolve().parent / "tfjs"
PHOTOS = ("horse.jpg", "boat.jpg", "Two_dancers.jpg")
THRESHOLD = 0.3
SPEC = MODELS["nanodet"]


def test_network_has_nanodet_gs_layers_and_names():
    model = nanodet_g()
    convolutions = [module for module in model.modules() if isinstance(module, torch.nn.Conv2d)]
    # 25 in the backbone, 3 laterals, 2 per head level; batch norm folded, so about the authors' 3.8 M parameters.
    assert len(convolutions) == 34
    assert sum(parameter.numel() for parameter in model.parameters()) == 3_786_068
    keys = set(model.state_dict())
    for key in ("backbone.stages.0.conv.weight", "backbone.stages.5.res_blocks.2.mid_conv.conv.bias",
                "fpn.lateral_convs.2.weight", "head.cls_convs.1.0.conv.weight", "head.gfl_cls.2.bias"):
        assert key in keys
    scores, logits = model.eval()(torch.zeros(1, 3, 416, 416))
    assert scores.shape == (1, 52 * 52 + 26 * 26 + 13 * 13, 80) and logits.shape == (1, scores.shape[1], 44)


@pytest.fixture(scope="module")
def original_files() -> dict[str, Path]:
    """Return the verified nanodet.json and nanodet.bin that make install keeps."""
    files = source_files(MODEL_DIR, SPEC.source)
    require(all(path.is_file() for path in files.values()), f"the original graph model is not in {MODEL_DIR} "
            "(make install)")
    return files


def test_conversion_gives_the_pinned_weights(original_files):
    assert state_dict_digest(from_tfjs(original_files, SPEC)) == SPEC.checksum


def test_conversion_refuses_a_graph_that_does_not_match(original_files, tmp_path):
    graph = json.loads(original_files["models/nanodet.json"].read_text())
    convolution = next(node for node in graph["modelTopology"]["node"] if node["name"].endswith("convolution_5"))
    convolution["attr"]["strides"]["list"]["i"] = ["1", "1", "1", "1"]
    (tmp_path / "nanodet.json").write_text(json.dumps(graph))
    shutil.copy(original_files["models/nanodet.bin"], tmp_path / "nanodet.bin")
    with pytest.raises(ConversionError, match="convolution_5"):
        from_tfjs({"models/nanodet.json": tmp_path / "nanodet.json"}, SPEC)


@pytest.fixture(scope="module")
def session() -> ModelSession:
    """Return NanoDet-g in float32 on the CPU, as TF.js runs it."""
    require(SPEC.weights_path(MODEL_DIR).is_file(), f"NanoDet weights not installed in {MODEL_DIR} (make install)")
    return ModelSession(SPEC, MODEL_DIR, device=torch.device("cpu"), bfloat16=False)


@pytest.fixture(scope="module")
def tfjs_run(session, photos_dir, tmp_path_factory):
    """Run TF.js once on all the photos; return its report, our inputs and where its outputs lie."""
    require(shutil.which("node") is not None, "node is not installed")
    require((TFJS_DIR / "node_modules" / "@tensorflow" / "tfjs").is_dir(),
            f"@tensorflow/tfjs is not installed in {TFJS_DIR} (make install runs npm ci there)")
    model_json = source_files(MODEL_DIR, SPEC.source)["models/nanodet.json"]
    require(model_json.is_file(), f"the original graph model is not in {model_json.parent} (make install)")
    scratch = tmp_path_factory.mktemp("tfjs")
    inputs = []
    for index, name in enumerate(PHOTOS):
        image = Image.open(photos_dir / name)
        batch, placement = preprocess(image, session)
        batch.numpy().astype("<f4").tofile(scratch / f"input-{index}.f32")
        inputs.append((image.size, batch, placement))
    command = ["node", str(TFJS_DIR / "run_graph_model.js"), str(model_json), str(scratch / "out"),
               *(str(scratch / f"input-{index}.f32") for index in range(len(PHOTOS))),
               "--nanodet-threshold", str(THRESHOLD)]
    result = subprocess.run(command, capture_output=True, text=True, timeout=480)
    assert result.returncode == 0, result.stderr[-2000:]
    return json.loads((scratch / "out" / "report.json").read_text()), inputs, scratch / "out"


def tfjs_outputs(report: dict, folder: Path, index: int) -> tuple[np.ndarray, np.ndarray]:
    """Return TF.js's class probabilities and box logits for one input, levels in our order (strides 8, 16, 32)."""
    arrays = {tuple(output["shape"]): np.fromfile(folder / f"{index}-{at}.f32", dtype="<f4").reshape(output["shape"])
              for at, output in enumerate(report["outputs"])}
    points = sorted({shape[1] for shape in arrays}, reverse=True)
    return (np.concatenate([arrays[(1, count, 80)] for count in points], 1)[0],
            np.concatenate([arrays[(1, count, 44)] for count in points], 1)[0])


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(PHOTOS)), ids=PHOTOS)
def test_raw_outputs_match_tfjs(session, tfjs_run, index):
    report, inputs, folder = tfjs_run
    theirs_scores, theirs_logits = tfjs_outputs(report, folder, index)
    with torch.inference_mode():
        ours_scores, ours_logits = session.model(session.to_device(inputs[index][1]))
    assert np.abs(ours_scores[0].numpy() - theirs_scores).max() < 1e-4
    assert np.abs(ours_logits[0].numpy() - theirs_logits).max() < 1e-3


@pytest.mark.slow
@pytest.mark.parametrize("index", range(len(PHOTOS)), ids=PHOTOS)
def test_detections_match_tfjs(session, tfjs_run, index):
    report, inputs, _ = tfjs_run
    size, batch, placement = inputs[index]
    with torch.inference_mode():
        scores, logits = session.model(session.to_device(batch))
    input_size = SPEC.settings["input_size"]
    ours = decode(scores[0], logits[0], (input_size, input_size), score_threshold=THRESHOLD)
    theirs = report["detections"][index]
    assert ours, "nothing detected: the photo should hold at least one object"
    assert [COCO_CLASSES[raw.class_index] for raw in ours] == [COCO_CLASSES[item["classIndex"]] for item in theirs]
    for raw, item in zip(ours, theirs):
        assert raw.score == pytest.approx(item["score"], abs=1e-4)
        ours_box = np.array(placement.to_photo(raw.box, size))
        theirs_box = np.array(placement.to_photo(tuple(item["box"]), size))
        assert np.abs(ours_box - theirs_box).max() < 0.5, (ours_box, theirs_box)
