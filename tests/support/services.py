"""Where the real services and the fixture photos are, and whether a test may skip when one is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from studio.settings import from_environment

# In CI every test that needs PostgreSQL, Redis, S3, the browser or the fixtures must run, never skip.
IN_CI = os.environ.get("CI", "").lower() == "true"
TEST_DATABASE_URL = os.environ.get("STUDIO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
TEST_REDIS_URL = os.environ.get("STUDIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# Where `make install` put the model weights, as the app reads it.
MODEL_DIR = Path(from_environment()["STUDIO_MODEL_DIR"])
FIXTURES_DIR = Path(
    os.environ.get("STUDIO_FIXTURES_DIR") or Path(__file__).resolve().parents[3] / "shared" / "fixtures"
)


def database_of_its_own(url: str, suffix: str) -> str:
    """Return the URL of the database beside url's named <name>_<suffix>, created when missing.

    The web and browser tests build their schema with create_all and drop it after each test: on a database of
    their own they never take the migrated schema away from the folders that run after them.
    """
    parsed = make_url(sqlalchemy_url(url))
    name = f"{parsed.database}_{suffix}"
    server = create_engine(parsed.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as connection:
            if not connection.execute(text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}).scalar():
                connection.execute(text(f'CREATE DATABASE "{name}"'))
    finally:
        server.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


def sqlalchemy_url(url: str) -> str:
    """Name the installed driver: SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3, we ship psycopg2."""
    if url.startswith("postgresql://"):
        return "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def postgres_up(url: str = TEST_DATABASE_URL) -> bool:
    """Return True when the database answers."""
    engine = create_engine(sqlalchemy_url(url))
    try:
        with engine.connect():
            return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


def redis_up(url: str = TEST_REDIS_URL) -> bool:
    """Return True when Redis answers."""
    try:
        return bool(Redis.from_url(url, socket_connect_timeout=1).ping())
    except RedisError:
        return False


def require(condition: bool, reason: str) -> None:
    """Skip when a service is missing on a laptop; fail in CI, where everything must run."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)
