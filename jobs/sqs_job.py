"""One SQS message's job, for the SQS worker (processes/sqs_adapter.py) and the Lambda handler alike.

The message names a task; the job is the same process_task the RQ workers run (idempotent: a finished task is a
no-op, so a duplicate delivery does nothing). Around it, what RQ did for its jobs:
- a lock per task in Redis while it runs, so a second message for the same task (a reconciler's re-send, a
  standard queue's duplicate) waits for the run to end instead of running it beside it;
- the operation's timeout (studio.queue.job_timeout), with RQ's own alarm, so the reason reads the same;
- retries: SQS's redelivery is the retry, the receive count the attempt. A failed attempt leaves the message to
  come back (after the retry interval); the last one marks the task FAILED with the reason and leaves the message
  to SQS's redrive policy, which moves it to the dead-letter queue. A timed-out one is not retried (as on RQ);
- a killed consumer (SIGKILL, the OOM killer, a lost machine) leaves a marker of its attempt in Redis; the next
  consumer of the message finds it and counts the death. As on RQ, a task whose consumer died is run again once
  at most (KILLED_RETRIES): at the second death it is FAILED with RQ's reason, and a death on the last attempt
  fails it with RQ's reason too, since the redrive policy allows one delivery more than the attempts
  (maxReceiveCount = STUDIO_JOB_RETRIES + 2) for a consumer to see it.
The caller deletes the message only for DONE: by then the task's final transition has been committed.
"""

from __future__ import annotations

import enum
import json
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any, Mapping

from flask import current_app
from redis import Redis
from rq.timeouts import JobTimeoutException, UnixSignalDeathPenalty

from jobs.context import app_context
from jobs.process_image import KILLED_RETRIES, WorkerKilledAgain, count_retry, process_task, record_failure
from studio import logs, metrics, sqs_queue
from studio.extensions import db
from studio.models import Task
from studio.queue import job_timeout
from studio.tasks import lifecycle

logger = logging.getLogger(__name__)

LOCK_KEY = "studio:sqs:running:{}"
# Set while a consumer runs an attempt, removed when the attempt ends however it ends (done, failed, timed out):
# one still there when the next consumer takes the lock was left by a consumer that died mid-attempt.
ATTEMPT_KEY = "studio:sqs:attempt:{}"
# How many of the task's consumers died mid-attempt (RQ keeps the same count in job.meta).
DEATHS_KEY = "studio:sqs:deaths:{}"
# Both may outlive the task's last message, never by much: SQS keeps a message 4 days by default.
MARKER_SECONDS = sqs_queue.SENT_TTL_SECONDS
# A dead consumer's message comes back after the visibility timeout, its lock a moment later (the lock is taken and
# renewed just after the message is hidden): a lock this close to lapsing is waited out, since handing the message
# back would spend one of its receives, i.e. an attempt.
LAPSING_SECONDS = 5


class Outcome(enum.Enum):
    """What the consumer does with the message after the job."""

    DONE = "done"  # delete it: the task's final state is committed (or nothing was left to do)
    RETRY = "retry"  # leave it: SQS delivers it again after the retry interval
    # Leave it, visible at once: SQS's redrive policy moves it to the dead-letter queue (at the receive past
    # maxReceiveCount: the next one, or after one more delivery that a consumer settles as DEAD again).
    DEAD = "dead"
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
    """Return how many attempts a task gets: the first and STUDIO_JOB_RETRIES more."""
    return 1 + max(int(config["STUDIO_JOB_RETRIES"]), 0)


def max_receive_count(config: Mapping[str, Any]) -> int:
    """Return the redrive policy's maxReceiveCount: the attempts, and one delivery more in which a consumer fails
    the task whose consumer died on its last attempt."""
    return allowed_attempts(config) + 1


def retry_delay(config: Mapping[str, Any], receive_count: int) -> int:
    """Return how long a failed attempt's message stays hidden: RQ's retry interval for that attempt."""
    intervals = list(config["STUDIO_JOB_RETRY_INTERVALS"]) or [0]
    return int(intervals[min(receive_count, len(intervals)) - 1])


