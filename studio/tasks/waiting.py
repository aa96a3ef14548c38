"""Waiting for a task to finish: `GET /api/v1/tasks/<id>?wait=N` answers as soon as the task is COMPLETED, FAILED or
CANCELLED, or after N seconds, so a client learns of its result at once without polling.

Whoever finishes a task (studio/tasks/lifecycle.py) announces it on the task's Redis channel once the change has
committed. A waiting request subscribes first and only then reads the task, so a finish between the two is never
missed; it holds no database connection or transaction while it waits. Best effort by design: with Redis down,
with this process's waiting places taken, or with no announcement in time, the request answers with the task as it
is, and the client asks again. Each web process lets at most STUDIO_API_MAX_WAITING requests wait at once, so
waiting clients never hold every thread that uploads and pages need.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from typing import Iterator

from flask import Flask, current_app
from redis.exceptions import RedisError
from sqlalchemy import select

from studio import metrics
from studio.extensions import db
from studio.models import Task, TaskStatus
from studio.queue import get_redis

logger = logging.getLogger(__name__)

MAX_WAIT_SECONDS = 20  # under nginx's proxy_read_timeout (deploy/nginx.conf) and common load balancers' 30-60 s
CHANNEL = "studio:task-finished:{}"
_PLACES_KEY = "studio.waiting"


def announce(task_id: str) -> None:
    """Tell the requests waiting on the task that it finished (call after the commit that finished it)."""
    try:
        get_redis().publish(CHANNEL.format(task_id), "finished")
    except RedisError as error:
        # Waiting clients then answer at their deadline instead: late, not wrong.
        logger.warning("task %s: could not announce its end to waiting requests: %s", task_id, error)


def wait_until_finished(task_id: str, seconds: float) -> None:
    """Wait until the task is finished (or gone), at most `seconds`; at once when this process's waiting places
    are taken or Redis is unreachable. The caller reads the task again: the session's objects are expired."""
    with waiting_place() as held:
        if held:
            wait_in_place(task_id, seconds)


@contextmanager
def waiting_place() -> Iterator[bool]:
    """Hold one of this process's waiting places while the block runs; yield False when all are taken."""
    places = _places(current_app._get_current_object())
    if not places.acquire(blocking=False):
        yield False
        return
    try:
        yield True
    finally:
        places.release()


def take_place() -> bool:
    """Take one of this process's waiting places for longer than a block (an event stream); False when all are
    taken. Give it back with give_place()."""
    return _places(current_app._get_current_object()).acquire(blocking=False)


def give_place() -> None:
    """Give back a place that take_place() took."""
    _places(current_app._get_current_object()).release()


def wait_in_place(task_id: str, seconds: float) -> None:
    """Wait, holding a waiting place, until the task is finished (or gone), at most `seconds`."""
    metrics.untimed()
    # End the request's transaction: a read snapshot (SQLite's WAL) would hide the finish, and an idle
    # transaction must not hold a pooled connection for seconds.
    db.session.rollback()
    deadline = time.monotonic() + seconds
    try:
        with get_redis().pubsub(ignore_subscribe_messages=True) as subscription:
            subscription.subscribe(CHANNEL.format(task_id))
            if _finished_or_gone(task_id):
                return
            while (left := deadline - time.monotonic()) > 0:
                if subscription.get_message(timeout=left) is not None:
                    return
    except RedisError as error:
        logger.warning("task %s: could not wait for its end: %s", task_id, error)


def _finished_or_gone(task_id: str) -> bool:
    try:
        status = db.session.scalar(select(Task.status).where(Task.id == task_id))
    finally:
        db.session.rollback()
    return status is None or TaskStatus(status).finished


def _places(app: Flask) -> threading.BoundedSemaphore:
    places = app.extensions.get(_PLACES_KEY)
    if places is None:
        places = app.extensions.setdefault(_PLACES_KEY,
                                           threading.BoundedSemaphore(max(app.config["STUDIO_API_MAX_WAITING"], 0)))
    return places
