"""Model sessions: loaded once per process, cached by name, bounded in memory."""

from __future__ import annotations

import pytest
import torch

from ml.models.u2net import network as u2net
from ml.sessions import ModelUnavailable, SessionCache


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
