"""Fixtures for the bad-input tests: the service fixtures (migrated PostgreSQL, Redis, a real worker) and both
upload routes, the JSON API with a bearer token and the HTML form with its CSRF token, behind one interface."""

from __future__ import annotations

from typing import Callable

import pytest
from flask import Flask

from studio.models import User
from tests.support.uploads import ROUTES, Uploader, assert_nothing_kept, sign_in


@pytest.fixture(params=ROUTES)
def uploader(request: pytest.FixtureRequest, app: Flask, user: User, headers: dict[str, str]) -> Uploader:
    """Return an uploader for the API and, in a second run, for the HTML form."""
    client = app.test_client()
    if request.param == "html":
        sign_in(client, user.email)
    return Uploader(request.param, client, headers)


@pytest.fixture
def nothing_kept(app: Flask) -> Callable[[], None]:
    """Return the check that nothing was stored, recorded or queued."""
    return lambda: assert_nothing_kept(app)
