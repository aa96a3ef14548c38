"""Periodic maintenance: make the queue agree with the database, which is the source of truth for task state.

Two things can leave a task stuck with nothing in Redis to move it on: an upload whose enqueue failed (Redis was
down) stays PENDING, and a task whose job vanished (Redis lost its data, or the failure callback could not reach
the database) stays PROCESSING. reconcile_tasks finds both and re-enqueues them, or fails them once they have
used up their attempts.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from redis import Redis
from rq.exceptions import NoSuchJobError
from rq.job import Job, JobStatus
from sqlalchemy import select

from jobs.context import app_context
from studio.extensions import db
from studio.models import Task, TaskStatus, utcnow
from studio.queue import enqueue_task, get_redis

logger = logging.getLogger(__name__)

# A task younger than this may still be on its way into the queue: leave it to the request that made it.
PENDING_GRACE_SECONDS = 60
# Beyond the job timeout: by then RQ has killed the job's work horse and retried or failed it, if a worker ran it.
STALLED_GRACE_SECONDS = 120
# Jobs RQ will still run (again): never touch their tasks.
WAITING_STATUSES = {JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.STARTED}
BATCH_SIZE = 500


def reconcile_tasks() -> dict[str, int]:
    """Re-enqueue PENDING tasks whose job is missing; retry or fail PROCESSING tasks whose job is gone."""
    with app_context():
        try:
            return _reconcile(utcnow())
        finally:
            db.session.remove()


def _job_status(task_id: str, connection: Redis) -> JobStatus | None:
    try:
        return Job.fetch(task_id, connection=connection).get_status()
    except NoSuchJobError:
        return None


def _reconcile(now: datetime) -> dict[str, int]:
    config = current_app.config
    connection = get_redis()
    counts = {"requeued": 0, "retried": 0, "failed": 0}

    pending_before = now - timedelta(seconds=PENDING_GRACE_SECONDS)
    pending = db.session.scalars(
        select(Task)
        .where(Task.status == TaskStatus.PENDING.value, Task.created_at < pending_before)
        .order_by(Task.created_at)
        .limit(BATCH_SIZE)
    )
    for task in pending:
        if _job_status(task.id, connection) is None and enqueue_task(task):
            logger.info("task %s: pending without a job; enqueued again", task.id)
            counts["requeued"] += 1

    stalled_before = now - timedelta(seconds=config["STUDIO_JOB_TIMEOUT"] + STALLED_GRACE_SECONDS)
    stalled = db.session.scalars(
        select(Task)
        .where(Task.status == TaskStatus.PROCESSING.value, Task.heartbeat_at < stalled_before)
        .order_by(Task.heartbeat_at)
        .limit(BATCH_SIZE)
    )
    allowed_attempts = 1 + max(config["STUDIO_JOB_RETRIES"], 0)
    for task in stalled.all():
        status = _job_status(task.id, connection)
        if status in WAITING_STATUSES:
            continue
        if task.attempts < allowed_attempts:
            task.status = TaskStatus.PENDING.value
            db.session.commit()
            enqueue_task(task)
            logger.warning("task %s: processing stopped (job %s); retrying, attempt %s of %s",
                           task.id, status or "missing", task.attempts + 1, allowed_attempts)
            counts["retried"] += 1
        else:
            task.status = TaskStatus.FAILED.value
            task.error = f"Processing stopped unexpectedly after {task.attempts} attempts; upload the photo again."
            task.finished_at = now
            db.session.commit()
            logger.error("task %s: processing stopped (job %s) on the last attempt; failed",
                         task.id, status or "missing")
            counts["failed"] += 1
    if any(counts.values()):
        logger.info("reconciled tasks: %s", counts)
    return counts
