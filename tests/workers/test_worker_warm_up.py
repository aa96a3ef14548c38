"""rq_worker.warm_up: the parent runs the default cutout once, on one thread, before it forks its first horse.

(test_worker_process.py runs the whole worker, warm-up included, with two torch threads per job: the case a
parallel region in the parent would hang.)
"""

from __future__ import annotations

import io
import logging

import pytest
import torch
from flask import Flask
from PIL import Image

import rq_worker
from ml.operations import DEFAULT_OPERATION
from ml.registry import MODELS
from studio import settings
from tests.support.services import MODEL_DIR, require


def worker_app(**overrides: object) -> Flask:
    """Return an app holding only the settings the warm-up reads (it needs no database)."""
    app = Flask("warm-up")
    app.config.update(settings.from_environment(), STUDIO_MODEL_DIR=str(MODEL_DIR), **overrides)
    return app


@pytest.fixture
def two_threads():
    """Let torch use two threads, as a caller of warm_up might have, and restore what it had."""
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(before)


def test_warm_up_runs_the_default_cutout_on_one_thread_and_restores_the_threads(monkeypatch, two_threads):
    calls = []

    def recording_process(operation, photo, options, **kwargs):
        calls.append((operation.name, options.model, torch.get_num_threads(), Image.open(io.BytesIO(photo))))
        return []

    monkeypatch.setattr(rq_worker, "process", recording_process)
    monkeypatch.setattr(rq_worker, "available_model_names", lambda model_dir: ["u2netp", "u2net"])
    assert rq_worker.warm_up(worker_app(STUDIO_DEFAULT_MODEL="u2net")) is True
    [(operation, model, threads, photo)] = calls
    assert (operation, model, threads) == (DEFAULT_OPERATION, "u2net", 1)
    assert (photo.format, photo.size) == ("JPEG", rq_worker.WARM_UP_PHOTO_SIZE)
    assert torch.get_num_threads() == 2


def test_a_failed_warm_up_is_logged_and_the_worker_goes_on(monkeypatch, caplog, two_threads):
    def failing_process(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(rq_worker, "process", failing_process)
    monkeypatch.setattr(rq_worker, "available_model_names", lambda model_dir: ["u2netp"])
    with caplog.at_level(logging.WARNING, logger="rq_worker"):
        assert rq_worker.warm_up(worker_app()) is False
    assert "warm-up skipped" in caplog.text and "out of memory" in caplog.text
    assert torch.get_num_threads() == 2


@pytest.mark.slow
def test_warm_up_cuts_out_the_made_up_photo_with_the_installed_model(monkeypatch):
    require(MODELS["u2netp"].weights_path(MODEL_DIR).is_file(), f"U2NetP weights not installed in {MODEL_DIR}")
    outputs = []
    real_process = rq_worker.process
    monkeypatch.setattr(rq_worker, "process", lambda *args, **kwargs: outputs.append(real_process(*args, **kwargs)))
    assert rq_worker.warm_up(worker_app(STUDIO_DEFAULT_MODEL="u2netp")) is True
    [[result]] = outputs
    cutout = Image.open(io.BytesIO(result.data))
    assert (cutout.format, cutout.mode, cutout.size) == ("PNG", "RGBA", rq_worker.WARM_UP_PHOTO_SIZE)
