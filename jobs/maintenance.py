"""Periodic maintenance: make the queue agree with the database, which is the source of truth for task state.

Three things can leave a task stuck with nothing in Redis to move it on:
- an upload whose enqueue failed (Redis was down), or whose job vanished (Redis restarted without its data), or
  whose every attempt failed before it could record anything (the database was down): PENDING, no live job;
- a worker killed outright (SIGKILL, a lost machine): its job stays STARTED in RQ until RQ finds it abandoned,
  which RQ only checks when a worker runs its maintenance; the task stays PROCESSING;
- a job that vanished or failed without reaching the database: PROCESSING, no live job, a silent heartbeat.
reconcile_tasks runs RQ's abandoned-job check itself (so it happens every reconciler run, whatever the workers
do), then re-enqueues the first kind and retries or fails the last. Every enqueue goes through enqueue_task, so
racing an upload or another reconciler never gives a task two jobs.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from redis import Redis
from rq.job import JobStatus
from rq.registry import StartedJobRegistry
from sqlalchemy import func, select, update

from jobs.context import app_context
from studio.extensions import db
from jobs.webhooks import give_up
from studio.models import Task, TaskStatus, WebhookStatus, utcnow
from studio.queue import LIVE_STATUSES, enqueue_task, enqueue_webhook, get_queue, job_status, webhook_job_id

logger = logging.getLogger(__name__)

# Defaults of STUDIO_PENDING_GRACE_SECONDS and STUDIO_STALE_HEARTBEAT_SECONDS (studio/settings.py), for apps
# configured without them.
PENDING_GRACE_SECONDS = 60
STALLED_GRACE_SECONDS = 120
BATCH_SIZE = 500


def reconcile_tasks() -> dict[str, int]:
    """Re-enqueue PENDING tasks without a live job; retry or fail PROCESSING tasks whose job is gone."""
    with app_context():
        try:
            return _reconcile(utcnow())
        finally:
            db.session.remove()


def _reconcile(now: datetime) -> dict[str, int]:
    config = current_app.config
    queue = get_queue()
    connection = queue.connection
    # RQ's own check for jobs whose worker stopped renewing their heartbeat: each is retried or failed (through
    # the failure callback) by RQ's rules.
    StartedJobRegistry(queue.name, connection=connection).cleanup()
    counts = {"requeued": 0, "retried": 0, "failed": 0, "webhooks": 0}

    pending_before = now - timedelta(seconds=config.get("STUDIO_PENDING_GRACE_SECONDS", PENDING_GRACE_SECONDS))
    pending = db.session.scalars(
        select(Task)
        .where(Task.status == TaskStatus.PENDING.value, Task.created_at < pending_before)
        .order_by(Task.created_at)
        .limit(BATCH_SIZE)
    )
    for task in pending.all():
        status = job_status(task.id, connection)
        if status not in LIVE_STATUSES and enqueue_task(task):
            logger.info("task %s: pending without a live job (%s); enqueued again", task.id,
                        status.value if status else "missing")
            counts["requeued"] += 1

    stale_seconds = config.get("STUDIO_STALE_HEARTBEAT_SECONDS", STALLED_GRACE_SECONDS)
    stalled_before = now - timedelta(seconds=stale_seconds)
    last_heard = func.coalesce(Task.heartbeat_at, Task.updated_at)
    stalled = db.session.scalars(
        select(Task)
        .where(Task.status == TaskStatus.PROCESSING.value, last_heard < stalled_before)
        .order_by(last_heard)
        .limit(BATCH_SIZE)
    )
    allowed_attempts = 1 + max(config["STUDIO_JOB_RETRIES"], 0)
    for task in stalled.all():
        status = job_status(task.id, connection)
        # Queued or scheduled: RQ will run it again. Started: its worker is alive (the cleanup above took the
        # abandoned ones), so it will finish, or kill the horse at the job timeout and retry it.
        if status in LIVE_STATUSES:
            continue
        label = status.value if status else "missing"
        if task.attempts < allowed_attempts:
            if _take_over(task, stalled_before, status=TaskStatus.PENDING.value):
                enqueue_task(task)
                logger.warning("task %s: processing stopped (job %s); retrying, attempt %s of %s",
                               task.id, label, task.attempts + 1, allowed_attempts)
                counts["retried"] += 1
        elif _take_over(task, stalled_before, status=TaskStatus.FAILED.value, finished_at=now,
                        error=f"Processing stopped unexpectedly after {task.attempts} attempts; "
                              "upload the photo again."):
            logger.error("task %s: processing stopped (job %s) on the last attempt; failed", task.id, label)
            counts["failed"] += 1
            enqueue_webhook(task)  # the commit expired the task: its webhook state is read afresh

    counts["webhooks"] = _reconcile_webhooks(pending_before, connection)
    if any(counts.values()):
        logger.info("reconciled tasks: %s", counts)
    return counts


def _reconcile_webhooks(finished_before: datetime, connection: Redis) -> int:
    """Queue again the webhooks of finished tasks that have no live delivery job; return how many."""
    undelivered = db.session.scalars(
        select(Task)
        .where(Task.webhook_status == WebhookStatus.PENDING.value,
               Task.status.in_([TaskStatus.COMPLETED.value, TaskStatus.FAILED.value]),
               Task.finished_at < finished_before)
        .order_by(Task.finished_at)
        .limit(BATCH_SIZE)
    )
    count = 0
    for task in undelivered.all():
        status = job_status(webhook_job_id(task.id), connection)
        if status in LIVE_STATUSES:
            continue
        if status == JobStatus.FAILED:
            # RQ gave up but its failure callback could not record it (the database was down, say).
            give_up(task.id)
        elif enqueue_webhook(task):
            logger.info("task %s: webhook without a live delivery job (%s); queued again", task.id,
                        status.value if status else "missing")
            count += 1
    return count


def _take_over(task: Task, stalled_before: datetime, **values: object) -> bool:
    """Update a stalled task unless it moved on since it was read (a late commit of its job wins)."""
    last_heard = func.coalesce(Task.heartbeat_at, Task.updated_at)
    result = db.session.execute(
        update(Task)
        .where(Task.id == task.id, Task.status == TaskStatus.PROCESSING.value, last_heard < stalled_before)
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return result.rowcount == 1
