"""A task's life, in one place: every status change is one function here with one guarded UPDATE.

    created -> PENDING --started--> PROCESSING --completed (or reused)--> COMPLETED
                  ^                    |  |  `--failed-----> FAILED
                  `--released/taken over  `-----cancelled--> CANCELLED (from PENDING too)
    FAILED --retried (an administrator's retry)--> PENDING

Each transition names the statuses it may leave and changes the row only if the task is still in one of them, so
the web app, the job and the reconciler may race without a lost update: the loser's UPDATE matches no row and it
learns so from the return value (a job whose task was deleted or cancelled meanwhile discards its result). Nothing
else writes a task's status (tests/tasks/test_lifecycle.py reads the code to check). Once a task is finished its
webhook is queued here, whoever finished it, and its usage is counted (studio/usage.py) in the transaction that
finishes it: once per task, whatever retries came before.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable, Iterable

from flask import Flask
from sqlalchemy import Update, case, func, update
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from studio import metrics, usage
from studio.extensions import db
from studio.models import Task, TaskStatus, WebhookStatus, utcnow
from studio.tasks import quota

logger = logging.getLogger(__name__)

MAX_ERROR_LENGTH = 500
MAX_STAGE_LENGTH = 120
UNFINISHED = (TaskStatus.PENDING, TaskStatus.PROCESSING)


@dataclass(frozen=True)
class StoredOutput:
    """An output in storage: where, what and how big."""

    key: str
    media_type: str
    size: int

    def to_dict(self) -> dict[str, Any]:
        """Return the record a task keeps of it."""
        return {"key": self.key, "media_type": self.media_type, "size": self.size}


def _guarded(task_id: str, leaving: Iterable[TaskStatus], *conditions: ColumnElement[bool], **values: Any) -> Update:
    """Return the UPDATE that changes the task only while it is in one of the statuses it may leave."""
    return (update(Task)
            .where(Task.id == task_id, Task.status.in_([status.value for status in leaving]), *conditions)
            .values(updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False))


def _move(task_id: str, leaving: Iterable[TaskStatus], *conditions: ColumnElement[bool],
          then: Callable[[], None] = lambda: None, **values: Any) -> bool:
    """Update the task if it is still in one of the statuses it may leave (and the conditions hold), run `then`
    in the same transaction when it moved, and commit."""
    statement = _guarded(task_id, leaving, *conditions, **values)
    try:
        moved = db.session.execute(statement).rowcount == 1
        if moved:
            then()
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return moved


def _finished(task_id: str, status: TaskStatus) -> None:
    """Tell the requests waiting on the task, count it and queue its webhook (the delivery job reads the task
    again)."""
    from studio.queue import enqueue_webhook
    from studio.tasks import events, waiting

    waiting.announce(task_id)
    task = db.session.get(Task, task_id, populate_existing=True)  # one SELECT, whatever the session held
    events.announce(task_id, status, task.progress if task is not None else 0)
    if task is not None:
        ran = (task.finished_at - task.started_at).total_seconds() if task.started_at and task.finished_at else None
        metrics.task_finished(task.operation, task.model, status.value.lower(), ran)
        enqueue_webhook(task)
        logger.info("task %s: %s", task_id, status.value.lower())


def created(task: Task) -> None:
    """Record a new task, PENDING (the caller queues it once this has committed)."""
    task.status, task.progress, task.attempts, task.stage = TaskStatus.PENDING.value, 0, 0, None
    db.session.add(task)
    session = db.session()
    # The new row holds what was just written: keep it loaded, rather than read it back (a SELECT per upload).
    expire, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    except Exception:
        session.rollback()
        raise
    finally:
        session.expire_on_commit = expire
    metrics.task_created(task.operation, task.model)
    logger.info("task %s: created for account %s (%s, model %s)", task.id, task.user_id, task.operation, task.model)


def created_together(tasks: list[Task], *rows: object) -> None:
    """Record new tasks, PENDING, with the rows they belong to (their batch), in one commit: all or none."""
    for task in tasks:
        task.status, task.progress, task.attempts, task.stage = TaskStatus.PENDING.value, 0, 0, None
    db.session.add_all([*rows, *tasks])
    session = db.session()
    expire, session.expire_on_commit = session.expire_on_commit, False
    try:
        session.commit()
    except Exception:
        session.rollback()
        raise
    finally:
        session.expire_on_commit = expire
    for task in tasks:
        metrics.task_created(task.operation, task.model)
    logger.info("created %s tasks together for account %s", len(tasks), tasks[0].user_id if tasks else None)


def started(task_id: str) -> Task | None:
    """Start an attempt: PENDING (or PROCESSING, for a retry after a lost attempt) -> PROCESSING; None if not."""
    now = utcnow()
    if not _move(task_id, UNFINISHED, status=TaskStatus.PROCESSING.value, attempts=Task.attempts + 1,
                 started_at=now, heartbeat_at=now, error=None, progress=0, stage=None):
        return None
    _announce(task_id, TaskStatus.PROCESSING)
    return db.session.get(Task, task_id, populate_existing=True)


def progressed(task_id: str, percent: int, stage: str | None = None, *, connection: Connection | None = None) -> bool:
    """Record how far a running attempt is; False when the task is no longer PROCESSING (cancelled, deleted).

    connection: a connection of the caller's own, in a transaction the caller commits (a thread beside the job's,
    whose session is not thread-safe), who then announces the change (announce_progress); the app's session
    otherwise, and the change is announced here.
    """
    # 100 is written together with COMPLETED: a bar at 100% must mean the result can be downloaded.
    values = {"progress": max(0, min(int(percent), 99)), "stage": (stage or None) and stage[:MAX_STAGE_LENGTH],
              "heartbeat_at": utcnow()}
    if connection is not None:
        return connection.execute(_guarded(task_id, (TaskStatus.PROCESSING,), **values)).rowcount == 1
    moved = _move(task_id, (TaskStatus.PROCESSING,), **values)
    if moved:
        announce_progress(task_id, values["progress"], values["stage"])
    return moved


def announce_progress(task_id: str, percent: int, stage: str | None, app: Flask | None = None) -> None:
    """Tell the task's event streams of a progress write, once it has committed (best effort); app: the job's,
    from a thread without an app context."""
    percent, stage = max(0, min(int(percent), 99)), (stage or None) and stage[:MAX_STAGE_LENGTH]
    _announce(task_id, TaskStatus.PROCESSING, percent, stage, app=app)


def _announce(task_id: str, status: TaskStatus, percent: int = 0, stage: str | None = None,
              app: Flask | None = None) -> None:
    from studio.tasks import events

    events.announce(task_id, status, percent, stage, app=app)


def completed(task_id: str, user_id: int, outputs: dict[str, StoredOutput], output_pixels: int = 0,
              thumbnails: dict[str, Any] | None = None, duplicate_key: str | None = None) -> bool:
    """PROCESSING -> COMPLETED with its outputs (by name, the main one first), counted in the account's storage;
    False when the task was deleted or cancelled meanwhile. output_pixels: the main output's, when an image;
    thumbnails: their records, recorded in the same update so no page shows the task finished without them;
    duplicate_key: what a later duplicate will share with it (studio/tasks/duplicates.py)."""
    now = utcnow()
    stored = sum(output.size for output in outputs.values())

    def count() -> None:
        quota.add_outputs(user_id, stored)
        usage.record(task_id)

    moved = _move(task_id, (TaskStatus.PROCESSING,), then=count,
                  status=TaskStatus.COMPLETED.value, progress=100, stage=None, output_pixels=output_pixels,
                  outputs={name: output.to_dict() for name, output in outputs.items()},
                  thumbnails=thumbnails or {}, duplicate_key=duplicate_key, finished_at=now,
                  heartbeat_at=now)
    if moved:
        _finished(task_id, TaskStatus.COMPLETED)
    return moved


def reused(task_id: str, user_id: int, original: Task, duplicate_key: str) -> bool:
    """PROCESSING -> COMPLETED with the outputs of an earlier duplicate (studio/tasks/duplicates.py), no model run;
    False when the task was deleted or cancelled meanwhile. Counted as a task, not as work (studio/usage.py)."""
    now = utcnow()
    outputs = dict(original.outputs or {})
    # Counted in the account's storage as a copy would be: deleting either task gives its share back.
    stored = sum(record["size"] for record in outputs.values())

    def count() -> None:
        quota.add_outputs(user_id, stored)
        usage.record(task_id)

    moved = _move(task_id, (TaskStatus.PROCESSING,), then=count,
                  status=TaskStatus.COMPLETED.value, progress=100, stage=None, output_pixels=original.output_pixels,
                  outputs=outputs, reused_from=original.reused_from or original.id, duplicate_key=duplicate_key,
                  finished_at=now, heartbeat_at=now)
    if moved:
        _finished(task_id, TaskStatus.COMPLETED)
    return moved


def failed(task_id: str, reason: str) -> bool:
    """PENDING or PROCESSING -> FAILED with a readable reason; False when it had finished already."""
    moved = _move(task_id, UNFINISHED, then=lambda: usage.record(task_id), status=TaskStatus.FAILED.value,
                  error=reason[:MAX_ERROR_LENGTH], stage=None, finished_at=utcnow())
    if moved:
        _finished(task_id, TaskStatus.FAILED)
    return moved


def cancelled(task_id: str, reason: str = "Cancelled.") -> bool:
    """PENDING or PROCESSING -> CANCELLED; False when it had finished already. A running job stops at its next
    progress report (or at once, when studio.queue.stop_task_job kills it). Usage counts only what ran."""
    moved = _move(task_id, UNFINISHED, then=lambda: usage.record(task_id), status=TaskStatus.CANCELLED.value,
                  error=reason[:MAX_ERROR_LENGTH], stage=None, finished_at=utcnow())
    if moved:
        _finished(task_id, TaskStatus.CANCELLED)
    return moved


def released(task_id: str) -> bool:
    """PROCESSING -> PENDING, the attempt not counted: a worker's shutdown interrupted it, not the photo."""
    moved = _move(task_id, (TaskStatus.PROCESSING,), Task.attempts > 0, status=TaskStatus.PENDING.value,
                  attempts=Task.attempts - 1, progress=0, stage=None)
    if moved:
        _announce(task_id, TaskStatus.PENDING)
    return moved


