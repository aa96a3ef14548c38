"""Fixtures for the admin dashboard, usage and plan tests: the service tests' real PostgreSQL (migrated), Redis and
app factory, an administrator signed in through the real form. (The stand-in for the model run, `fake_run`, is in
tests/plugins/services.py.)"""

from __future__ import annotations

from typing import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from studio.extensions import limiter
from studio.models import User
from tests.support.admin import ADMIN, sign_in


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
