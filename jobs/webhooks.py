"""Webhook delivery: one signed POST to the uploader's URL when a task finishes, retried until answered 2xx.

The body is `{"type": "task.completed" | "task.failed", "timestamp": ..., "data": {the task, as the API shows
it, without links}}`; fetch the result with GET /api/v1/tasks/<id>/result and your token. Signed by the Standard
Webhooks library with the account's secret; webhook-id is the same on every retry of one event, so a receiver
can drop repeats. An answer other than 2xx, or none within STUDIO_WEBHOOK_TIMEOUT_SECONDS, is retried by RQ
with STUDIO_WEBHOOK_RETRY_INTERVALS; 410 Gone stops at once. A delivery whose job Redis lost is queued again by
the reconciler, so a finished task's webhook is never silently dropped.

Calls go through studio.outbound: the URL is parsed strictly again, the host resolved once and the connection
pinned to that address, which must be public unless STUDIO_WEBHOOK_ALLOW_PRIVATE is set, so a webhook cannot be
aimed at the service's own network (loopback, private ranges, cloud metadata at 169.254.169.254). Redirects are not
followed, at most a few kilobytes of the answer are read, and deliveries run on their own queue
(STUDIO_WEBHOOK_QUEUE), so a slow receiver never holds up a photo.

A slow receiver does not hold up other accounts' deliveries either: at most STUDIO_WEBHOOK_ACCOUNT_CONCURRENCY of an
account's deliveries are queued or running at once (studio/queue.py), a host that does not accept the connection is
given up on after STUDIO_WEBHOOK_CONNECT_TIMEOUT_SECONDS, and each receiving host has a circuit breaker
(studio/breaker.py, shared by every worker through Redis): after STUDIO_WEBHOOK_BREAKER_FAILURES calls in a row
without an answer, deliveries to it wait STUDIO_WEBHOOK_BREAKER_COOLDOWN_SECONDS without calling, then one probes.
A delivery that waits for the breaker is not an attempt: no call was made, so its retries are left untouched.
"""

from __future__ import annotations

import json
import logging
import math
import socket
from datetime import datetime
from types import TracebackType
from typing import Any, Callable

import requests
from flask import current_app
from redis.exceptions import RedisError
from rq import Retry
from rq.job import Job
from rq.timeouts import JobTimeoutException
from sqlalchemy.orm.exc import StaleDataError
from standardwebhooks.webhooks import Webhook

from jobs.context import app_context
from studio import logs, metrics
from studio.extensions import db
from studio.breaker import Breaker
from studio.models import Task, TaskStatus, WebhookStatus, utcnow
from studio.queue import get_redis
from studio.tasks.representation import task_fields
from studio.outbound import RefusedAddress, Target, UnsafeURL, check_url, post
from studio.webhooks import ensure_secret

logger = logging.getLogger(__name__)

EVENT_TYPES = {TaskStatus.COMPLETED: "task.completed", TaskStatus.FAILED: "task.failed",
               TaskStatus.CANCELLED: "task.cancelled"}
USER_AGENT = "PhotoStudio-Webhooks/1"
MAX_RESPONSE_LENGTH = 300
# A delivery waits for an open breaker at most about this long in all (counted in cool-downs); then RQ fails its job
# and the reconciler records the webhook as FAILED.
MAX_WAIT_FOR_BREAKER_SECONDS = 86400
# The seconds a call may take beyond the timeout before RQ's alarm ends it (studio/queue.py's job timeout).
HARD_TIMEOUT_MARGIN_SECONDS = 30


class DeliveryFailed(Exception):
    """The receiver did not accept the event (no answer, or not 2xx): RQ retries the job."""


def deliver_webhook(task_id: str) -> Retry | None:
    """Send the finished task's event to its webhook URL (the RQ job); a no-op once delivered or given up.

    Returns RQ's Retry while the receiving host's breaker is open: the job runs again after the wait, and its
    retries (for calls that failed) are left as they were.
    """
    with app_context(), logs.bind(task_id=task_id):
        try:
            return _deliver(task_id)
        finally:
            db.session.remove()


def _deliver(task_id: str) -> Retry | None:
    task = db.session.get(Task, task_id)
    if task is None or task.webhook_status != WebhookStatus.PENDING.value or not task.task_status.finished:
        return None
    config = current_app.config
    allow_private = config["STUDIO_WEBHOOK_ALLOW_PRIVATE"]
    try:
        target = check_url(task.webhook_url, allow_private=allow_private)
    except UnsafeURL as error:
        # A stored URL that the strict parse refuses, however it got into the database: never called.
        task.webhook_attempts += 1
        metrics.webhook_delivery("refused")
        _record(task, WebhookStatus.FAILED, f"not sent: the URL {error}")
        logger.warning("task %s: webhook refused: the URL %s", task.id, error)
        return None
    breaker = host_breaker(target)
    wait = _admit(breaker)
    if wait is not None:
        return _wait_for_breaker(task, target, wait)
    message_id = f"msg_{task.id}_{task.status.lower()}"
    body = json.dumps(event(task), separators=(",", ":"))
    now = utcnow()
    signature = Webhook(ensure_secret(task.user)).sign(message_id, now, body)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    task.webhook_attempts += 1
    try:
        answer = post(target, body.encode(), headers, timeout=config["STUDIO_WEBHOOK_TIMEOUT_SECONDS"],
                      connect_timeout=config["STUDIO_WEBHOOK_CONNECT_TIMEOUT_SECONDS"], allow_private=allow_private)
    except RefusedAddress as error:
        _safely(breaker.release)
        metrics.webhook_delivery("refused")
        _record(task, WebhookStatus.FAILED, f"not sent: {target.host} {error}; webhooks only call public addresses")
        logger.warning("task %s: webhook refused: %s", task.id, error)
        return None
    except requests.RequestException as error:
        _safely(breaker.failed)
        reason = _describe(error)
        metrics.webhook_delivery("failed")
        _record(task, WebhookStatus.PENDING, reason)
        # No receiver-controlled text in the exception: rq-dashboard shows it to administrators.
        raise DeliveryFailed(reason) from None
    except JobTimeoutException:
        # RQ's hard limit ended a receiver that trickled its answer: as much a host that does not answer.
        _safely(breaker.failed)
        raise
    _safely(breaker.answered)
    status = f"HTTP {answer.status}"
    metrics.webhook_delivery("delivered" if 200 <= answer.status < 300 else "failed")
    if 200 <= answer.status < 300:
        _record(task, WebhookStatus.DELIVERED, status, delivered_at=utcnow())
        logger.info("task %s: webhook delivered (%s)", task.id, status)
    elif answer.status == 410:
        _record(task, WebhookStatus.FAILED, f"{status}: the receiver asked for no more calls")
    else:
        _record(task, WebhookStatus.PENDING, status)
        raise DeliveryFailed(f"the receiver answered {status}")
    return None


