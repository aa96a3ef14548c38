"""jobs.maintenance.reconcile_tasks against a real Redis: lost jobs come back, stalled tasks retry or fail."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from flask import Flask
from rq.job import Job

from jobs import context as job_context
from jobs.maintenance import PENDING_GRACE_SECONDS, STALLED_GRACE_SECONDS, reconcile_tasks
from studio.extensions import db
from studio.models import Task, TaskStatus, User, utcnow
from studio.queue import get_queue
from tests.support.deploy import make_app

pytestmark = pytest.mark.integration


@pytest.fixture
def app(tmp_path, redis_connection, monkeypatch: pytest.MonkeyPatch) -> Flask:
    """Return an app on SQLite and the emptied test Redis, bound as the jobs' app."""
    app = make_app(tmp_path, STUDIO_JOB_RETRIES=2, STUDIO_JOB_TIMEOUT=300)
    monkeypatch.setattr(job_context, "_app", app)
    with app.app_context():
        db.session.add(User(id=1, email="ada@example.com", password_hash="unused"))
        db.session.commit()
    return app


def make_task(app: Flask, status: TaskStatus, age_seconds: float, attempts: int = 0) -> str:
    """Insert a task created (and, when processing, last heard of) age_seconds ago; return its id."""
    moment = utcnow() - timedelta(seconds=age_seconds)
    with app.app_context():
        task = Task(id=str(uuid.uuid4()), user_id=1, status=status.value, model="u2netp", options={},
                    input_key="inputs/photo.jpg", input_content_type="image/jpeg", attempts=attempts,
                    created_at=moment, heartbeat_at=moment if status is TaskStatus.PROCESSING else None)
        db.session.add(task)
        db.session.commit()
        return task.id


def task_status(app: Flask, task_id: str) -> tuple[str, str | None]:
    """Return the task's status and error."""
    with app.app_context():
        task = db.session.get(Task, task_id)
        return task.status, task.error


def queued_ids(app: Flask) -> list[str]:
    """Return the ids of the jobs waiting in the processing queue."""
    with app.app_context():
        return get_queue().job_ids


STALE = 300 + STALLED_GRACE_SECONDS + 60


def test_a_pending_task_without_a_job_is_enqueued_again_once(app: Flask) -> None:
    lost = make_task(app, TaskStatus.PENDING, PENDING_GRACE_SECONDS + 60)

    first = reconcile_tasks()
    second = reconcile_tasks()

    assert first["requeued"] == 1 and second["requeued"] == 0
    assert queued_ids(app) == [lost]
    assert task_status(app, lost) == ("PENDING", None)


def test_pending_tasks_with_a_job_or_just_created_are_left_alone(app: Flask) -> None:
    queued = make_task(app, TaskStatus.PENDING, PENDING_GRACE_SECONDS + 60)
    with app.app_context():
        get_queue().enqueue("os.getcwd", job_id=queued)
    make_task(app, TaskStatus.PENDING, 1)

    assert reconcile_tasks()["requeued"] == 0
    assert queued_ids(app) == [queued]


def test_a_stalled_task_with_attempts_left_is_retried(app: Flask) -> None:
    stalled = make_task(app, TaskStatus.PROCESSING, STALE, attempts=1)

    assert reconcile_tasks()["retried"] == 1

    assert task_status(app, stalled) == ("PENDING", None)
    assert queued_ids(app) == [stalled]


def test_a_stalled_task_on_its_last_attempt_fails_with_a_reason(app: Flask) -> None:
    stalled = make_task(app, TaskStatus.PROCESSING, STALE, attempts=3)

    assert reconcile_tasks()["failed"] == 1

    status, error = task_status(app, stalled)
    assert status == "FAILED"
    assert "stopped unexpectedly after 3 attempts" in error
    assert queued_ids(app) == []


def test_processing_tasks_that_rq_still_handles_or_that_are_recent_are_left_alone(app: Flask) -> None:
    waiting_for_retry = make_task(app, TaskStatus.PROCESSING, STALE, attempts=1)
    with app.app_context():
        get_queue().enqueue("os.getcwd", job_id=waiting_for_retry)
    recent = make_task(app, TaskStatus.PROCESSING, 10, attempts=1)

    assert reconcile_tasks() == {"requeued": 0, "retried": 0, "failed": 0, "webhooks": 0}

    assert task_status(app, waiting_for_retry)[0] == "PROCESSING"
    assert task_status(app, recent)[0] == "PROCESSING"
    assert Job.exists(waiting_for_retry, connection=get_queue(app).connection)
