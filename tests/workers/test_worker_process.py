"""rq_worker.py as deployed: a forking worker that preloads the model once and processes real photos."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.studio import load_task, upload

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]


def _run_worker(app, *arguments: str, **environment: str) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": app.config["REDIS_URL"],
        "STUDIO_QUEUE": app.config["STUDIO_QUEUE"],
        "STUDIO_STORAGE_DIR": app.config["STUDIO_STORAGE_DIR"],
        "STUDIO_MODEL_DIR": app.config["STUDIO_MODEL_DIR"],
        "SECRET_KEY": "test-secret",
        # More than one thread per job: the case where a fork after torch's thread pool started would hang.
        "STUDIO_TORCH_THREADS": "2",
        **environment,
    }
    return subprocess.run([sys.executable, "rq_worker.py", *arguments], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=500)


def test_forking_worker_preloads_once_and_processes_photos(make_app, make_user, make_token, photo_bytes,
                                                           model_ready):
    # A hung work horse is killed by the worker after timeout + 60 s and, with no retry, fails its task:
    # the test then fails in a few minutes and leaves no process behind.
    app = make_app(STUDIO_JOB_TIMEOUT=60, STUDIO_JOB_RETRIES=0)
    client, headers = app.test_client(), make_token(make_user())
    ids = [upload(client, headers, photo_bytes(name), filename=name).get_json()["id"]
           for name in ("boat.jpg", "hockey.png", "vangogh.jpeg")]
    finished = _run_worker(app, "--burst", "--name", "test-worker")
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert [load_task(app, task_id).status for task_id in ids] == ["COMPLETED"] * 3
    # Loaded in the parent before the first fork, never again in a work horse.
    assert finished.stderr.count("loading model u2netp") == 1, finished.stderr[-3000:]
    assert "torch threads per job" in finished.stderr


def test_worker_refuses_to_start_without_model_weights(app, tmp_path):
    finished = _run_worker(app, "--burst", STUDIO_MODEL_DIR=str(tmp_path))
    assert finished.returncode == 1
    assert "cannot load the models" in finished.stderr


@pytest.mark.parametrize("value", ["0", "-3"])
def test_a_worker_refuses_a_jobs_per_process_below_one_before_loading_any_model(app, value):
    finished = _run_worker(app, "--burst", STUDIO_WORKER_JOBS_PER_PROCESS=value)
    assert finished.returncode == 2
    assert f"STUDIO_WORKER_JOBS_PER_PROCESS must be 1 (a process per job) or more, got {value}" in finished.stderr
    assert "loading model" not in finished.stderr


def test_a_worker_says_at_once_that_redis_does_not_answer_and_gives_up_after_the_outage_budget(app, model_ready):
    finished = _run_worker(app, "--burst", REDIS_URL="redis://127.0.0.1:1/0", STUDIO_WORKER_REDIS_OUTAGE_SECONDS="2")
    assert "Redis does not answer" in finished.stderr and "waiting up to 2 s for it" in finished.stderr
    assert finished.returncode != 0  # no Redis within the budget: the worker ends for its supervisor to restart