def host_breaker(target: Target) -> Breaker:
    """Return the circuit breaker of the host (and port) a delivery calls."""
    config = current_app.config
    host = f"[{target.host}]" if ":" in target.host else target.host
    return Breaker(get_redis(), f"webhook:{host}:{target.port}", threshold=config["STUDIO_WEBHOOK_BREAKER_FAILURES"],
                   cooldown_seconds=config["STUDIO_WEBHOOK_BREAKER_COOLDOWN_SECONDS"],
                   probe_seconds=config["STUDIO_WEBHOOK_TIMEOUT_SECONDS"] + HARD_TIMEOUT_MARGIN_SECONDS)


def _admit(breaker: Breaker) -> float | None:
    """Return the seconds to wait for the host's breaker, None to call now (also when Redis does not answer)."""
    try:
        return breaker.admit()
    except RedisError as error:
        logger.warning("%s: breaker unavailable, calling anyway: %s", breaker.host, error)
        return None


def _safely(step: Callable[[], object]) -> None:
    """Run one breaker step; a Redis error costs only the breaker's bookkeeping, never the delivery's."""
    try:
        step()
    except RedisError as error:
        logger.warning("webhook breaker: not updated: %s", error)


def _wait_for_breaker(task: Task, target: Target, wait: float) -> Retry:
    """Record that the delivery waits for its host's breaker and return RQ's Retry that runs it after the wait."""
    seconds = max(math.ceil(wait), 1)
    cooldown = max(int(current_app.config["STUDIO_WEBHOOK_BREAKER_COOLDOWN_SECONDS"]), 1)
    _record(task, WebhookStatus.PENDING, f"waiting: {target.host} has not answered recent calls; "
                                         f"next try in {seconds} s")
    logger.info("task %s: webhook waits %s s for %s's breaker", task.id, seconds, target.host)
    return Retry(max=math.ceil(MAX_WAIT_FOR_BREAKER_SECONDS / cooldown), interval=seconds)


def event(task: Task) -> dict[str, Any]:
    """Return the event a finished task sends."""
    return {
        "type": EVENT_TYPES[task.task_status],
        "timestamp": (task.finished_at or utcnow()).isoformat(),
        "data": task_fields(task),
    }


def _describe(error: requests.RequestException) -> str:
    if isinstance(error, requests.ConnectionError) and isinstance(error.__cause__, socket.gaierror):
        return "could not resolve the host"
    if isinstance(error, requests.ConnectTimeout):
        return "no connection in time"
    if isinstance(error, requests.Timeout):
        return "no answer in time"
    if isinstance(error, requests.ConnectionError):
        return "could not connect"
    return f"the call failed ({type(error).__name__})"


def _record(task: Task, status: WebhookStatus, response: str, delivered_at: datetime | None = None) -> None:
    """Save the outcome of one call; a task deleted meanwhile is left deleted."""
    task.webhook_status = status.value
    task.webhook_response = response[:MAX_RESPONSE_LENGTH]
    if delivered_at is not None:
        task.webhook_delivered_at = delivered_at
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()


def give_up(task_id: str) -> bool:
    """Mark a webhook that RQ will not retry any more as FAILED, keeping its last answer; True if it was pending."""
    with app_context():
        try:
            task = db.session.get(Task, task_id)
            if task is None or task.webhook_status != WebhookStatus.PENDING.value:
                return False
            _record(task, WebhookStatus.FAILED, task.webhook_response or "not delivered")
            metrics.webhook_delivery("gave_up")
            logger.error("task %s: webhook not delivered after %s attempts (%s)", task_id, task.webhook_attempts,
                         task.webhook_response)
            return True
        finally:
            db.session.remove()


def on_delivery_failure(job: Job, connection: Any, exc_type: type[BaseException] | None,
                        exc_value: BaseException | None, traceback: TracebackType | None) -> None:
    """RQ failure callback: once no retry is left, the webhook has FAILED."""
    if job.retries_left:
        logger.warning("%s: not delivered (%s); %s retries left", job.id, exc_value, job.retries_left)
        return
    task_id = job.args[0] if job.args else None
    if task_id:
        give_up(task_id)
