"""The thumbnail job: thumbnails for a finished task that has none (finished before they existed, or failed).

Queued by the history the first time it shows such a task (studio.queue.enqueue_thumbnails); it records what it
could make, None for the rest, so it runs once per task.
"""

from __future__ import annotations

import logging

from sqlalchemy import update

from jobs.context import app_context
from studio.extensions import db
from studio.models import Task
from studio.storage import ObjectNotFound, get_storage
from studio.tasks import thumbnails
from studio.tasks.representation import output_records

logger = logging.getLogger(__name__)


def make_task_thumbnails(task_id: str) -> None:
    """Make and record the thumbnails of a finished task by id; a no-op for a deleted one or one that has them."""
    with app_context():
        try:
            _make(task_id)
        finally:
            db.session.remove()


def _make(task_id: str) -> None:
    task = db.session.get(Task, task_id)
    if task is None or task.thumbnails or not task.task_status.finished:
        logger.info("task %s: deleted, unfinished or with thumbnails already; nothing to do", task_id)
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
    logger.info("task %s: thumbnails made: %s", task_id, ", ".join(name for name, item in made.items() if item)
                or "none")


def _read(key: str) -> bytes | None:
    try:
        return get_storage().get(key)
    except ObjectNotFound:
        return None
