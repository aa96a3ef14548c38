"""The real stack for browser tests: gunicorn serving the app and an RQ worker, on PostgreSQL and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest
from playwright.sync_api import sync_playwright
from redis import Redis

from studio import create_app, settings
from studio.extensions import db
from tests.support.live_server import CHROMIUM, CHROMIUM_ARGS, PROJECT_ROOT, stop, wait_until_serving
from tests.support.network import free_port
from tests.support.services import (TEST_DATABASE_URL, TEST_REDIS_URL, database_of_its_own, postgres_up, redis_up,
                                    require)


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
        "DATABASE_URL": database_of_its_own(TEST_DATABASE_URL, "browser"),
        "REDIS_URL": TEST_REDIS_URL,
        "SECRET_KEY": "browser-test-secret",
        "STUDIO_INSTANCE_DIR": str(workdir / "instance"),
        "STUDIO_STORAGE_DIR": str(workdir / "storage"),
        # Every upload runs its job, as these tests were written for (tests/tasks/test_duplicates.py turns it on).
        "STUDIO_REUSE_DUPLICATES": "false",
        # Every browser test signs up and in from 127.0.0.1 on this one server, more than the 10 a minute a client
        # gets; the limit itself is tested in tests/security.
        "STUDIO_RATELIMIT_AUTH": "1000 per minute",
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

    port = free_port()
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
        wait_until_serving(base_url, server, server_log)
        yield base_url
    finally:
        stop(server)
        stop(worker)
        print("--- worker log (tail) ---\n" + worker_log.read_text()[-3000:])
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()
        Redis.from_url(TEST_REDIS_URL).flushdb()


@pytest.fixture
def screenshots(tmp_path) -> Path:
    """Return where to keep screenshots (STUDIO_SCREENSHOT_DIR to keep them after the run)."""
    directory = Path(os.environ.get("STUDIO_SCREENSHOT_DIR") or tmp_path)
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def browser(browser_executable):
    """Return a headless Chromium driven by Playwright."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=browser_executable, args=CHROMIUM_ARGS)
        yield browser
        browser.close()
