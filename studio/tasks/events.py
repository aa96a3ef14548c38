"""A task's changes as Server-Sent Events: `GET /api/v1/tasks/<id>/events` streams each progress write, stage and
status change, then the final state, and closes.

Whoever changes a task (studio/tasks/lifecycle.py, jobs/progress.py) announces the change on the task's Redis
channel once it has committed, numbered by a counter of the task's own in Redis: the number is the event's id, so
ids only grow, whatever the attempt, and a client that reconnects with `Last-Event-ID` is sent the current state
only when something changed since. A stream subscribes first and only then reads the task, so no change between
the two is missed; it holds no database connection while it waits.

A stream holds one of the web process's STUDIO_API_MAX_WAITING places (those of `?wait`), so streams never hold
every thread. With every place taken (or Redis unreachable) the answer is the current state as one event and the
stream closes, with a longer `retry:`: EventSource then asks again later, polling gently, and never gives up as it
would on a 503. A stream lasts at most MAX_STREAM_SECONDS; EventSource reconnects by itself, with Last-Event-ID.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from flask import Flask, Response, has_app_context, stream_with_context
from redis.client import PubSub
from redis.exceptions import RedisError
from werkzeug.exceptions import NotFound

from studio import metrics
from studio.extensions import db
from studio.models import Task, TaskStatus
from studio.queue import get_redis
from studio.tasks import waiting
from studio.tasks.service import NOT_FOUND_MESSAGE

logger = logging.getLogger(__name__)

CHANNEL = "studio:task-events:{}"
SEQUENCE = "studio:task-events-sequence:{}"
# The counter outlives any task's run by far; a reconnect after it expired is sent the current state again.
SEQUENCE_SECONDS = 7 * 24 * 3600
MAX_STREAM_SECONDS = 120
# A comment this often keeps proxies (nginx's proxy_read_timeout is 60 s) from closing a quiet stream, and finds
# a client that left: its place is free again at the next heartbeat.
HEARTBEAT_SECONDS = 15
RETRY_MILLISECONDS = 2000
BUSY_RETRY_MILLISECONDS = 10000
MEDIA_TYPE = "text/event-stream"
HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}  # nginx passes each event on at once

# INCR and PUBLISH in one step: two writers at once cannot publish their numbers out of order.
_ANNOUNCE = """
local number = redis.call('INCR', KEYS[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
redis.call('PUBLISH', KEYS[2], number .. ' ' .. ARGV[1])
return number
"""


@dataclass(frozen=True)
class Change:
    """One announced change of a task: its number (the event id) and the state it left."""

    number: int
    status: str
    progress: int
    stage: str | None

    @property
    def finished(self) -> bool:
        """Return True when this change finished the task."""
        return TaskStatus(self.status).finished

    def fields(self) -> dict[str, Any]:
        """Return the event's data."""
        return {"status": self.status, "progress": self.progress, "stage": self.stage}


def announce(task_id: str, status: TaskStatus | str, progress: int, stage: str | None = None,
             app: Flask | None = None) -> None:
    """Tell the task's event streams of a change (call after the commit that made it); best effort. app: when
    called outside an app context."""
    if app is None and not has_app_context():
        return  # no app, no Redis to tell: a reporter used outside a job (its unit tests)
    payload = json.dumps({"status": TaskStatus(status).value, "progress": progress, "stage": stage})
    try:
        get_redis(app).eval(_ANNOUNCE, 2, SEQUENCE.format(task_id), CHANNEL.format(task_id), payload, SEQUENCE_SECONDS)
    except RedisError as error:
        # Streams then miss this step, not the next ones, nor the end (?wait's own announcement is separate).
        logger.warning("task %s: could not announce a change to its event streams: %s", task_id, error)


def parse_change(data: bytes | str) -> Change | None:
    """Return the change a channel message announces, None when it is not one."""
    text = data.decode() if isinstance(data, bytes) else data
    number, _, payload = text.partition(" ")
    try:
        fields = json.loads(payload)
        return Change(int(number), TaskStatus(fields["status"]).value, int(fields["progress"]), fields.get("stage"))
    except (ValueError, KeyError, TypeError):
        return None


def format_event(data: dict[str, Any] | None = None, *, event: str | None = None, event_id: int | None = None,
                 retry_ms: int | None = None) -> str:
    """Return one Server-Sent Event: its fields, the data as one line of JSON, and the blank line that ends it."""
    lines = []
    if retry_ms is not None:
        lines.append(f"retry: {retry_ms}")
    if event_id is not None:
        lines.append(f"id: {event_id}")
    if event is not None:
        lines.append(f"event: {event}")
    if data is not None:
        lines.append(f"data: {json.dumps(data, separators=(',', ':'))}")  # JSON escapes newlines: one line
    return "\n".join(lines) + "\n\n"


def heartbeat() -> str:
    """Return a comment line: ignored by clients, it keeps the connection busy."""
    return ": heartbeat\n\n"


def last_event_id(header: str | None) -> int | None:
    """Return the number in a Last-Event-ID header, None when absent or not one of ours."""
    value = (header or "").strip()
    return int(value) if value.isascii() and value.isdigit() and len(value) <= 18 else None


def state_event(task: Task, number: int, describe: Callable[[Task], dict[str, Any]],
                retry_ms: int = RETRY_MILLISECONDS) -> str:
    """Return the event of the task as it is: `finished` with its whole representation, else `progress`."""
    if task.task_status.finished:
        return format_event(describe(task), event="finished", event_id=number, retry_ms=retry_ms)
    return format_event({"status": task.status, "progress": task.progress, "stage": task.stage},
                        event="progress", event_id=number, retry_ms=retry_ms)


def stream_response(task: Task, last_id: int | None, describe: Callable[[Task], dict[str, Any]]) -> Response:
    """Return the response that streams the task's events (the caller checked that the account owns it)."""
    metrics.untimed()
    task_id = task.id
    if not waiting.take_place():
        return _once(task, _sequence_or_zero(task_id), describe)
    subscription = get_redis().pubsub(ignore_subscribe_messages=True)
    try:
        subscription.subscribe(CHANNEL.format(task_id))
        number = _sequence(task_id)
    except RedisError as error:
        _Stream(subscription, describe, 0).close()
        logger.warning("task %s: could not follow its events: %s", task_id, error)
        return _once(task, 0, describe)
    stream = _Stream(subscription, describe, number)
    try:
        task = db.session.get(Task, task_id, populate_existing=True)
        if task is None:
            raise NotFound(NOT_FOUND_MESSAGE)
        finished = task.task_status.finished
        first = state_event(task, number, describe) if last_id is None or last_id < number else None
    except BaseException:
        stream.close()
        raise
    finally:
        db.session.rollback()  # the stream holds no connection or transaction while it waits
    if finished:
        stream.close()
        # 204 when the client has seen the end already: it stops EventSource's reconnecting.
        return Response(first, mimetype=MEDIA_TYPE, headers=HEADERS) if first else Response(status=204)
    response = Response(stream_with_context(stream.events(task_id, first)), mimetype=MEDIA_TYPE, headers=HEADERS)
    response.call_on_close(stream.close)
    return response


class _Stream:
    """One open stream: its subscription and waiting place, both given back once, when it closes."""

    def __init__(self, subscription: PubSub, describe: Callable[[Task], dict[str, Any]], number: int) -> None:
        self.subscription, self.describe, self.number = subscription, describe, number
        self.closed = False

    def events(self, task_id: str, first: str | None) -> Iterator[str]:
        """Yield the first event (or the retry field alone), then each change until the end or the time limit."""
        yield first or format_event(retry_ms=RETRY_MILLISECONDS)
        deadline = time.monotonic() + MAX_STREAM_SECONDS
        try:
            while (left := deadline - time.monotonic()) > 0:
                message = self.subscription.get_message(timeout=min(left, HEARTBEAT_SECONDS))
                if message is None:
                    yield heartbeat()
                    continue
                change = parse_change(message["data"])
                if change is None or change.number <= self.number:
                    continue  # a change already sent (or read with the task at the start)
                self.number = change.number
                if change.finished:
                    yield self._final(task_id, change)
                    return
                yield format_event(change.fields(), event="progress", event_id=change.number)
        except RedisError as error:
            logger.warning("task %s: its event stream lost Redis: %s", task_id, error)  # the client reconnects

    def _final(self, task_id: str, change: Change) -> str:
        try:
            task = db.session.get(Task, task_id, populate_existing=True)
            data = self.describe(task) if task is not None else change.fields()
        finally:
            db.session.rollback()
        return format_event(data, event="finished", event_id=change.number)

    def close(self) -> None:
        """Unsubscribe and give the waiting place back (once)."""
        if self.closed:
            return
        self.closed = True
        waiting.give_place()
        try:
            self.subscription.close()
        except RedisError:
            pass


def _once(task: Task, number: int, describe: Callable[[Task], dict[str, Any]]) -> Response:
    """Return the task's state as one event and close: EventSource asks again after the longer retry."""
    body = state_event(task, number, describe, retry_ms=BUSY_RETRY_MILLISECONDS)
    return Response(body, mimetype=MEDIA_TYPE, headers=HEADERS)


def _sequence(task_id: str) -> int:
    return int(get_redis().get(SEQUENCE.format(task_id)) or 0)


def _sequence_or_zero(task_id: str) -> int:
    try:
        return _sequence(task_id)
    except RedisError:
        return 0


__all__ = ["announce", "format_event", "parse_change", "stream_response", "last_event_id"]
