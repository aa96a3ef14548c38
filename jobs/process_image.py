"""The processing job: load the task, run the pipeline on its photo, store the result, record the outcome."""

from __future__ import annotations

import logging
import secrets
from datetime import datetime, timezone
from types import TracebackType
from typing import Any, Callable

from flask import current_app
from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm.exc import StaleDataError

from jobs import faults
from jobs.context import app_context
from jobs.heartbeat import Heartbeat
from ml.imageio import ImageDecodeError
from ml.options import InvalidOptions, ProcessingOptions
from ml.pipeline import process_image
from studio.extensions import db
from studio.models import Task, TaskStatus, utcnow
from studio.queue import enqueue_webhook
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
    config = current_app.config
    with Heartbeat(db.engine, task.id, config["STUDIO_HEARTBEAT_SECONDS"]):
        try:
            faults.before_processing(task)
            options = _options(task)
            data = _input(task)
            result = process_image(
                data, options, model_dir=config["STUDIO_MODEL_DIR"], max_pixels=config["STUDIO_MAX_PIXELS"],
                progress=_progress_reporter(task), background=_background(task, options),
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


def _background(task: Task, options: ProcessingOptions) -> bytes | None:
    """Return the stored background image when the options put the cutout on one."""
    if not options.uses_background_image:
        return None
    if not task.background_key:
        raise PermanentFailure("The background image was not stored; upload the photo with it again.")
    try:
        return get_storage().get(task.background_key)
    except ObjectNotFound:
        raise PermanentFailure("The background image is no longer in storage; upload it again.") from None


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
    faults.after_store(task)
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
    enqueue_webhook(task)


def _fail(task: Task, reason: str) -> None:
    task.status = TaskStatus.FAILED.value
    task.error = reason[:MAX_ERROR_LENGTH]
    task.finished_at = utcnow()
    _commit()
    enqueue_webhook(task)


def _commit() -> None:
    try:
        db.session.commit()
    except StaleDataError:
        # The UPDATE matched no row: the user deleted the task meanwhile.
        raise TaskGone() from None


def failure_reason(attempts: int, timeout: int | None, exc_type: type[BaseException] | None,
                   reference: str) -> str:
    """Return the message a user sees when every attempt failed: readable, and no internals.

    The exception text of an unexpected error may hold paths, hosts or SQL: it goes to the log under the
    reference, and the user sees only the reference.
    """
    if exc_type is not None and issubclass(exc_type, JobTimeoutException):
        cause = f"it took longer than {timeout} seconds"
    elif exc_type is None or issubclass(exc_type, AbandonedJobError):
        cause = "the worker processing it stopped unexpectedly"
    else:
        cause = f"the error was logged as {reference}"
    return f"Processing failed after {attempts} attempt{'s' if attempts != 1 else ''}; {cause}."


def mark_failed(job: Job, exc_type: type[BaseException] | None, exc_value: BaseException | None,
                traceback: TracebackType | None = None) -> None:
    """Record the final failure of a job's task, with the reason, unless the task already finished."""
    reference = f"error-{secrets.token_hex(4)}"
    # Logged before the database is touched: if that fails too, the log still says what happened.
    logger.error("task %s: failed after its last attempt (%s): %s: %s", job.id, reference,
                 exc_type.__name__ if exc_type else "worker stopped", exc_value,
                 exc_info=(exc_type, exc_value, traceback) if exc_value is not None else None)
    with app_context():
        try:
            task = db.session.get(Task, job.id)
            if task is None or task.task_status.finished:
                return
            _fail(task, failure_reason(task.attempts, job.timeout, exc_type, reference))
        except TaskGone:
            db.session.rollback()
        finally:
            db.session.remove()


def on_failure(job: Job, connection: Any, exc_type: type[BaseException] | None,
               exc_value: BaseException | None, traceback: TracebackType | None) -> None:
    """RQ failure callback: mark the task FAILED once no retry is left (RQ calls it for every failed attempt).

    RQ calls it too, with AbandonedJobError, for a job whose worker vanished (StartedJobRegistry.cleanup).
    """
    if job.retries_left:
        logger.warning("task %s: attempt failed (%s: %s); %s retries left", job.id,
                       exc_type.__name__ if exc_type else "error", exc_value, job.retries_left)
        return
    mark_failed(job, exc_type, exc_value, traceback)


def on_work_horse_killed(job: Job, pid: int | None, status: int | None, rusage: Any) -> None:
    """RQ hook for a work horse that died without running the failure callback (killed, out of memory).

    RQ retries the job right after this hook, on the same job object. The backoff is for failing dependencies;
    a horse killed by the OOM killer or an operator is retried at once, so the intervals are dropped from this
    object only (Job.save writes fields with HSET, so the stored intervals stay for later failures).
    """
    overran = _overran_timeout(job)
    if job.retries_left:
        job.retry_intervals = None
        logger.warning("task %s: work horse %s %s (status %s); retrying at once, %s retries left", job.id, pid,
                       "killed past its timeout" if overran else "died", status, job.retries_left)
        return
    logger.error("task %s: work horse %s died (status %s) on the last attempt", job.id, pid, status)
    # A horse that ignored its timeout alarm (stuck in native code) is killed by RQ at the timeout plus 60 s.
    mark_failed(job, JobTimeoutException if overran else None, None)


def _overran_timeout(job: Job) -> bool:
    """Return True when the job ran past its timeout, as a horse that RQ killed for ignoring the alarm did."""
    if not job.timeout or job.timeout < 0 or job.started_at is None:
        return False
    started = job.started_at if job.started_at.tzinfo else job.started_at.replace(tzinfo=timezone.utc)
    return (datetime.now(timezone.utc) - started).total_seconds() > job.timeout


def release_interrupted_task(task_id: str) -> None:
    """Put a task whose attempt a worker's shutdown interrupted back to PENDING, that attempt not counted."""
    with app_context():
        try:
            db.session.execute(
                update(Task)
                .where(Task.id == task_id, Task.status == TaskStatus.PROCESSING.value, Task.attempts > 0)
                .values(status=TaskStatus.PENDING.value, attempts=Task.attempts - 1, progress=0)
                .execution_options(synchronize_session=False)
            )
            db.session.commit()
        except SQLAlchemyError as error:
            db.session.rollback()
            # The attempt then counts; the task itself is not lost, its job is queued again all the same.
            logger.warning("task %s: could not release the interrupted task: %s", task_id, error.__class__.__name__)
        finally:
            db.session.remove()
