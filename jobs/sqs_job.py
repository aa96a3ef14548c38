"""One SQS message's job, for the SQS worker (processes/sqs_adapter.py) and the Lambda handler alike.

The message names a task; the job is the same process_task the RQ workers run (idempotent: a finished task is a
no-op, so a duplicate delivery does nothing). Around it, what RQ did for its jobs:
- a lock per task in Redis while it runs, so a second message for the same task (a reconciler's re-send, a
  standard queue's duplicate) waits for the run to end instead of running it beside it;
- the operation's timeout (studio.queue.job_timeout), with RQ's own alarm, so the reason reads the same;
- retries: SQS's redelivery is the retry, the receive count the attempt. A failed attempt leaves the message to
  come back (after the retry interval); the last one marks the task FAILED with the reason and leaves the message
  to SQS's redrive policy, which moves it to the dead-letter queue. A timed-out one is not retried (as on RQ).
The caller deletes the message only for DONE: by then the task's final transition has been committed.
"""

from __future__ import annotations

import enum
import json
import logging
import secrets
from dataclasses import dataclass
from typing import Any, Mapping

from flask import current_app
from redis import Redis
from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

from jobs.context import app_context
from jobs.process_image import failure_reason, process_task
from studio import logs, metrics
from studio.extensions import db
from studio.models import Task
from studio.queue import job_timeout
from studio.tasks import lifecycle

logger = logging.getLogger(__name__)

LOCK_KEY = "studio:sqs:running:{}"


class Outcome(enum.Enum):
    """What the consumer does with the message after the job."""

    DONE = "done"  # delete it: the task's final state is committed (or nothing was left to do)
    RETRY = "retry"  # leave it: SQS delivers it again after the retry interval
    DEAD = "dead"  # leave it, visible at once: SQS's redrive policy moves it to the dead-letter queue
    BUSY = "busy"  # another consumer runs this task now: hide this copy until that run is over


@dataclass(frozen=True)
class Message:
    """What a task's message says, and how often SQS has handed it out."""

    task_id: str
    receive_count: int
    request_id: str | None = None


def parse(body: str, receive_count: int) -> Message | None:
    """Return the message's task, or None for a body no sender of ours wrote."""
    try:
        data = json.loads(body)
        return Message(str(data["task_id"]), receive_count, data.get("request_id"))
    except (ValueError, TypeError, KeyError):
        return None


def allowed_attempts(config: Mapping[str, Any]) -> int:
    """Return how many attempts a task gets: the first and STUDIO_JOB_RETRIES more (SQS's maxReceiveCount)."""
    return 1 + max(int(config["STUDIO_JOB_RETRIES"]), 0)


def retry_delay(config: Mapping[str, Any], receive_count: int) -> int:
    """Return how long a failed attempt's message stays hidden: RQ's retry interval for that attempt."""
    intervals = list(config["STUDIO_JOB_RETRY_INTERVALS"]) or [0]
    return int(intervals[min(receive_count, len(intervals)) - 1])


class RunningLock:
    """The Redis lock that says a consumer runs the task now; it lapses when that consumer dies."""

    def __init__(self, redis: Redis, task_id: str, seconds: int) -> None:
        self.redis, self.key, self.seconds = redis, LOCK_KEY.format(task_id), max(int(seconds), 1)
        self.token = secrets.token_hex(8)

    def acquire(self) -> bool:
        """Take the lock; False when another consumer holds it."""
        return bool(self.redis.set(self.key, self.token, nx=True, ex=self.seconds))

    def renew(self) -> None:
        """Keep the lock as long again (the visibility heartbeat calls this with each extension)."""
        if self.redis.get(self.key) == self.token.encode():
            self.redis.expire(self.key, self.seconds)

    def remaining(self) -> int:
        """Return the seconds left on whoever's lock is held now (0: none)."""
        return max(int(self.redis.ttl(self.key)), 0)

    def release(self) -> None:
        """Drop the lock if it is still ours."""
        if self.redis.get(self.key) == self.token.encode():
            self.redis.delete(self.key)


def task_timeout(task_id: str) -> int | None:
    """Return the seconds the task's attempt may take, or None when the task is gone."""
    with app_context():
        try:
            task = db.session.get(Task, task_id)
            return None if task is None else job_timeout(task, current_app.config)
        finally:
            db.session.remove()


def handle(message: Message, lock: RunningLock, timeout: int | None = None) -> Outcome:
    """Run the message's task once, under its lock and timeout; return what to do with the message."""
    with app_context():
        allowed = allowed_attempts(current_app.config)
    if message.receive_count > allowed:
        # A queue without a redrive policy, or a worker that died on the last attempt.
        fail_exhausted(message.task_id, message.receive_count - 1)
        return Outcome.DONE
    if timeout is None:
        timeout = task_timeout(message.task_id)
        if timeout is None:
            logger.info("task %s: deleted; its message is dropped", message.task_id)
            return Outcome.DONE
    if not lock.acquire():
        logger.info("task %s: another consumer runs it now; this message waits", message.task_id)
        return Outcome.BUSY
    try:
        with logs.bind(request_id=message.request_id, task_id=message.task_id), \
                UnixSignalDeathPenalty(timeout, JobTimeoutException):
            process_task(message.task_id)
    except Exception as error:  # noqa: BLE001 - every failure is an attempt: retried or recorded, never a crash
        return _attempt_failed(message, error, timeout, allowed)
    finally:
        lock.release()
    return Outcome.DONE


def _attempt_failed(message: Message, error: Exception, timeout: int, allowed: int) -> Outcome:
    """Record a failed attempt: retry it, or fail the task with the reason on the last (or a timed-out) one."""
    reference = f"error-{secrets.token_hex(4)}"
    logger.error("task %s: attempt %s of %s failed (%s): %s: %s", message.task_id, message.receive_count, allowed,
                 reference, type(error).__name__, error, exc_info=error)
    timed_out = isinstance(error, JobTimeoutException)
    if not timed_out and message.receive_count < allowed:
        _count_retry(message.task_id)
        return Outcome.RETRY
    with app_context():
        try:
            task = db.session.get(Task, message.task_id)
            if task is not None and not task.task_status.finished:
                lifecycle.failed(task.id, failure_reason(task.attempts, timeout, type(error), reference))
        finally:
            db.session.remove()
    # A timed-out photo would time out again: deleted, not dead-lettered (as RQ does not retry it).
    return Outcome.DONE if timed_out else Outcome.DEAD


def fail_exhausted(task_id: str, attempts: int) -> None:
    """Mark FAILED a task whose message came back more often than it has attempts (its worker stopped each time)."""
    with app_context():
        try:
            task = db.session.get(Task, task_id)
            if task is not None and not task.task_status.finished:
                lifecycle.failed(task.id, failure_reason(attempts, None, None, ""))
                logger.error("task %s: its message came back after %s attempts; failed", task_id, attempts)
        finally:
            db.session.remove()


def fail_unstarted(task_id: str, reason: str) -> None:
    """Mark FAILED, with the reason, a task that was never started (a Lambda worker without the time it needs)."""
    with app_context():
        try:
            if lifecycle.failed(task_id, reason):
                logger.error("task %s: failed unstarted: %s", task_id, reason)
        finally:
            db.session.remove()


def _count_retry(task_id: str) -> None:
    """Count a retry under its task's operation, as on RQ."""
    try:
        with app_context():
            task = db.session.get(Task, task_id)
            metrics.job_retried(task.operation if task else "unknown")
            db.session.remove()
    except Exception:  # noqa: BLE001 - the database may be the reason the attempt failed
        metrics.job_retried("unknown")
