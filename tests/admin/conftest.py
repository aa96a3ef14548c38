"""Fixtures for the admin dashboard, usage and plan tests: the service tests' real PostgreSQL (migrated), Redis and
app factory, an administrator signed in through the real form, and a stand-in for the model run."""

from __future__ import annotations

from typing import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from jobs import process_image as job_module
from ml.runner import EncodedOutput
from studio.extensions import limiter
from studio.models import User
from tests.support.admin import ADMIN, OUTPUT_SIZE, fake_run_failures, png, sign_in


@pytest.fixture(autouse=True)
def no_leftover_limits() -> None:
    """Forget limits and a dead limiter storage that another test's app left on the module-level limiter."""
    limiter.limit_manager.set_default_limits([])
    limiter.limit_manager.set_application_limits([])
    limiter._storage_dead = False


@pytest.fixture
def admin(make_user: Callable[..., User]) -> User:  # noqa: F811
    """Return an administrator's account."""
    return make_user(ADMIN, is_admin=True)


@pytest.fixture
def admin_client(app: Flask, admin: User) -> FlaskClient:  # noqa: F811
    """Return a client signed in as the administrator."""
    browser = app.test_client()
    assert sign_in(browser, ADMIN).status_code == 302
    return browser


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the model run by one that returns an OUTPUT_SIZE PNG (the operation, storage and lifecycle are
    real); return the list the runs append to, and let a test make runs fail by appending to `failures`."""
    runs: list[str] = []

    def run(operation, data, options, **kwargs):
        runs.append(operation.name)
        if fake_run_failures:
            raise fake_run_failures.pop(0)
        return [EncodedOutput("result", png(), "image/png", ".png", OUTPUT_SIZE[0] * OUTPUT_SIZE[1])]

    fake_run_failures.clear()
    monkeypatch.setattr(job_module, "process", run)
    return runs
