"""The queue's Redis never evicts a job to make room: `maxmemory-policy noeviction` wherever we deploy Redis."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml
from redis import Redis

from processes import launcher
from tests.support.processes import ROOT, wait_until

DEPLOYMENT_FILES = ["docker-compose.yml", "Dockerfile", "Makefile", "processes/launcher.py",
                    *sorted(str(path.relative_to(ROOT)) for path in (ROOT / "deploy").glob("*"))]


def _redis_services(compose: dict) -> dict[str, dict]:
    return {name: service for name, service in compose["services"].items()
            if str(service.get("image", "")).split(":")[0].endswith("redis")}


def test_every_redis_of_docker_compose_refuses_to_evict():
    services = _redis_services(yaml.safe_load((ROOT / "docker-compose.yml").read_text()))
    assert services, "docker-compose.yml runs no Redis"
    for name, service in services.items():
        command = " ".join(service.get("command") or [])
        assert re.search(r"--maxmemory-policy\s+noeviction\b", command), f"service {name}: {command!r}"


@pytest.mark.integration
def test_the_launchers_embedded_redis_runs_with_noeviction(tmp_path: Path):
    port = launcher.free_port()
    config = launcher.write_redis_config(tmp_path, port, "secret")
    server = subprocess.Popen([launcher.redis_server_executable(), str(config)], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    client = Redis(host="127.0.0.1", port=port, password="secret", socket_connect_timeout=1)
    try:
        def policy() -> str | None:
            try:
                return client.config_get("maxmemory-policy")["maxmemory-policy"]
            except Exception:  # noqa: BLE001 - not up yet
                return None
        assert wait_until(policy, "the embedded Redis answers", 30) == "noeviction"
    finally:
        client.close()
        server.kill()
        server.wait(timeout=30)


def test_no_other_deployment_file_starts_a_redis_without_noeviction():
    # A new place that starts Redis must say noeviction too (and get a test like the two above).
    starters = [name for name in DEPLOYMENT_FILES
                if (ROOT / name).is_file() and "redis-server" in (ROOT / name).read_text(errors="replace")]
    assert set(starters) <= {"docker-compose.yml", "processes/launcher.py"}, starters
    for name in starters:
        assert "noeviction" in (ROOT / name).read_text(), name
