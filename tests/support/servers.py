"""Real processes for the observability tests: gunicorn with deploy/gunicorn.conf.py, and `rq_worker.py --burst`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from studio import settings
from tests.support.services import MODEL_DIR, TEST_REDIS_URL, require
from tests.support.network import free_port

ROOT = settings.PROJECT_ROOT
START_SECONDS = 120
# Variables of the developer's shell that would point the processes elsewhere than the test's own services.
_DROPPED = {"DATABASE_URL", "REDIS_URL", "STUDIO_S3_BUCKET", "SECRET_KEY", "STUDIO_METRICS_DIR",
            "STUDIO_METRICS_TOKEN", "PROMETHEUS_MULTIPROC_DIR", "STUDIO_LOG_FORMAT", "STUDIO_LOG_LEVEL",
            "STUDIO_WORKER_METRICS_PORT", "WEB_CONCURRENCY"}


def studio_environment(tmp_path: Path, **overrides: str) -> dict[str, str]:
    """Return an environment for studio processes on SQLite in tmp_path, local storage and the test Redis."""
    env = {name: value for name, value in os.environ.items() if name not in _DROPPED}
    env.update(
        DATABASE_URL=f"sqlite:///{tmp_path / 'studio.sqlite3'}",
        REDIS_URL=TEST_REDIS_URL,
        SECRET_KEY="test-secret",
        STUDIO_STORAGE_DIR=str(tmp_path / "storage"),
        # Every upload runs its job, as these tests were written for (tests/tasks/test_duplicates.py turns it on).
        STUDIO_REUSE_DUPLICATES="false",
        STUDIO_INSTANCE_DIR=str(tmp_path / "instance"),
        PYTHONUNBUFFERED="1",
    )
    env.update(overrides)
    return env


class Gunicorn:
    """gunicorn as deployed (deploy/gunicorn.conf.py), on a free port, its output in a file."""

    def __init__(self, env: dict[str, str], log: Path, *arguments: str) -> None:
        self.port = free_port()
        self.log = log
        command = [sys.executable, "-m", "gunicorn", "--config", "deploy/gunicorn.conf.py",
                   "--bind", f"127.0.0.1:{self.port}", *arguments, "wsgi:app"]
        with open(log, "wb") as output:
            self.process = subprocess.Popen(command, cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def url(self, path: str) -> str:
        """Return the URL of a path on this server."""
        return f"http://127.0.0.1:{self.port}{path}"

    def output(self) -> str:
        """Return what gunicorn and the app printed."""
        return self.log.read_text(errors="replace")

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """Return the status, headers and body of a GET."""
        request = urllib.request.Request(self.url(path), headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return response.status, dict(response.headers), response.read()
        except urllib.error.HTTPError as error:
            return error.code, dict(error.headers), error.read()

    def wait_until_serving(self) -> None:
        """Wait until /livez answers 200; fail with the output if gunicorn exits or never does."""
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"gunicorn exited:\n{self.output()}"
            try:
                if self.get("/livez")[0] == 200:
                    return
            except OSError:
                pass
            time.sleep(0.3)
        pytest.fail(f"gunicorn did not serve within {START_SECONDS}s:\n{self.output()}")

    def stop(self) -> None:
        """Stop gunicorn and its workers (SIGTERM, then SIGKILL of the group)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                pass
        end_process_group(self.process)


def end_process_group(process: subprocess.Popen) -> None:
    """SIGKILL what is left of a process started in a session of its own (its whole group), then reap it."""
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


def small_model_dir(tmp_path: Path) -> Path:
    """Return a model folder holding only u2netp (the worker preloads every installed model; one is enough)."""
    weights = MODEL_DIR / "u2netp.pt"
    require(weights.is_file(), f"u2netp weights not installed in {MODEL_DIR} (make install)")
    folder = tmp_path / "models"
    folder.mkdir(exist_ok=True)
    if not (folder / "u2netp.pt").exists():
        (folder / "u2netp.pt").symlink_to(weights)
    return folder


def run_burst_worker(env: dict[str, str], tmp_path: Path, *arguments: str) -> subprocess.CompletedProcess:
    """Run `rq_worker.py --burst` until the queue is empty; return its result, output in stderr."""
    env = dict(env, STUDIO_MODEL_DIR=str(small_model_dir(tmp_path)), STUDIO_DEFAULT_MODEL="u2netp")
    return subprocess.run([sys.executable, "rq_worker.py", "--burst", *arguments], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
