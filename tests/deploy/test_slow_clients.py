"""Slow clients: gunicorn holds a thread per request while it reads it, so it listens beyond loopback only behind a
proxy that reads requests whole first (deploy/gunicorn.conf.py; docs/security.md, "Slow clients")."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.support.network import free_port
from tests.support.servers import ROOT, Gunicorn, studio_environment
from tests.support.processes import wait_until

pytestmark = pytest.mark.integration


def _gunicorn_settings():
    spec = importlib.util.spec_from_file_location("gunicorn_settings", ROOT / "deploy" / "gunicorn.conf.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_only_addresses_other_machines_reach_count_as_exposed(monkeypatch, tmp_path: Path) -> None:
    monkeypatch.setenv("STUDIO_METRICS_DIR", str(tmp_path))  # the settings file would set one for this process
    exposed = _gunicorn_settings().exposed_addresses

    assert exposed([("127.0.0.1", 8000), ("::1", 8000), ("localhost", 8000), "/run/studio.sock"]) == []
    assert exposed([("0.0.0.0", 8000), ("::", 8000), ("10.0.0.7", 8000), ("studio.example", 8000)]) == [
        ("0.0.0.0", 8000), ("::", 8000), ("10.0.0.7", 8000), ("studio.example", 8000)]


def test_gunicorn_refuses_to_listen_beyond_loopback_without_a_proxy_in_front(tmp_path: Path) -> None:
    env = studio_environment(tmp_path, STUDIO_PROXY_COUNT="0")
    gunicorn = Gunicorn(env, tmp_path / "gunicorn.log", "--bind", f"0.0.0.0:{free_port()}")
    try:
        status = wait_until(lambda: gunicorn.process.poll() is not None and (gunicorn.process.returncode,),
                            "gunicorn refuses to start", diagnostics=gunicorn.output)
        assert status == (1,)
        assert "refusing to listen on 0.0.0.0:" in gunicorn.output()
        assert "STUDIO_PROXY_COUNT=1" in gunicorn.output()
    finally:
        gunicorn.stop()


def test_gunicorn_listens_beyond_loopback_behind_a_proxy(tmp_path: Path) -> None:
    env = studio_environment(tmp_path, STUDIO_PROXY_COUNT="1")
    gunicorn = Gunicorn(env, tmp_path / "gunicorn.log", "--bind", f"0.0.0.0:{free_port()}", "--workers", "1")
    try:
        gunicorn.wait_until_serving()
    finally:
        gunicorn.stop()
