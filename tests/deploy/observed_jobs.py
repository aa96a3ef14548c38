"""Job functions that the observability tests enqueue for a real `rq_worker.py` (imported by its work horses)."""

from __future__ import annotations

import logging

from studio import logs, metrics

logger = logging.getLogger(__name__)


def finish_a_task(operation: str, model: str, seconds: float) -> None:
    """Record a finished task from inside a work horse, as the processing job does."""
    metrics.task_finished(operation, model, "completed", seconds)
    metrics.inference_seconds(operation, model, seconds / 2)


def log_inside_a_task(request_id: str, task_id: str) -> None:
    """Log from a job bound to the request that enqueued it and to its task, as the processing job does."""
    with logs.bind(request_id=request_id, task_id=task_id):
        logger.info("working on the photo; password=%s", "not-in-the-log")
