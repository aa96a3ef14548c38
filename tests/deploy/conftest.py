"""Fixtures for the deployment tests: a clean Redis database and free local ports."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any, Iterator

import pytest
from flask import Flask
from redis import Redis
from redis.exceptions import RedisError

from studio import create_app
from studio.extensions import db
from tests.conftest import TEST_REDIS_URL, require


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def redis_connection() -> Iterator[Redis]:
    """Return a connection to the test Redis database, emptied before and after the test."""
    connection = Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2)
    try:
        connection.ping()
    except RedisError as error:
        connection.close()
        require(False, f"Redis not reachable at {TEST_REDIS_URL}: {error}")
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()


def make_app(tmp_path: Path, create_schema: bool = True, **overrides: Any) -> Flask:
    """Create an app on a fresh SQLite database in tmp_path, local storage, and the test Redis."""
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'studio.sqlite3'}",
        "REDIS_URL": TEST_REDIS_URL,
        "STUDIO_STORAGE_DIR": str(tmp_path / "storage"),
        "STUDIO_S3_BUCKET": None,
        "RATELIMIT_STORAGE_URI": "memory://",
    }
    config.update(overrides)
    app = create_app(config)
    if create_schema:
        with app.app_context():
            db.create_all()
    return app
