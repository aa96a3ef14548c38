"""Helpers for the admin dashboard tests: sign in, post forms, read the usage rows and the audit log."""

from __future__ import annotations

import io
import re
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from studio.extensions import db
from studio.models import AuditEntry, DailyUsage, User
from tests.support.studio import PASSWORD

ADMIN = "root@example.com"
CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
# The fake run's output: a known size, so megapixels out are known.
OUTPUT_SIZE = (40, 30)


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


def png(size: tuple[int, int] = OUTPUT_SIZE) -> bytes:
    """Return a real PNG of this size."""
    buffer = io.BytesIO()
    Image.new("RGBA", size, (0, 0, 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


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
