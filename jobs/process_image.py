"""The processing job: load the task, run the pipeline on its photo, store the result, record the outcome."""

from __future__ import annotations

import logging
from types import TracebackType
from typing import Any, Callable

from flask import current_app
from rq import get_current_job
from rq.job import Job
from rq.timeouts import JobTimeoutException
from sqlalchemy.orm.exc import StaleDataError

from jobs.context import app_context
from ml.imageio import ImageDecodeError
from ml.options import InvalidOptions, ProcessingOptions
from ml.pipeline import process_image
from studio.extensions import db
from studio.models import Task, TaskStatus, utcnow
from studio.storage import ObjectNotFound, get_storage, result_key

logger = logging.getLogger(__name__)

# Progress reaches the database in steps of at least this many points: enough for a progress bar, few writes.
PROGRESS_STEP = 5
MAX_ERROR_LENGTH = 500


class PermanentFailure(Exception):
    """A failure that no retry can fix (a bad photo, bad options, a missing input): fail the task now."""


class TaskGone(Exception):
    """The task row was deleted while the job ran."""


def process_task(task_id: str) -> None:
    """Process one task by id; a no-op for a deleted or finished task, idempotent otherwise."""
    with app_context():
        try:
            _process(task_id)
        except TaskGone:
            db.session.rollback()
            logger.info("task %s: deleted while processing; nothing to do", task_id)
        finally:
            db.session.remove()


def _process(task_id: str) -> None:
    task = db.session.get(Task, task_id)
    if task is None:
        logger.info("task %s: no such task (deleted); nothing to do", task_id)
        return
    if task.task_status.finished:
        logger.info("task %s: already %s; nothing to do", task_id, task.status)
        return
    _start(task)
    try:
        options = _options(task)
        data = _input(task)
        result = process_image(
            data, options, model_dir=current_app.config["STUDIO_MODEL_DIR"],
            max_pixels=current_app.config["STUDIO_MAX_PIXELS"], progress=_progress_reporter(task),
        )
    except (ImageDecodeError, PermanentFailure) as error:
        reason = f"The photo could not be read: {error}" if isinstance(error, ImageDecodeError) else str(error)
        _fail(task, reason)
        logger.warning("task %s: failed permanently, no retry: %s", task.id, reason)
        return
    _finish(task, result)


def _start(task: Task) -> None:
    now = utcnow()
    task.status = TaskStatus.PROCESSING.value
    task.attempts += 1
    task.started_at = now
    task.heartbeat_at = now
    task.error = None
    _commit()
    logger.info("task %s: processing (attempt %s, model %s)", task.id, task.attempts, task.model)


def _options(task: Task) -> ProcessingOptions:
    try:
        return ProcessingOptions.from_mapping(task.options or {},
                                              default_model=current_app.config["STUDIO_DEFAULT_MODEL"])
    except InvalidOptions as error:
        raise PermanentFailure(f"The processing options are not valid: {error}") from None


def _input(task: Task) -> bytes:
    try:
        return get_storage().get(task.input_key)
    except ObjectNotFound:
        raise PermanentFailure("The uploaded photo is no longer in storage; upload it again.") from None


def _progress_reporter(task: Task) -> Callable[[int], None]:
    """Return a callback that records progress in job.meta and, in steps, in the database."""
    job = get_current_job()
    recorded = task.progress

    def report(percent: int) -> None:
        nonlocal recorded
        # 100 is written together with COMPLETED: a bar at 100% must mean the result can be downloaded.
        percent = max(0, min(int(percent), 99))
        if percent - recorded < PROGRESS_STEP:
            return
        recorded = percent
        if job is not None:
            job.meta["progress"] = percent
            job.save_meta()
        task.progress = percent
        task.heartbeat_at = utcnow()
        _commit()

    return report


def _finish(task: Task, result: Any) -> None:
    key = result_key(task.user_id, task.id, result.extension)
    storage = get_storage()
    storage.put(key, result.data, result.media_type)
    task.status = TaskStatus.COMPLETED.value
    task.progress = 100
    task.result_key = key
    task.result_content_type = result.media_type
    task.result_size = len(result.data)
    task.finished_at = task.heartbeat_at = utcnow()
    try:
        _commit()
    except TaskGone:
        storage.delete(key)
        raise
    logger.info("task %s: completed (%s, %s bytes)", task.id, result.media_type, len(result.data))


def _fail(task: Task, reason: str) -> None:
    task.status = TaskStatus.FAILED.value
    task.error = reason[:MAX_ERROR_LENGTH]
    task.finished_at = utcnow()
    _commit()


def _commit() -> None:
    try:
        db.session.commit()
    except StaleDataError:
        # The UPDATE matched no row: the user deleted the task meanwhile.
        raise TaskGone() from None


def failure_reason(attempts: int, timeout: int | None, exc_type: type[BaseException] | None,
                   exc_value: BaseException | None) -> str:
    """Return the message a user sees when every attempt failed."""
    if exc_type is not None and issubclass(exc_type, JobTimeoutException):
        cause = f"it took longer than {timeout} seconds"
    elif exc_value is not None:
        cause = f"{exc_type.__name__ if exc_type else 'error'}: {exc_value}"
    else:
        cause = "the worker process stopped unexpectedly"
    return f"Processing failed after {attempts} attempt{'s' if attempts != 1 else ''}; {cause}"


def mark_failed(job: Job, exc_type: type[BaseException] | None, exc_value: BaseException | None) -> None:
    """Record the final failure of a job's task, with the reason, unless the task already finished."""
    with app_context():
        try:
            task = db.session.get(Task, job.id)
            if task is None or task.task_status.finished:
                return
            reason = failure_reason(task.attempts, job.timeout, exc_type, exc_value)
            _fail(task, reason)
            logger.error("task %s: failed after its last attempt: %s", job.id, reason)
        except TaskGone:
            db.session.rollback()
        finally:
            db.session.remove()


def on_failure(job: Job, connection: Any, exc_type: type[BaseException] | None,
               exc_value: BaseException | None, traceback: TracebackType | None) -> None:
    """RQ failure callback: mark the task FAILED once no retry is left (RQ calls it for every failed attempt)."""
    if job.retries_left:
        logger.warning("task %s: attempt failed (%s: %s); %s retries left", job.id,
                       exc_type.__name__ if exc_type else "error", exc_value, job.retries_left)
        return
    mark_failed(job, exc_type, exc_value)


def on_work_horse_killed(job: Job, pid: int | None, status: int | None, rusage: Any) -> None:
    """RQ hook for a work horse that died without running the failure callback (killed, out of memory)."""
    if job.retries_left:
        logger.warning("task %s: work horse %s died (status %s); %s retries left", job.id, pid, status,
                       job.retries_left)
        return
    logger.error("task %s: work horse %s died (status %s) on the last attempt", job.id, pid, status)
    mark_failed(job, None, None)