def _stalled(stalled_before: datetime) -> ColumnElement[bool]:
    return func.coalesce(Task.heartbeat_at, Task.updated_at) < stalled_before


def taken_over(task_id: str, stalled_before: datetime, *, retry: bool, reason: str = "") -> bool:
    """PROCESSING whose heartbeat went quiet -> PENDING (to retry) or FAILED; False if it moved on meanwhile.

    The reconciler calls this for a task whose job is gone; a late heartbeat or commit of that job wins.
    """
    if retry:
        moved = _move(task_id, (TaskStatus.PROCESSING,), _stalled(stalled_before), status=TaskStatus.PENDING.value,
                      stage=None)
        if moved:
            _announce(task_id, TaskStatus.PENDING)
        return moved
    moved = _move(task_id, (TaskStatus.PROCESSING,), _stalled(stalled_before), then=lambda: usage.record(task_id),
                  status=TaskStatus.FAILED.value, error=reason[:MAX_ERROR_LENGTH], stage=None, finished_at=utcnow())
    if moved:
        _finished(task_id, TaskStatus.FAILED)
    return moved


def retried(task_id: str) -> bool:
    """FAILED -> PENDING, to run again from the start (an administrator's retry; the caller queues it): attempts,
    error and times reset, the webhook due again. Its failure is taken back from the usage, so the task counts
    once. False when it is not FAILED (any more)."""
    # Read before the UPDATE clears finished_at. A FAILED row changes only here, so it cannot go stale meanwhile;
    # of two retries at once, only the one whose UPDATE moves the row takes the failure back.
    failure = usage.finished_outcome(task_id)
    moved = _move(task_id, (TaskStatus.FAILED,), then=lambda: usage.take_back(failure),
                  status=TaskStatus.PENDING.value, attempts=0, progress=0, stage=None, error=None, started_at=None,
                  finished_at=None, heartbeat_at=None,
                  webhook_status=case((Task.webhook_url.is_not(None), WebhookStatus.PENDING.value), else_=None),
                  webhook_attempts=0, webhook_response=None, webhook_delivered_at=None)
    if moved:
        _announce(task_id, TaskStatus.PENDING)
        logger.info("task %s: retried", task_id)
    return moved
