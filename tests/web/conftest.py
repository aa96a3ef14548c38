"""Fixtures for the page tests: an app on the real test PostgreSQL, a client, a CLI runner and an `auth` helper."""

from __future__ import annotations

import uuid
from typing import Any, Callable, Iterator

import pytest
from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis

from studio.auth import service as account_service
from studio.extensions import db
from studio.models import Task, TaskStatus, User
from tests.support.services import (TEST_DATABASE_URL, TEST_REDIS_URL, database_of_its_own, postgres_up, redis_up,
                                    require)
from tests.support.web import AuthActions, FAST_HASHER, PASSWORD, make_app


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """Return the test database URL, skipping (failing in CI) when PostgreSQL is not there."""
    require(postgres_up(), f"PostgreSQL not reachable at {TEST_DATABASE_URL}")
    return database_of_its_own(TEST_DATABASE_URL, "web")


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Return the test Redis URL, skipping (failing in CI) when Redis is not there."""
    require(redis_up(), f"Redis not reachable at {TEST_REDIS_URL}")
    return TEST_REDIS_URL


@pytest.fixture(autouse=True)
def fast_password_hasher(monkeypatch: pytest.MonkeyPatch) -> PasswordHasher:
    """Hash passwords with cheap parameters during tests."""
    monkeypatch.setattr(account_service, "password_hasher", FAST_HASHER)
    return FAST_HASHER


@pytest.fixture
def app(postgres_url: str, redis_url: str, tmp_path) -> Iterator[Flask]:
    """Return the app with an empty schema, dropped again afterwards."""
    app = make_app(postgres_url, redis_url, tmp_path)
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()
    # Uploads queued jobs; the next test starts with an empty queue.
    Redis.from_url(redis_url).flushdb()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Return a test client (a browser without JavaScript)."""
    return app.test_client()


@pytest.fixture
def runner(app: Flask):
    """Return a CLI runner for the app."""
    return app.test_cli_runner()


@pytest.fixture
def auth(client: FlaskClient) -> AuthActions:
    """Return the sign-in helper for the client."""
    return AuthActions(client)


@pytest.fixture
def make_user(app: Flask) -> Callable[..., User]:
    """Create accounts directly through the service."""
    def make(email: str = "ada@example.com", password: str = PASSWORD, **kwargs: Any) -> User:
        with app.app_context():
            user = account_service.create_user(email, password, **kwargs)
            db.session.refresh(user)
            db.session.expunge(user)
            return user
    return make


@pytest.fixture
def make_task(app: Flask) -> Callable[..., str]:
    """Insert a task row for an account and return its id (no file, no job: for page and ownership tests)."""
    def make(user_id: int, status: TaskStatus = TaskStatus.PENDING, **fields: Any) -> str:
        with app.app_context():
            task = Task(
                id=str(uuid.uuid4()), user_id=user_id, status=status.value, model="u2netp",
                options={"model": "u2netp", "output": "cutout", "format": "png", "bg_color": None, "blur": 0,
                         "crop": False, "margin": 0},
                original_filename=fields.pop("original_filename", "photo.jpg"),
                input_key=fields.pop("input_key", "missing/input.jpg"), input_content_type="image/jpeg",
                input_width=4, input_height=3, **fields)
            db.session.add(task)
            db.session.commit()
            return task.id
    return make
