"""Amazon SQS as the processing queue (STUDIO_QUEUE_BACKEND=sqs): one message per task, sent by the web app.

The queue should be FIFO (its URL ends in .fifo): each account is a message group, so an account's photos start in
the order they were uploaded, and since SQS hands out no message of a group while an earlier one is in flight, one
account's backlog never holds back another account's photos (the fairness RQ gets from its per-account slots). The
deduplication id is the task id, its attempt and a nonce per send, so boto3's own repeat of a send is dropped but
a reconciler's re-send is not. A standard queue works too (no group, no deduplication); duplicates are then
caught by the running lock (jobs/sqs_job.py) and by the job itself, which does nothing for a finished task.

Redis stays the bookkeeping beside SQS: a key per task says its message was sent (the reconciler re-sends only
for PENDING tasks without one, since SQS cannot be asked about a message), and jobs/sqs_job.py holds its locks there.
"""

from __future__ import annotations

import json
import logging
import secrets
from typing import Any, Iterable, Mapping

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError
from flask import current_app
from redis import Redis
from redis.exceptions import RedisError

from studio import logs
from studio.models import Task

logger = logging.getLogger(__name__)

BACKEND = "sqs"
SENT_KEY = "studio:sqs:sent:{}"
# SQS keeps a message 4 days by default: a marker outliving it would hide a lost one from the reconciler longer.
SENT_TTL_SECONDS = 4 * 24 * 3600
# Short timeouts for the web app (an upload must not hang: the task stays PENDING for the reconciler); the worker's
# long polls get a read timeout longer than their wait.
_CONNECT_SECONDS = 5
_READ_SECONDS = 10


def enabled(config: Mapping[str, Any]) -> bool:
    """Return True when tasks go through SQS instead of RQ."""
    return config.get("STUDIO_QUEUE_BACKEND", "rq") == BACKEND


def is_fifo(queue_url: str) -> bool:
    """Return True for a FIFO queue (SQS names them with .fifo)."""
    return queue_url.endswith(".fifo")


def client(config: Mapping[str, Any], read_seconds: float = _READ_SECONDS) -> Any:
    """Return a boto3 SQS client (boto3's own settings: credentials, region, AWS_ENDPOINT_URL_SQS)."""
    return boto3.client("sqs", config=Config(connect_timeout=_CONNECT_SECONDS, read_timeout=read_seconds,
                                             retries={"max_attempts": 3, "mode": "standard"}))


def message_body(task: Task) -> str:
    """Return what a task's message says: which task, which attempt, which request uploaded it."""
    return json.dumps({"task_id": task.id, "attempt": task.attempts or 0, "request_id": logs.current_request_id()})


def send_parameters(task: Task, queue_url: str) -> dict[str, Any]:
    """Return SendMessage's parameters for a task: its account as the group on a FIFO queue."""
    parameters: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": message_body(task)}
    if is_fifo(queue_url):
        parameters["MessageGroupId"] = f"account-{task.user_id}"
        # boto3 repeats a send whose answer it lost with the same parameters: SQS then keeps one copy. The nonce
        # lets a reconciler's re-send through within SQS's five minutes (a purged queue's message must come back).
        parameters["MessageDeduplicationId"] = f"{task.id}-{task.attempts or 0}-{secrets.token_hex(4)}"
    return parameters


def send_task(task: Task, redis: Redis) -> bool:
    """Send the committed task's message; return False (the task stays PENDING for the reconciler) when SQS or
    Redis cannot be reached."""
    config = current_app.config
    queue_url = config["STUDIO_SQS_QUEUE_URL"]
    if not queue_url:
        logger.error("task %s: STUDIO_QUEUE_BACKEND=sqs but STUDIO_SQS_QUEUE_URL is not set", task.id)
        return False
    try:
        response = client(config).send_message(**send_parameters(task, queue_url))
    except (BotoCoreError, ClientError) as error:
        logger.warning("task %s: could not send its message to SQS: %s", task.id, error)
        return False
    mark_sent(redis, task.id)
    logger.info("task %s: sent to SQS as message %s", task.id, response.get("MessageId"))
    return True


def mark_sent(redis: Redis, task_id: str) -> None:
    """Remember that the task has a message in SQS (a failure only means the reconciler may send another)."""
    try:
        redis.set(SENT_KEY.format(task_id), 1, ex=SENT_TTL_SECONDS)
    except RedisError as error:
        logger.warning("task %s: could not record its SQS message: %s", task_id, error)


def forget_sent(redis: Redis, task_id: str) -> None:
    """Forget the task's message once it was deleted (a failure only delays the key's expiry)."""
    try:
        redis.delete(SENT_KEY.format(task_id))
    except RedisError as error:
        logger.warning("task %s: could not forget its SQS message: %s", task_id, error)


def without_message(redis: Redis, task_ids: Iterable[str]) -> set[str]:
    """Return those of the tasks that no message in SQS is known to carry, in one round trip."""
    ids = list(task_ids)
    with redis.pipeline(transaction=False) as pipeline:
        for task_id in ids:
            pipeline.exists(SENT_KEY.format(task_id))
        found = pipeline.execute()
    return {task_id for task_id, exists in zip(ids, found) if not exists}