class RunningLock:
    """The Redis lock that says a consumer runs the task now (it lapses when that consumer dies), and the marker
    of the attempt it runs (which stays when it dies)."""

    def __init__(self, redis: Redis, task_id: str, seconds: int) -> None:
        self.redis, self.key, self.seconds = redis, LOCK_KEY.format(task_id), max(int(seconds), 1)
        self.attempt_key, self.deaths_key = ATTEMPT_KEY.format(task_id), DEATHS_KEY.format(task_id)
        self.token = secrets.token_hex(8)

    def acquire(self) -> bool:
        """Take the lock, waiting out one about to lapse; False when another consumer holds it."""
        if self.redis.set(self.key, self.token, nx=True, ex=self.seconds):
            return True
        left_ms = int(self.redis.pttl(self.key))
        if not 0 < left_ms <= LAPSING_SECONDS * 1000:
            return False
        time.sleep(left_ms / 1000 + 0.05)
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

    def count_deaths(self) -> int:
        """Return how many consumers died mid-attempt on the task, counting the one whose marker is left (call it
        holding the lock: no other consumer runs the task then)."""
        if not self.redis.exists(self.attempt_key):
            return int(self.redis.get(self.deaths_key) or 0)
        with self.redis.pipeline() as pipeline:
            pipeline.incr(self.deaths_key).expire(self.deaths_key, MARKER_SECONDS).delete(self.attempt_key)
            deaths, _, _ = pipeline.execute()
        return int(deaths)

    def begin_attempt(self) -> None:
        """Mark the task's attempt as under way by this consumer."""
        self.redis.set(self.attempt_key, self.token, ex=MARKER_SECONDS)

    def end_attempt(self) -> None:
        """Remove the marker: the attempt ended, whatever its outcome, and this consumer lives."""
        if self.redis.get(self.attempt_key) == self.token.encode():
            self.redis.delete(self.attempt_key)

    def forget_deaths(self) -> None:
        """Forget the deaths once the task's message is settled for good (an administrator's retry starts afresh)."""
        self.redis.delete(self.deaths_key)


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
    if timeout is None:
        timeout = task_timeout(message.task_id)
        if timeout is None:
            logger.info("task %s: deleted; its message is dropped", message.task_id)
            return Outcome.DONE
    if not lock.acquire():
        logger.info("task %s: another consumer runs it now; this message waits", message.task_id)
        return Outcome.BUSY
    try:
        deaths = lock.count_deaths()
        if deaths > KILLED_RETRIES or message.receive_count > allowed:
            outcome = _give_up(message, deaths, allowed)
        else:
            if deaths:
                logger.warning("task %s: its previous consumer died mid-attempt (killed, out of memory?); running "
                               "it again, once at most", message.task_id)
                metrics.worker_died()
                count_retry(message.task_id)
            outcome = _attempt(message, lock, timeout, allowed)
        if outcome is not Outcome.RETRY:
            lock.forget_deaths()
        return outcome
    finally:
        lock.release()


def _attempt(message: Message, lock: RunningLock, timeout: int, allowed: int) -> Outcome:
    """Run one attempt of the task under its timeout, its marker set while it runs."""
    lock.begin_attempt()
    try:
        with logs.bind(request_id=message.request_id, task_id=message.task_id), \
                UnixSignalDeathPenalty(timeout, JobTimeoutException):
            process_task(message.task_id)
    except Exception as error:  # noqa: BLE001 - every failure is an attempt: retried or recorded, never a crash
        return _attempt_failed(message, error, timeout, allowed)
    finally:
        lock.end_attempt()
    return Outcome.DONE


def _attempt_failed(message: Message, error: Exception, timeout: int, allowed: int) -> Outcome:
    """Record a failed attempt: retry it, or fail the task with the reason on the last (or a timed-out) one."""
    reference = f"error-{secrets.token_hex(4)}"
    logger.error("task %s: attempt %s of %s failed (%s): %s: %s", message.task_id, message.receive_count, allowed,
                 reference, type(error).__name__, error, exc_info=error)
    timed_out = isinstance(error, JobTimeoutException)
    if not timed_out and message.receive_count < allowed:
        count_retry(message.task_id)
        return Outcome.RETRY
    record_failure(message.task_id, timeout, type(error), reference)
    # A timed-out photo would time out again: deleted, not dead-lettered (as RQ does not retry it).
    return Outcome.DONE if timed_out else Outcome.DEAD


def _give_up(message: Message, deaths: int, allowed: int) -> Outcome:
    """Fail, with RQ's reason, the task of a message that may not run again: its consumer died a second time
    (KILLED_RETRIES), or it came back after its last attempt (that attempt's consumer died, or failed it)."""
    killed_again = deaths > KILLED_RETRIES
    if record_failure(message.task_id, None, WorkerKilledAgain if killed_again else None, ""):
        logger.error("task %s: %s; failed, not run again", message.task_id,
                     f"its consumer died on {deaths} attempts" if killed_again
                     else f"its consumer died on its last attempt (received {message.receive_count} times)")
    # The delivery past the last attempt goes to the dead-letter queue at its next receive, as an always failing
    # photo's does. A photo that killed two consumers earlier is deleted instead, as a timed-out one is (neither is
    # retried); so is a message received yet more often (a queue without a redrive policy would loop).
    return Outcome.DEAD if message.receive_count == allowed + 1 else Outcome.DONE


def fail_unstarted(task_id: str, reason: str) -> None:
    """Mark FAILED, with the reason, a task that was never started (a Lambda worker without the time it needs)."""
    with app_context():
        try:
            if lifecycle.failed(task_id, reason):
                logger.error("task %s: failed unstarted: %s", task_id, reason)
        finally:
            db.session.remove()
