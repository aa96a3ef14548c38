"""Helpers for the browser tests' live server: the project root, Chromium, start and stop of its processes."""

from __future__ import annotations

import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

PROJECT_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update"]
STARTUP_SECONDS = 60


def wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    """Return once the server answers; fail when it exits or stays silent for STARTUP_SECONDS."""
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


def stop(process: subprocess.Popen) -> None:
    """Terminate a process, killing it when it does not exit in time."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
