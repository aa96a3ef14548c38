"""Amazon SQS as the processing queue (STUDIO_QUEUE_BACKEND=sqs): one message per task, sent by the web app.

The queue should be FIFO (its URL ends in .fifo). SQS hands out no message of a message group while an earlier one of
that group is in flight, so the groups are the account's slots, as RQ's per-account concurrency limit
(studio.queue.account_share) gives them on RQ: an account whose plan lets it run N photos at once (studio/plans.py,
concurrency) has N groups per cost class, and its tasks are dealt round-robin over them (a counter per account and
class in Redis). At most N of its photos of a class are then in flight at once, whatever its backlog, and other
accounts' groups are served meanwhile. Each cost class has groups of its own, so an account's upscales never hold
the slots its cutouts need (as on RQ).

The trade-off: SQS keeps order within a group only. With one slot an account's photos start strictly in upload
order; with N, photos k and k + N are in order (same group), but neighbours in different groups may start in either
order or side by side, and a long photo holds back only the photos dealt to its own group (every N-th), not those
in the account's free groups, which SQS cannot move over. A standard queue has neither order nor slots.

The deduplication id is the task id, its attempt and a nonce per send, so boto3's own repeat of a send is dropped but
a reconciler's re-send is not. A standard queue works too (no group, no deduplication); duplicates are then
caught by the running lock (jobs/sqs_job.py) and by the job itself, which does nothing for a finished task.

Redis stays the bookkeeping beside SQS: a key per task says its message was sent (the reconciler re-sends only
for PENDING tasks without one, since SQS cannot be asked about a message), a counter per account and class deals
the groups, and jobs/sqs_job.py holds its locks there.
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
from sqlalchemy import func, select, tuple_

from studio import logs
from studio.extensions import db
from studio.models import Task, TaskStatus

logger = logging.getLogger(__name__)

BACKEND = "sqs"
SENT_KEY = "studio:sqs:sent:{}"
# SQS keeps a message 4 days by default: a marker outliving it would hide a lost one from the reconciler longer.
SENT_TTL_SECONDS = 4 * 24 * 3600
# The round-robin counter of an account's message groups, per cost class; one left idle a day starts again at 0.
SLOT_KEY = "studio:sqs:slot:{}:{}"
SLOT_TTL_SECONDS = 24 * 3600
# A place in line is counted up to this many tasks ahead: the status page asks every few seconds, and past a
# thousand the number tells nobody more than "a long way back".
MAX_COUNTED_AHEAD = 1000
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


def message_group(user_id: int, cost_class: str = "quick", slot: int = 0) -> str:
    """Return the message group of one of an account's slots: account-7, account-7-1, ..., account-7-slow, ...

    Slot 0 of quick work keeps the name every message had before there were slots, so messages sent before an
    upgrade stay in order with those sent after it.
    """
    group = f"account-{user_id}" if cost_class == "quick" else f"account-{user_id}-{cost_class}"
    return group if slot == 0 else f"{group}-{slot}"


def next_slot(redis: Redis, user_id: int, cost_class: str, concurrency: int) -> int:
    """Return the slot (0 to concurrency - 1) of the account's next task of this class, round-robin; 0 when Redis
    cannot say (the task is then only in a busier group, never lost)."""
    if concurrency <= 1:
        return 0
    key = SLOT_KEY.format(user_id, cost_class)
    try:
        with redis.pipeline(transaction=False) as pipeline:
            count, _ = pipeline.incr(key).expire(key, SLOT_TTL_SECONDS).execute()
    except RedisError as error:
        logger.warning("account %s: could not deal its next SQS message group: %s", user_id, error)
        return 0
    return (int(count) - 1) % concurrency


def send_parameters(task: Task, queue_url: str, group: str) -> dict[str, Any]:
    """Return SendMessage's parameters for a task: on a FIFO queue in the message group given (one of its
    account's slots, message_group)."""
    parameters: dict[str, Any] = {"QueueUrl": queue_url, "MessageBody": message_body(task)}
    if is_fifo(queue_url):
        parameters["MessageGroupId"] = group
        # boto3 repeats a send whose answer it lost with the same parameters: SQS then keeps one copy. The nonce
        # lets a reconciler's re-send through within SQS's five minutes (a purged queue's message must come back).
        parameters["MessageDeduplicationId"] = f"{task.id}-{task.attempts or 0}-{secrets.token_hex(4)}"
    return parameters


def send_task(task: Task, redis: Redis, cost_class: str = "quick", concurrency: int = 1) -> bool:
    """Send the committed task's message, in one of its account's concurrency slots for the task's cost class;
    return False (the task stays PENDING for the reconciler) when SQS or Redis cannot be reached."""
    config = current_app.config
    queue_url = config["STUDIO_SQS_QUEUE_URL"]
    if not queue_url:
        logger.error("task %s: STUDIO_QUEUE_BACKEND=sqs but STUDIO_SQS_QUEUE_URL is not set", task.id)
        return False
    group = message_group(task.user_id, cost_class, next_slot(redis, task.user_id, cost_class, concurrency)) \
        if is_fifo(queue_url) else ""
    try:
        response = client(config).send_message(**send_parameters(task, queue_url, group))
    except (BotoCoreError, ClientError) as error:
        logger.warning("task %s: could not send its message to SQS: %s", task.id, error)
        return False
    mark_sent(redis, task.id)
    logger.info("task %s: sent to SQS as message %s%s", task.id, response.get("MessageId"),
                f" in group {group}" if group else "")
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


def waiting_ahead(task: Task) -> int:
    """Return an estimate of how many tasks start before this PENDING one: the PENDING tasks created before it
    (at most MAX_COUNTED_AHEAD), every account's and every cost class's.

    SQS cannot say where a message stands, so the database does. One FIFO queue carries every class and hands out
    the oldest message of the groups not in flight, so quick work does not pass slow work here (unlike RQ's queue
    per class), and a task's own account's earlier photos are counted like anyone's. An estimate, not a promise:
    an account at its concurrency waits for its own photos while later photos of other accounts go by, and a
    message that is waiting for a retry is counted by its task's status, not by SQS's.
    """
    earlier = (select(Task.id)
               .where(Task.status == TaskStatus.PENDING.value,
                      tuple_(Task.created_at, Task.id) < tuple_(task.created_at, task.id))
               .limit(MAX_COUNTED_AHEAD).subquery())
    return int(db.session.scalar(select(func.count()).select_from(earlier)) or 0)
