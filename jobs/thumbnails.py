"""The thumbnail backfill: thumbnails for finished tasks that have none (finished before thumbnails existed, or
failed before their job made them), a batch every few minutes (jobs/scheduled.py).

A completed task gets its thumbnails from its own job (jobs/process_image.py). Here each task records what could be
made, None for the rest, so it is visited once; no page request queues anything (no GET changes state).
"""

from __future__ import annotations

import logging

from sqlalchemy import String, cast, select, update

from jobs.context import app_context
from studio.extensions import db
from studio.models import FINISHED_STATUSES, Task
from studio.storage import ObjectNotFound, get_storage
from studio.tasks import thumbnails
from studio.tasks.representation import output_records

logger = logging.getLogger(__name__)

# Tasks per run: a few seconds of work, newest first (those are the ones the history shows).
BATCH_SIZE = 100
# How an empty mapping reads as text, on PostgreSQL and SQLite alike (JSON has no equality in PostgreSQL).
_NONE_YET = "{}"


def make_missing_thumbnails(batch_size: int = BATCH_SIZE) -> int:
    """Make the thumbnails of up to batch_size finished tasks that have none; return how many were visited."""
    with app_context():
        try:
            task_ids = db.session.scalars(
                select(Task.id).where(Task.status.in_([status.value for status in FINISHED_STATUSES]),
                                      cast(Task.thumbnails, String) == _NONE_YET)
                .order_by(Task.created_at.desc()).limit(batch_size)).all()
            for task_id in task_ids:
                make_task_thumbnails(task_id)
            if task_ids:
                logger.info("made the thumbnails of %s older tasks", len(task_ids))
            return len(task_ids)
        finally:
            db.session.remove()


def make_task_thumbnails(task_id: str) -> None:
    """Make and record the thumbnails of a finished task by id; a no-op for a deleted one or one that has them."""
    task = db.session.get(Task, task_id)
    if task is None or task.thumbnails or not task.task_status.finished:
        return
    records = output_records(task)
    pictured = thumbnails.result_source(records)
    made = thumbnails.store(task.user_id, task.id, {
        # An upload its job never cleaned is not decoded here either (studio/tasks/cleaning.py).
        "input": _read(task.input_key) if task.inputs_clean else None,
        "result": _read(records[pictured]["key"]) if pictured else None})
    recorded = db.session.execute(update(Task).where(Task.id == task_id).values(thumbnails=made)).rowcount
    db.session.commit()
    if not recorded:
        # Deleted meanwhile: its files went with it, but not these.
        for item in made.values():
            if item:
                get_storage().delete(item["key"])


def _read(key: str) -> bytes | None:
    try:
        return get_storage().get(key)
    except ObjectNotFound:
        return None
