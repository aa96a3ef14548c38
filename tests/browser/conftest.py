"""The real stack for browser tests: gunicorn serving the app and an RQ worker, on PostgreSQL and Redis."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import sync_playwright
from redis import Redis

from studio import create_app, settings
from studio.extensions import db
from tests.conftest import TEST_DATABASE_URL, TEST_REDIS_URL, postgres_up, redis_up, require, sqlalchemy_url

PROJECT_ROOT = Path(__file__).resolve().parent.parent.parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
STARTUP_SECONDS = 60


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the server exited with {process.returncode}:\n{log.read_text()[-4000:]}")
        try:
            with urllib.request.urlopen(url + "/login", timeout=2):
                return
        except OSError:  # refused, reset or timed out while gunicorn boots
            time.sleep(0.2)
    pytest.fail(f"the server did not answer within {STARTUP_SECONDS}s:\n{log.read_text()[-4000:]}")


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="session")
def browser_executable() -> str:
    """Return Debian's Chromium, skipping (failing in CI) when it is missing."""
    require(Path(CHROMIUM).is_file(), f"Chromium not found at {CHROMIUM}")
    return CHROMIUM


@pytest.fixture(scope="package")
def live_server(tmp_path_factory, browser_executable) -> Iterator[str]:
    """Start gunicorn and an RQ worker with a fresh schema and queue; return the base URL."""
    require(postgres_up() and redis_up(), f"PostgreSQL ({TEST_DATABASE_URL}) and Redis ({TEST_REDIS_URL}) are needed")
    workdir = tmp_path_factory.mktemp("live")
    environment = {
        **os.environ,
        "DATABASE_URL": sqlalchemy_url(TEST_DATABASE_URL),
        "REDIS_URL": TEST_REDIS_URL,
        "SECRET_KEY": "browser-test-secret",
        "STUDIO_INSTANCE_DIR": str(workdir / "instance"),
        "STUDIO_STORAGE_DIR": str(workdir / "storage"),
        "STUDIO_MODEL_DIR": settings.from_environment()["STUDIO_MODEL_DIR"],
        "STUDIO_S3_BUCKET": "",
        "STUDIO_TORCH_THREADS": "2",
        "PYTHONUNBUFFERED": "1",
    }
    app = create_app({"SQLALCHEMY_DATABASE_URI": environment["DATABASE_URL"], "REDIS_URL": TEST_REDIS_URL,
                      "SECRET_KEY": "x", "RATELIMIT_ENABLED": False})
    with app.app_context():
        db.drop_all()
        db.create_all()
    Redis.from_url(TEST_REDIS_URL).flushdb()

    port = _free_port()
    server_log, worker_log = workdir / "gunicorn.log", workdir / "worker.log"
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4",
         "wsgi:app"],
        cwd=PROJECT_ROOT, env=environment, stdout=server_log.open("w"), stderr=subprocess.STDOUT)
    worker = subprocess.Popen(
        [sys.executable, "rq_worker.py"],
        cwd=PROJECT_ROOT, env=environment, stdout=worker_log.open("w"), stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_serving(base_url, server, server_log)
        yield base_url
    finally:
        _stop(server)
        _stop(worker)
        print("--- worker log (tail) ---\n" + worker_log.read_text()[-3000:])
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()
        Redis.from_url(TEST_REDIS_URL).flushdb()


@pytest.fixture
def browser(browser_executable):
    """Return a headless Chromium driven by Playwright."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
