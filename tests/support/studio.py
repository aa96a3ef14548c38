"""Helpers for tests of the app on the real services: its configuration, uploads through the API, a worker."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from argon2 import PasswordHasher
from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from rq import SimpleWorker
from sqlalchemy import create_engine

from jobs import context as job_context
from studio.extensions import db, limiter
from studio.models import Task
from studio.queue import photo_queues

PASSWORD = "correct horse battery staple"
# Cheap Argon2 parameters keep the suite fast; production uses the library defaults.
FAST_HASHER = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
S3_BUCKET = "studio-test"
AWS_ENVIRONMENT = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                   "AWS_DEFAULT_REGION": "us-east-1"}


# Attempts after the first that a test's task gets, unless the test says otherwise.
JOB_RETRIES = 2


def base_config(database_url: str, redis_url: str, storage_dir: Path) -> dict[str, Any]:
    """Return the test configuration: real services, immediate retries, the generous production rate limits."""
    return {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SERVER_NAME": "studio.test",
        "TRUSTED_HOSTS": ["studio.test", "localhost", "127.0.0.1"],
        "SQLALCHEMY_DATABASE_URI": database_url,
        "REDIS_URL": redis_url,
        "RATELIMIT_STORAGE_URI": redis_url,
        "STUDIO_QUEUE": "studio-test",
        "STUDIO_WEBHOOK_QUEUE": "studio-test-webhooks",
        "STUDIO_STORAGE_DIR": str(storage_dir),
        # Every upload runs its job, as these tests were written for: tests/tasks/test_duplicates.py turns reuse on.
        "STUDIO_REUSE_DUPLICATES": False,
        "STUDIO_S3_BUCKET": None,
        "STUDIO_JOB_RETRIES": JOB_RETRIES,
        # No delay between attempts, so a burst worker runs every retry without a scheduler.
        "STUDIO_JOB_RETRY_INTERVALS": [0],
    }


def clean(database_url: str, redis_url: str) -> None:
    """Empty the tables a test fills and the Redis database."""
    engine = create_engine(database_url)
    with engine.begin() as connection:
        connection.exec_driver_sql("TRUNCATE tasks, api_tokens, users RESTART IDENTITY CASCADE")
    engine.dispose()
    Redis.from_url(redis_url).flushdb()


def upload(client: FlaskClient, headers: dict[str, str], data: bytes, filename: str = "photo.jpg",
           **options: str):
    """POST a photo to the API as a multipart upload."""
    return client.post("/api/v1/tasks", headers=headers, content_type="multipart/form-data",
                       data={"image": (io.BytesIO(data), filename), **options})


def load_task(app: Flask, task_id: str) -> Task | None:
    """Return a task row, detached, read fresh from the database."""
    with app.app_context():
        task = db.session.get(Task, task_id)
        if task is not None:
            db.session.expunge(task)
        return task


def run_worker(app: Flask, queues: list[str] | None = None) -> None:
    """Run a real RQ worker in this process until its queues are empty (SimpleWorker, burst mode)."""
    job_context.bind_app(app)
    queues = queues or [*photo_queues(app.config), app.config["STUDIO_WEBHOOK_QUEUE"]]
    worker = SimpleWorker(queues, connection=Redis.from_url(app.config["REDIS_URL"]))
    worker.work(burst=True)


def default_model_ready(app: Flask) -> bool:
    """Return True when ml.pipeline and the default model's weights are installed."""
    from ml.registry import available_model_names

    return app.config["STUDIO_DEFAULT_MODEL"] in available_model_names(app.config["STUDIO_MODEL_DIR"])


def reset_limiter() -> None:
    """Forget limits another app registered on Flask-Limiter's one module-level object, and a dead storage."""
    # An earlier app's limiter storage may have been marked down (the Redis-outage tests leave it so).
    limiter.limit_manager.set_default_limits([])
    limiter.limit_manager.set_application_limits([])
    limiter._storage_dead = False
