"""Fixtures for the app on the real services: PostgreSQL (schema from the migrations), Redis, moto's S3 server."""

from __future__ import annotations

import os
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from flask import Flask
from flask.testing import FlaskClient
from flask_migrate import upgrade
from sqlalchemy import MetaData, create_engine

from jobs import context as job_context
from jobs import process_image as job_module
from ml.runner import EncodedOutput
from studio import create_app
from studio.auth import service as account_service
from studio.extensions import db
from studio.models import User
from tests.support.admin import OUTPUT_SIZE, fake_run_failures, png
from tests.support.network import free_port
from tests.support.receiver import Receiver
from tests.support.services import TEST_DATABASE_URL, TEST_REDIS_URL, postgres_up, redis_up, require, sqlalchemy_url
from tests.support.studio import (
    AWS_ENVIRONMENT, FAST_HASHER, PASSWORD, S3_BUCKET, base_config, clean, default_model_ready, reset_limiter,
)


# The web and browser tests drop their schema after each test: they use databases of their own.
@pytest.fixture(scope="package")
def database_url() -> str:
    """Return the test database URL with its schema built by the migrations (not create_all)."""
    url = sqlalchemy_url(TEST_DATABASE_URL)
    require(postgres_up(url), f"PostgreSQL not reachable at {TEST_DATABASE_URL}")
    engine = create_engine(url)
    metadata = MetaData()
    metadata.reflect(engine)
    metadata.drop_all(engine)
    engine.dispose()
    return url


@pytest.fixture(scope="session")
def redis_url() -> str:
    """Return the test Redis URL."""
    require(redis_up(TEST_REDIS_URL), f"Redis not reachable at {TEST_REDIS_URL}")
    return TEST_REDIS_URL


@pytest.fixture(scope="package")
def migrated(database_url: str, redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> str:
    """Upgrade the empty test database to the newest migration, once per folder."""
    app = create_app(base_config(database_url, redis_url, tmp_path_factory.mktemp("storage")))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return database_url


@pytest.fixture(autouse=True)
def fast_password_hasher(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hash passwords with cheap parameters during tests."""
    monkeypatch.setattr(account_service, "password_hasher", FAST_HASHER)


@pytest.fixture
def make_app(migrated: str, redis_url: str, tmp_path: Path) -> Iterator[Callable[..., Flask]]:
    """Return a factory of apps on the clean test services; the tables and the Redis db are emptied after."""
    apps: list[Flask] = []

    def make(**overrides: Any) -> Flask:
        config = base_config(migrated, redis_url, tmp_path / "storage")
        config.update(overrides)
        app = create_app(config)
        apps.append(app)
        job_context.bind_app(app)
        return app

    clean(migrated, redis_url)
    yield make
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    job_context.bind_app(None)
    clean(migrated, redis_url)


@pytest.fixture
def security_app(make_app: Callable[..., Flask]) -> Iterator[Callable[..., Flask]]:
    """Return a factory of apps on the test services; rate limits off unless a test turns them on."""
    reset_limiter()

    def build(**overrides: Any) -> Flask:
        config: dict[str, Any] = {"RATELIMIT_ENABLED": False}
        config.update(overrides)
        return make_app(**config)

    yield build
    reset_limiter()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """Return the app with local-disk storage."""
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """Return a test client."""
    return app.test_client()


@pytest.fixture
def make_user(app: Flask) -> Callable[..., User]:
    """Create accounts through the account service; return them detached."""
    def make(email: str | None = None, password: str = PASSWORD, **kwargs: Any) -> User:
        with app.app_context():
            user = account_service.create_user(email or f"user-{uuid.uuid4().hex[:8]}@example.com", password,
                                               **kwargs)
            db.session.refresh(user)
            db.session.expunge(user)
            return user
    return make


@pytest.fixture
def make_token(app: Flask) -> Callable[[User], dict[str, str]]:
    """Return the Authorization header of a new API token for an account."""
    def make(user: User) -> dict[str, str]:
        with app.app_context():
            _, plaintext = account_service.create_api_token(db.session.get(User, user.id), "tests")
        return {"Authorization": f"Bearer {plaintext}"}
    return make


@pytest.fixture
def user(make_user: Callable[..., User]) -> User:
    """Return one account."""
    return make_user("ada@example.com")


@pytest.fixture
def headers(user: User, make_token: Callable[[User], dict[str, str]]) -> dict[str, str]:
    """Return the bearer header of the `user` fixture's account."""
    return make_token(user)


@pytest.fixture(scope="session")
def photo_bytes(photos_dir: Path) -> Callable[[str], bytes]:
    """Return a reader of the real fixture photos by name."""
    return lambda name: (photos_dir / name).read_bytes()


@pytest.fixture
def model_ready(app: Flask) -> None:
    """Require the real model (skip on a laptop without weights, fail in CI)."""
    require(default_model_ready(app), "the default model's weights are not installed (make install)")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    """Start moto's S3 server on a free local port and return its URL (with test credentials in the env)."""
    from moto.server import ThreadedMotoServer

    saved = {name: os.environ.get(name) for name in AWS_ENVIRONMENT}
    os.environ.update(AWS_ENVIRONMENT)
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture
def s3_app(make_app: Callable[..., Flask], s3_endpoint: str) -> Flask:
    """Return an app storing files in a fresh bucket on the moto server."""
    import boto3

    bucket = f"{S3_BUCKET}-{uuid.uuid4().hex[:8]}"
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket=bucket)
    return make_app(STUDIO_S3_BUCKET=bucket, STUDIO_S3_ENDPOINT_URL=s3_endpoint, STUDIO_S3_REGION="us-east-1",
                    STUDIO_S3_PREFIX="studio")


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """Return a local HTTP receiver for webhooks."""
    server = Receiver()
    yield server
    server.close()


@pytest.fixture
def fake_run(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Replace the model run by one that returns an OUTPUT_SIZE PNG (the operation, storage and lifecycle are
    real); return the list the runs append to, and let a test make runs fail by appending to `fake_run_failures`."""
    runs: list[str] = []

    def run(operation, data, options, **kwargs):
        runs.append(operation.name)
        if fake_run_failures:
            raise fake_run_failures.pop(0)
        return [EncodedOutput("result", png(), "image/png", ".png", OUTPUT_SIZE[0] * OUTPUT_SIZE[1])]

    fake_run_failures.clear()
    monkeypatch.setattr(job_module, "process", run)
    return runs
