"""What a task looks like from outside, as plain data: the API and the webhooks both say this (links aside)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from studio.models import Task, TaskStatus, as_utc


def isoformat(moment: datetime | None) -> str | None:
    """Return an ISO 8601 time with its zone, or None."""
    return None if moment is None else as_utc(moment).isoformat()


def task_fields(task: Task) -> dict[str, Any]:
    """Return what the API and webhooks say about a task, links aside (a worker has no request to build them)."""
    return {
        "id": task.id,
        "operation": task.operation,
        "status": task.status,
        "progress": task.progress,
        "stage": task.stage,
        "error": task.error,
        "model": task.model,
        "options": task.options,
        "original_filename": task.original_filename,
        "created_at": isoformat(task.created_at),
        "started_at": isoformat(task.started_at),
        "finished_at": isoformat(task.finished_at),
        "attempts": task.attempts,
        # Where the photo (and any attachment) was fetched from, when given by URL; None for uploaded files.
        "source_urls": task.source_urls or None,
        # The task whose stored result this one reuses (a duplicate: the models did not run again), else None.
        "reused_from": task.reused_from,
    }


def output_records(task: Task) -> dict[str, dict[str, Any]]:
    """Return the stored outputs of a completed task by name ("result" first): key, media type and size."""
    if task.task_status is not TaskStatus.COMPLETED:
        return {}
    return dict(task.outputs or {})


def picture_result(task: Task) -> dict[str, Any] | None:
    """Return the record of a completed task's main output when it is a picture another operation can take."""
    record = output_records(task).get("result")
    return record if record is not None and record["media_type"].startswith("image/") else None


def webhook_fields(task: Task) -> dict[str, Any] | None:
    """Return the state of the task's webhook, None when it has none."""
    if not task.webhook_url:
        return None
    return {
        "url": task.webhook_url,
        "status": task.webhook_status,
        "attempts": task.webhook_attempts,
        "last_response": task.webhook_response,
        "delivered_at": isoformat(task.webhook_delivered_at),
    }
