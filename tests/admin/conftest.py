"""Fixtures for the admin dashboard, usage and plan tests: the service tests' real PostgreSQL (migrated), Redis and
app factory, an administrator signed in through the real form, and a stand-in for the model run."""

from __future__ import annotations

import io
import re
from typing import Any, Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from jobs import process_image as job_module
from ml.runner import EncodedOutput
from studio.extensions import db, limiter
from studio.models import AuditEntry, DailyUsage, User
# The service tests' fixtures, reused as they are (found by name).
from tests.service.conftest import (  # noqa: F401
    PASSWORD, app, client, database_url, fast_password_hasher, headers, make_app, make_token, make_user, migrated,
    photo_bytes, redis_url, user,
)

ADMIN = "root@example.com"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
# The fake run's output: a known size, so megapixels out are known.
OUTPUT_SIZE = (40, 30)


@pytest.fixture(autouse=True)
def no_leftover_limits() -> None:
    """Forget limits and a dead limiter storage that another test's app left on the module-level limiter."""
    limiter.limit_manager.set_default_limits([])
    limiter.limit_manager.set_application_limits([])
    limiter._storage_dead = False


def csrf_token(browser: FlaskClient, path: str = "/account") -> str:
    """Return the CSRF token a page hands this client."""
    page = browser.get(path)
    match = CSRF_FIELD.search(page.get_data(as_text=True))
    assert match, f"no csrf_token on {path} ({page.status_code})"
    return match.group(1)


def sign_in(browser: FlaskClient, email: str, password: str = PASSWORD):
    """Sign in through the real form."""
    token = csrf_token(browser, "/login")
    return browser.post("/login", data={"email": email, "password": password, "csrf_token": token})


def post(browser: FlaskClient, path: str, data: dict[str, Any] | None = None, **kwargs: Any):
    """POST a form as the signed-in client, with its CSRF token."""
    return browser.post(path, data={**(data or {}), "csrf_token": csrf_token(browser)}, **kwargs)


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


def png(size: tuple[int, int] = OUTPUT_SIZE) -> bytes:
    """Return a real PNG of this size."""
    buffer = io.BytesIO()
    Image.new("RGBA", size, (0, 0, 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


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


# Exceptions the next fake runs raise, in order (a transient failure is retried by RQ).
fake_run_failures: list[BaseException] = []


def usage_rows(flask_app: Flask, user_id: int | None = None) -> list[DailyUsage]:
    """Return the usage rows, detached."""
    with flask_app.app_context():
        rows = db.session.query(DailyUsage).filter(
            *(() if user_id is None else (DailyUsage.user_id == user_id,))).all()
        db.session.expunge_all()
        return rows


def audit_entries(flask_app: Flask) -> list[AuditEntry]:
    """Return the audit log, oldest first, detached."""
    with flask_app.app_context():
        entries = db.session.query(AuditEntry).order_by(AuditEntry.id).all()
        db.session.expunge_all()
        return entries


def load_user(flask_app: Flask, user_id: int) -> User:
    """Return an account as the database has it now, detached."""
    with flask_app.app_context():
        account = db.session.get(User, user_id)
        db.session.expunge(account)
        return account
