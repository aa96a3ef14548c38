"""Model sessions: loaded once per process, cached by name, bounded in memory."""

from __future__ import annotations

import pytest
import torch

from ml.models.u2net import network as u2net
from ml.registry import MODELS, ModelSpec
from ml.sessions import ModelSession, ModelUnavailable, SessionCache, build_with_weights
from ml.weights import load_state_dict


def test_a_session_is_loaded_once_and_reused(model_dir):
    cache = SessionCache()
    first = cache.get("u2netp", model_dir)
    assert cache.get("u2netp", model_dir) is first
    assert cache.names() == ["u2netp"]


def test_the_cache_evicts_the_least_recently_used_model_past_its_bound(model_dir, tmp_path):
    torch.save(u2net.u2netp().state_dict(), tmp_path / "u2netp.pth")
    (tmp_path / "u2netp.pt").write_bytes((model_dir / "u2netp.pt").read_bytes())
    cache = SessionCache(max_bytes=6_000_000)  # room for one U2NetP (4.5 MB), not two
    first = cache.get("u2netp", tmp_path)
    cache.get("u2netp_release", tmp_path)
    assert cache.names() == ["u2netp_release"]
    assert cache.get("u2netp", tmp_path) is not first


def test_unknown_and_missing_models_raise_a_clear_error(tmp_path):
    cache = SessionCache()
    with pytest.raises(ModelUnavailable, match="unknown model"):
        cache.get("nope", tmp_path)
    with pytest.raises(ModelUnavailable, match="no weights"):
        cache.get("u2net_human_seg", tmp_path)


def test_a_model_is_built_around_its_weights_without_initialising_it_first(model_dir, monkeypatch):
    def refusing(initialise):
        def initialise_nothing(tensor, *args, **kwargs):
            # On the meta device an initialiser writes nothing: only one on real memory is wasted work.
            assert tensor.is_meta, "a layer was initialised at random before its weights were loaded"
            return initialise(tensor, *args, **kwargs)
        return initialise_nothing

    for name in ("kaiming_uniform_", "uniform_", "normal_", "zeros_", "ones_"):
        monkeypatch.setattr(torch.nn.init, name, refusing(getattr(torch.nn.init, name)))
    session = ModelSession(MODELS["u2netp"], model_dir)
    weights = load_state_dict(MODELS["u2netp"].weights_path(model_dir))
    loaded = session.model.state_dict()
    assert loaded.keys() == weights.keys() and all(torch.equal(loaded[key], weights[key]) for key in weights)
    assert not any(tensor.is_meta for tensor in loaded.values())


class ScaledLinear(torch.nn.Module):
    """A layer with a buffer its weights do not hold (not persistent)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = torch.nn.Linear(2, 2)
        self.register_buffer("scale", torch.full((1,), 3.0), persistent=False)

    def forward(self, batch: torch.Tensor) -> torch.Tensor:
        return self.linear(batch) * self.scale


def test_a_model_holding_more_than_its_weights_is_built_for_real(tmp_path):
    torch.save(ScaledLinear().state_dict(), tmp_path / "scaled.pt")
    spec = ModelSpec("scaled", "Scaled", f"{__name__}:ScaledLinear", "scaled.pt", None, "a test layer")
    model = build_with_weights(spec, load_state_dict(tmp_path / "scaled.pt"))
    assert model.scale.tolist() == [3.0] and not model.linear.weight.is_meta
