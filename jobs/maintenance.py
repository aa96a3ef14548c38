"""Periodic maintenance: make the queue agree with the database, which is the source of truth for task state.

Three things can leave a task stuck with nothing in Redis to move it on:
- an upload whose enqueue failed (Redis was down), or whose job vanished (Redis restarted without its data), or
  whose every attempt failed before it could record anything (the database was down): PENDING, no live job;
- a worker killed outright (SIGKILL, a lost machine): its job stays STARTED in RQ until RQ finds it abandoned,
  which RQ only checks when a worker runs its maintenance; the task stays PROCESSING;
- a job that vanished or failed without reaching the database: PROCESSING, no live job, a silent heartbeat.
reconcile_tasks runs RQ's abandoned-job check itself (so it happens every reconciler run, whatever the workers
do), then re-enqueues the first kind and retries or fails the last. Every enqueue goes through enqueue_task, so
racing an upload or another reconciler never gives a task two jobs. With STUDIO_QUEUE_BACKEND=sqs a PENDING task
whose message was never sent (no marker in Redis, studio/sqs_queue.py) is sent again, and a PROCESSING one whose
SQS consumer holds its running lock counts as live.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Iterator

from flask import current_app
from redis import Redis
from rq.job import Job, JobStatus
from rq.registry import StartedJobRegistry
from sqlalchemy import func, select, tuple_

from jobs.context import app_context
from jobs.sqs_job import LOCK_KEY
from studio import sqs_queue
from studio.extensions import db
from jobs.webhooks import give_up
from studio.models import FINISHED_STATUSES, Task, TaskStatus, WebhookStatus, utcnow
from studio.tasks import cleaning, lifecycle
from studio.queue import (LIVE_STATUSES, enqueue_task, enqueue_webhook, get_redis, job_status, photo_queues,
                          webhook_job_id)

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
    connection = get_redis()
    # RQ's own check for jobs whose worker stopped renewing their heartbeat: each is retried or failed (through
    # the failure callback) by RQ's rules. One registry per queue: quick and slow work.
    for name in photo_queues(config):
        StartedJobRegistry(name, connection=connection).cleanup()
    counts = {"requeued": 0, "retried": 0, "failed": 0, "webhooks": 0}

    pending_before = now - timedelta(seconds=config.get("STUDIO_PENDING_GRACE_SECONDS", PENDING_GRACE_SECONDS))
    for task in _pending_without_live_job(pending_before, connection):
        if enqueue_task(task):
            logger.info("task %s: pending without a live job; enqueued again", task.id)
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
        if status in LIVE_STATUSES or _running_from_sqs(task.id, connection):
            continue
        label = status.value if status else "missing"
        if task.attempts < allowed_attempts:
            if lifecycle.taken_over(task.id, stalled_before, retry=True):
                enqueue_task(task)
                logger.warning("task %s: processing stopped (job %s); retrying, attempt %s of %s",
                               task.id, label, task.attempts + 1, allowed_attempts)
                counts["retried"] += 1
        elif lifecycle.taken_over(task.id, stalled_before, retry=False,
                                  reason=f"Processing stopped unexpectedly after {task.attempts} attempts; "
                                         "upload the photo again."):
            logger.error("task %s: processing stopped (job %s) on the last attempt; failed", task.id, label)
            counts["failed"] += 1
            # No job is left to clean its upload: one it never cleaned goes, metadata and all.
            cleaning.discard_uncleaned(task.id)

    counts["webhooks"] = _reconcile_webhooks(pending_before, connection)
    if any(counts.values()):
        logger.info("reconciled tasks: %s", counts)
    return counts


def _running_from_sqs(task_id: str, connection: Redis) -> bool:
    """Return True when an SQS consumer holds the task's running lock (STUDIO_QUEUE_BACKEND=sqs)."""
    return sqs_queue.enabled(current_app.config) and bool(connection.exists(LOCK_KEY.format(task_id)))


def _pending_without_live_job(created_before: datetime, connection: Redis) -> Iterator[Task]:
    """Yield every PENDING task older than the cutoff that Redis holds no live job for, however long the backlog.

    The tasks are read a batch at a time in (created_at, id) order, and each batch's job statuses come back from
    Redis in one round trip, so a backlog of queued photos far larger than a batch does not hide a lost one.
    """
    after: tuple[datetime, str] | None = None
    while True:
        query = (select(Task).where(Task.status == TaskStatus.PENDING.value, Task.created_at < created_before)
                 .order_by(Task.created_at, Task.id).limit(BATCH_SIZE))
        if after is not None:
            query = query.where(tuple_(Task.created_at, Task.id) > tuple_(*after))
        batch = db.session.scalars(query).all()
        if not batch:
            return
        if sqs_queue.enabled(current_app.config):
            # SQS cannot be asked about one message: a task whose send never succeeded has no marker.
            unsent = sqs_queue.without_message(connection, [task.id for task in batch])
            yield from (task for task in batch if task.id in unsent)
            after = (batch[-1].created_at, batch[-1].id)
            continue
        with connection.pipeline(transaction=False) as pipeline:
            for task in batch:
                pipeline.hget(Job.key_for(task.id), "status")
            statuses = pipeline.execute()
        for task, raw in zip(batch, statuses):
            if raw is None or JobStatus(raw.decode()) not in LIVE_STATUSES:
                yield task
        after = (batch[-1].created_at, batch[-1].id)


def _reconcile_webhooks(finished_before: datetime, connection: Redis) -> int:
    """Queue again the webhooks of finished tasks that have no live delivery job; return how many."""
    undelivered = db.session.scalars(
        select(Task)
        .where(Task.webhook_status == WebhookStatus.PENDING.value,
               Task.status.in_([status.value for status in FINISHED_STATUSES]),
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
