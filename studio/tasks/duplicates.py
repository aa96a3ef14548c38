"""Duplicates: the same clean photo, attachments, operation, model and options from the same account reuse the
outputs of the task that ran first instead of running the models again (STUDIO_REUSE_DUPLICATES, on by default).

A reusing task records the task whose run made the outputs (Task.reused_from, always that first task, however
many reuses came between) and points at the same stored objects. Those objects are deleted only once no task uses
them any more: whoever deletes a task asks, after its row is gone, whether another row still points at them
(outputs_in_use); of two deletions at once, at least the one that commits last sees no other row and deletes them.
A reuse locks the row it reuses (SELECT ... FOR UPDATE) until it has committed, so a deletion of that row either
waits for the reuse, and then sees it, or goes first, and the reuse finds nothing to reuse and runs the models.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from typing import Mapping

from sqlalchemy import exists, or_, select

from studio.extensions import db
from studio.models import Task, TaskStatus


def duplicate_key(task: Task, photo: bytes, attachments: Mapping[str, bytes]) -> str:
    """Return what a duplicate of this task shares with it: the SHA-256 of its clean inputs, operation, model
    and options."""
    described = {
        "operation": task.operation,
        "model": task.model or "",
        "options": task.options or {},
        "photo": hashlib.sha256(photo).hexdigest(),
        "attachments": {name: hashlib.sha256(data).hexdigest() for name, data in sorted(attachments.items())},
    }
    return hashlib.sha256(json.dumps(described, sort_keys=True, separators=(",", ":"),
                                     default=str).encode()).hexdigest()


def earlier_duplicate(task: Task, key: str) -> Task | None:
    """Return the account's latest completed task with this key, its row locked until the caller commits."""
    query = (select(Task)
             .where(Task.user_id == task.user_id, Task.duplicate_key == key, Task.id != task.id,
                    Task.status == TaskStatus.COMPLETED.value)
             .order_by(Task.finished_at.desc()).limit(1).with_for_update())
    return db.session.scalars(query).first()


def origin_of(task: Task) -> str:
    """Return the id of the task whose run made this task's outputs (the task itself unless it reused them)."""
    return task.reused_from or task.id


def outputs_in_use(task_id: str, origin: str) -> bool:
    """Return whether a task other than task_id still uses the outputs that the task `origin` made."""
    query = select(exists().where(Task.id != task_id, or_(Task.id == origin, Task.reused_from == origin)))
    return bool(db.session.scalar(query))


@dataclass(frozen=True)
class TaskFiles:
    """What a task keeps in storage (Task.own_keys, Task.output_keys), read before its row is deleted: its own files
    (inputs, thumbnails) and the outputs it points at."""

    task_id: str
    origin: str
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]

    @classmethod
    def of(cls, task: Task) -> "TaskFiles":
        """Return the files of a task, as its row holds them now."""
        return cls(task.id, origin_of(task), tuple(task.own_keys()), tuple(task.output_keys()))

    def deletable(self) -> list[str]:
        """Return the keys to delete with the task: its inputs, and its outputs unless another task uses them (ask
        once the task's row is gone, or deleted in the caller's transaction)."""
        if self.outputs and outputs_in_use(self.task_id, self.origin):
            return list(self.inputs)
        return list(self.inputs + self.outputs)
