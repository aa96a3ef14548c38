"""Crash-recovery fixtures: a PostgreSQL cluster and a Redis server of our own, and a Studio on them."""

from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from flask_migrate import upgrade
from sqlalchemy import create_engine

from jobs import context as job_context
from jobs.sqs_job import max_receive_count
from ml.registry import available_model_names
from studio import create_app
from studio.auth import service as account_service
from studio.extensions import db
from tests.support.processes import PHOTO, PostgresCluster, RedisServer, Stack, Studio
from tests.support.services import MODEL_DIR, require
from tests.support.sqs import VISIBILITY, make_queues
from tests.support.studio import FAST_HASHER, JOB_RETRIES, base_config

# The stacks a parametrised test runs on (indirect parameters of the `stack` fixture): RQ, with its default number
# of jobs per worker process or with each way (a work horse forked per job, or every job in the worker's own
# process), and SQS (STUDIO_QUEUE_BACKEND=sqs, whose worker always runs its jobs in its own process).
_STACK_WORKERS = {"rq": {}, "rq-fork": {"STUDIO_WORKER_JOBS_PER_PROCESS": "1"},
                  "rq-reuse": {"STUDIO_WORKER_JOBS_PER_PROCESS": "100"}}


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    """Return a running PostgreSQL cluster of our own, its schema built by the migrations."""
    require(shutil.which("runuser") is not None or os.geteuid() != 0, "runuser is needed to run initdb as root")
    cluster = PostgresCluster()
    try:
        cluster.start()
        app = create_app({"SQLALCHEMY_DATABASE_URI": cluster.url, "SECRET_KEY": "test-secret", "TESTING": True})
        with app.app_context():
            upgrade()
            db.engine.dispose()
        yield cluster
    finally:
        cluster.remove()


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """Return a running redis-server of our own, killed after the test."""
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def photo(photos_dir: Path) -> bytes:
    """Return the small real photo the jobs process."""
    return (photos_dir / PHOTO).read_bytes()


@pytest.fixture
def make_studio(postgres: PostgresCluster, redis_server: RedisServer, tmp_path: Path,
                monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Studio]]:
    """Return a factory of a Studio on clean services; its workers are killed after the test."""
    monkeypatch.setattr(account_service, "password_hasher", FAST_HASHER)
    model_dir = str(MODEL_DIR)
    require("u2netp" in available_model_names(model_dir), "the u2netp weights are not installed (make install)")
    studios: list[Studio] = []

    def make(**overrides: Any) -> Studio:
        config = base_config(postgres.url, redis_server.url, tmp_path / "storage")
        config.update(STUDIO_MODEL_DIR=model_dir, STUDIO_JOB_RETRY_INTERVALS=[0], STUDIO_HEARTBEAT_SECONDS=1,
                      STUDIO_STALE_HEARTBEAT_SECONDS=5, STUDIO_PENDING_GRACE_SECONDS=0)
        config.update(overrides)
        app = create_app(config)
        job_context.bind_app(app)
        with app.app_context():
            user = account_service.create_user(f"user-{uuid.uuid4().hex[:8]}@example.com", "correct horse battery")
            _, token = account_service.create_api_token(user, "tests")
        studio = Studio(app, redis_server, {"Authorization": f"Bearer {token}"}, tmp_path)
        studios.append(studio)
        return studio

    _truncate(postgres.url)
    yield make
    for studio in studios:
        studio.close()
        with studio.app.app_context():
            db.session.remove()
            db.engine.dispose()
    job_context.bind_app(None)


@pytest.fixture
def make_sqs_studio(make_studio: Callable[..., Studio], s3_endpoint: str,
                    monkeypatch: pytest.MonkeyPatch) -> Callable[..., Studio]:
    """Return a factory of a Studio whose tasks go through SQS (moto's server): a FIFO queue of its own with a
    dead-letter queue redriving after the studio's attempts and one delivery more (studio.queues), consumed by every
    worker it starts."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", s3_endpoint)

    def make(**overrides: Any) -> Studio:
        retries = overrides.get("STUDIO_JOB_RETRIES", JOB_RETRIES)
        queues = make_queues(s3_endpoint, max_receive_count=max_receive_count({"STUDIO_JOB_RETRIES": retries}),
                             visibility=VISIBILITY)
        studio = make_studio(STUDIO_QUEUE_BACKEND="sqs", STUDIO_SQS_QUEUE_URL=queues.url, **overrides)
        studio.queues = queues
        studio.worker_defaults = queues.settings(s3_endpoint, VISIBILITY)
        return studio
    return make


@pytest.fixture
def stack(request: pytest.FixtureRequest) -> Stack:
    """Return the stack the test is parametrised with (indirect: rq, rq-fork, rq-reuse or sqs), whose factory makes
    a Studio on it."""
    name = request.param
    if name == "sqs":
        return Stack(name, request.getfixturevalue("make_sqs_studio"))
    make_rq = request.getfixturevalue("make_studio")

    def make(**overrides: Any) -> Studio:
        studio = make_rq(**overrides)
        studio.worker_defaults = dict(_STACK_WORKERS[name])
        return studio
    return Stack(name, make)


def _truncate(url: str) -> None:
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE tasks, api_tokens, users RESTART IDENTITY CASCADE")
    engine.dispose()
