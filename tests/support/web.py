"""Helpers for the web page tests: their app on a fresh create_all schema, CSRF tokens, the real sign-in forms."""

from __future__ import annotations

import re
from typing import Any

from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient

from studio import create_app
from studio.extensions import db

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
PASSWORD = "correct horse battery staple"
# Cheap Argon2 parameters keep the suite fast; the production parameters are the library defaults.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def make_app(postgres_url: str, redis_url: str, tmp_path, **overrides: Any) -> Flask:
    """Create an app on the test services with a fresh schema."""
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": postgres_url,
        "REDIS_URL": redis_url,
        "STUDIO_STORAGE_DIR": str(tmp_path / "storage"),
        # Every upload runs its job, as these tests were written for: tests/tasks/test_duplicates.py turns reuse on.
        "STUDIO_REUSE_DUPLICATES": False,
        "STUDIO_S3_BUCKET": None,
        "RATELIMIT_ENABLED": False,
        "RATELIMIT_STORAGE_URI": "memory://",
    }
    config.update(overrides)
    app = create_app(config)
    with app.app_context():
        db.drop_all()
        db.create_all()
    return app


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """Return the CSRF token a page hands this client."""
    page = client.get(path)
    match = CSRF_FIELD.search(page.get_data(as_text=True))
    assert match, f"no csrf_token field on {path} ({page.status_code})"
    return match.group(1)


class AuthActions:
    """Sign up, sign in and out through the real forms."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client

    def register(self, email: str = "ada@example.com", password: str = PASSWORD, confirm: str | None = None):
        """Post the registration form."""
        token = csrf_token(self.client, "/register")
        return self.client.post("/register", data={
            "email": email, "password": password, "confirm": password if confirm is None else confirm,
            "csrf_token": token})

    def login(self, email: str = "ada@example.com", password: str = PASSWORD, **extra: str):
        """Post the sign-in form."""
        token = csrf_token(self.client, "/login")
        return self.client.post("/login", data={"email": email, "password": password, "csrf_token": token,
                                                **extra})

    def logout(self):
        """Post the sign-out form."""
        token = csrf_token(self.client, "/account")
        return self.client.post("/logout", data={"csrf_token": token})
