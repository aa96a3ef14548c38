"""The U2Net architectures: structure, checkpoint compatibility and shapes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ml.models.u2net import infer as saliency, network as u2net
from ml.registry import MODELS, model_state
from ml.sessions import ModelSession


def convolutions(model: nn.Module) -> list[nn.Conv2d]:
    return [module for module in model.modules() if isinstance(module, nn.Conv2d)]


@pytest.mark.parametrize("build, parameters", [(u2net.u2netp, 1_131_181), (u2net.u2net, 44_009_869)])
def test_architectures_match_the_papers_sizes(build, parameters):
    model = build()
    assert len(convolutions(model)) == 119
    # Parameter counts of the authors' models, batch norm included (4.7 MB and 176 MB checkpoints).
    assert sum(parameter.numel() for parameter in model.parameters()) == parameters


def test_state_dict_uses_the_authors_names():
    keys = set(u2net.u2net().state_dict())
    for key in ("stage1.rebnconvin.conv_s1.weight", "stage1.rebnconv7.bn_s1.running_var",
                "stage5.rebnconv4.conv_s1.weight", "stage1d.rebnconv1d.conv_s1.bias", "side6.weight",
                "outconv.weight"):
        assert key in keys


def test_dilations_follow_the_rsu_design():
    model = u2net.u2netp()
    assert model.stage1.rebnconv7.conv_s1.dilation == (2, 2)
    assert model.stage1.rebnconv6.conv_s1.dilation == (1, 1)
    assert [getattr(model.stage5, f"rebnconv{level}").conv_s1.dilation[0] for level in range(1, 5)] == [1, 2, 4, 8]
    assert model.stage5.rebnconv3d.conv_s1.dilation == (4, 4)


@pytest.mark.parametrize("height, width", [(320, 320), (97, 131), (33, 64)])
def test_output_has_the_input_size(height, width):
    model = u2net.u2netp(batch_norm=False).eval()
    with torch.inference_mode():
        assert model(torch.randn(1, 3, height, width)).shape == (1, 1, height, width)


def test_release_checkpoint_with_batch_norm_loads(tmp_path):
    torch.manual_seed(0)
    original = u2net.u2netp()
    torch.save(original.state_dict(), tmp_path / "u2netp.pth")
    spec = MODELS["u2netp_release"]
    state = model_state(spec, tmp_path)
    assert state.available and "not pinned" in state.reason
    session = ModelSession(spec, tmp_path, bfloat16=False)
    batch = torch.randn(1, 3, 64, 64)
    with torch.inference_mode():
        expected = original.eval()(batch)
    assert torch.allclose(saliency.logits(batch, session), expected, atol=1e-5)


def test_full_precision_stages_stay_float32_under_bfloat16_autocast():
    model = u2net.u2net(batch_norm=False).eval()
    dtypes = {}
    for name in ("stage1", "stage3d", "stage2d", "stage1d"):
        getattr(model, name).register_forward_hook(
            lambda _module, _inputs, output, name=name: dtypes.__setitem__(name, output.dtype))
    with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16):
        model(torch.randn(1, 3, 64, 64))
    assert dtypes == {"stage1": torch.bfloat16, "stage3d": torch.bfloat16,
                      "stage2d": torch.float32, "stage1d": torch.float32}
