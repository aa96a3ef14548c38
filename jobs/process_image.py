"""The processing job: load the task, run its operation on its photo, store what it returns, record the outcome.

Generic: it knows no operation. The declaration (ml/operations) says how to validate the stored options and what
to run; the outputs go to storage under deterministic keys (a rerun overwrites them); the lifecycle
(studio/tasks/lifecycle.py) records every status change. Exceptions other than bad input propagate, so RQ's Retry
and failure callback apply.
"""

from __future__ import annotations

import logging
import secrets
import time
from datetime import datetime, timezone
from types import TracebackType
from typing import Any

from flask import current_app
from rq import get_current_job
from rq.exceptions import AbandonedJobError
from rq.job import Job
from rq.timeouts import JobTimeoutException
from sqlalchemy.exc import InvalidRequestError, SQLAlchemyError

from jobs import faults
from jobs.context import app_context
from jobs.heartbeat import Heartbeat
from jobs.progress import ProgressReporter, TaskStopped
from ml.imageio import ImageDecodeError
from ml.operations import InvalidOptions, Limits, Operation, Options, UnknownOperation, get_operation
from ml.runner import EncodedOutput, OperationFailed, process
from studio import logs, metrics
from studio.extensions import db
from studio.models import Task, TaskStatus
from studio.storage import ObjectNotFound, get_storage, result_key
from studio.tasks import cleaning, duplicates, lifecycle, remote, thumbnails
from studio.tasks.lifecycle import StoredOutput
from studio.tasks.service import delete_unrecorded_outputs

logger = logging.getLogger(__name__)

# A job whose worker was killed (the OOM killer, an operator, a lost machine) is retried this many times at most,
# whatever STUDIO_JOB_RETRIES says: a photo that needs more memory than a worker has kills one worker per attempt.
KILLED_RETRIES = 1
# job.meta's count of the attempts whose worker was killed.
_KILLS = "worker_kills"


class PermanentFailure(Exception):
    """A failure that no retry can fix (a bad photo, bad options, a missing input): fail the task now."""


class WorkerKilledAgain(Exception):
    """The job's worker was killed on more than KILLED_RETRIES + 1 attempts (the OOM killer, most often)."""


def process_task(task_id: str) -> None:
    """Process one task by id; a no-op for a deleted, finished or cancelled task, idempotent otherwise."""
    job = get_current_job()
    # Every line logged for this job carries the task id and the id of the request that uploaded the photo.
    with app_context(), logs.bind(request_id=job.meta.get("request_id") if job else None, task_id=task_id):
        try:
            _process(task_id)
        except TaskStopped:
            db.session.rollback()
            logger.info("task %s: cancelled or deleted while processing; stopped", task_id)
        finally:
            db.session.remove()


def _process(task_id: str) -> None:
    task = lifecycle.started(task_id)
    if task is None:
        _clean_cancelled(task_id)
        return
    logger.info("task %s: processing %s (attempt %s, model %s)", task.id, task.operation, task.attempts,
                task.model or "none")
    config = current_app.config
    # The progress reporter's first report is written at once: the page says what the job does from its start.
    with Heartbeat(db.engine, task.id, config["STUDIO_HEARTBEAT_SECONDS"]), \
            ProgressReporter(db.engine, task.id, task.progress) as progress:
        try:
            faults.before_processing(task)
            _say_cleaning(progress)
            # Photos given by URL are fetched and checked as uploads first (studio/tasks/remote.py).
            refused = _fetch_inputs(task, config)
            # The uploads become clean copies before anything else reads them; the web request decoded nothing.
            refused = refused or _clean_inputs(task, _titles(task))
            if refused is not None:
                raise PermanentFailure(refused)
            operation, options = _operation(task)
            photo, attachments = _input(task), _attachments(task, operation)
            duplicate_key = duplicates.duplicate_key(task, photo, attachments)
            if config["STUDIO_REUSE_DUPLICATES"] and _reused(task, duplicate_key):
                return
            running = time.perf_counter()
            outputs = process(
                operation, photo, options, model_dir=config["STUDIO_MODEL_DIR"],
                limits=Limits.from_config(config),
                attachments=attachments, progress=progress,
                png_compress_level=config["STUDIO_PNG_COMPRESS_LEVEL"])
        except (ImageDecodeError, InvalidOptions, OperationFailed, PermanentFailure) as error:
            reason = _reason(error)
            lifecycle.failed(task.id, reason)
            logger.warning("task %s: failed permanently, no retry: %s", task.id, reason)
            return
    metrics.inference_seconds(task.operation, task.model, time.perf_counter() - running)
    _finish(task, operation, outputs, photo, duplicate_key)


def _say_cleaning(progress: ProgressReporter) -> None:
    """Report the first stage; a task cancelled meanwhile still has its upload cleaned (the next report stops)."""
    try:
        progress(0, "cleaning the photo")
    except TaskStopped:
        pass


def _fetch_inputs(task: Task, config: Any) -> str | None:
    """Fetch the photo and attachments given by URL; return why they are refused (nothing then stored)."""
    try:
        return remote.fetch_inputs(task, config)
    except remote.TaskGone:
        raise TaskStopped() from None


def _reused(task: Task, key: str) -> bool:
    """Complete the task with the outputs of the account's earlier duplicate, if there is one; True if it did."""
    original = duplicates.earlier_duplicate(task, key)
    if original is None:
        db.session.rollback()  # ends the lookup's transaction
        # ... which expired the task: load it again now, while its row is there, since a delete during the run
        # must leave this job able to read it and find the task gone when it finishes.
        try:
            db.session.refresh(task)
        except InvalidRequestError:
            raise TaskStopped() from None
        return False
    if not lifecycle.reused(task.id, task.user_id, original, key):
        raise TaskStopped()
    logger.info("task %s: completed by reusing the outputs of task %s (a duplicate; no model run)", task.id,
                original.reused_from or original.id)
    return True


def _clean_inputs(task: Task, titles: dict[str, str] | None = None) -> str | None:
    """Replace the task's uploads by clean copies; return why they cannot be (the uploads then deleted)."""
    try:
        return cleaning.clean_or_discard(task, current_app.config["STUDIO_MAX_PIXELS"], titles)
    except cleaning.TaskGone:
        raise TaskStopped() from None


def clean_cancelled_task(task_id: str) -> None:
    """Clean the uploads of a task cancelled before its job ran (the cleaning job that cancel_task queues)."""
    job = get_current_job()
    with app_context(), logs.bind(request_id=job.meta.get("request_id") if job else None, task_id=task_id):
        try:
            _clean_cancelled(task_id)
        except TaskStopped:
            db.session.rollback()
            logger.info("task %s: deleted while its upload was cleaned", task_id)
        finally:
            db.session.remove()


def on_cleaning_failed(job: Job, connection: Any, exc_type: type[BaseException] | None,
                       exc_value: BaseException | None, traceback: TracebackType | None) -> None:
    """RQ failure callback of the cleaning job: after its last attempt, delete the upload it could not clean."""
    logger.warning("task %s: cleaning its upload failed (%s: %s); %s retries left", job.args[0] if job.args else "?",
                   exc_type.__name__ if exc_type else "error", exc_value, job.retries_left or 0)
    if not job.retries_left and job.args:
        _discard_uncleaned(job.args[0])


def _clean_cancelled(task_id: str) -> None:
    """Clean the uploads of a finished task whose job never cleaned them (cancelled before it ran)."""
    task = db.session.get(Task, task_id)
    if task is None or task.inputs_clean:
        logger.info("task %s: deleted, finished or cancelled; nothing to do", task_id)
        return
    if not task.input_key:
        # Given by URL and never fetched: only attached files were stored, and nothing will use them now.
        cleaning.discard_uncleaned(task_id)
        return
    logger.info("task %s: %s before its photo was cleaned; cleaning it", task_id, task.status.lower())
    _clean_inputs(task)


def _discard_uncleaned(task_id: str) -> None:
    """Delete the uploads of a task that ends before its job cleaned them (callbacks: the database or the storage
    may be why the job failed, so a failure here is logged and the retention deletes them later)."""
    try:
        with app_context():
            try:
                cleaning.discard_uncleaned(task_id)
            finally:
                db.session.remove()
    except Exception:  # noqa: BLE001 - a callback must not fail the worker
        logger.exception("task %s: could not delete its uncleaned upload", task_id)


def _reason(error: Exception) -> str:
    if isinstance(error, ImageDecodeError):
        return f"The photo could not be read: {error}"
    if isinstance(error, InvalidOptions):
        return f"The processing options are not valid: {error}"
    return str(error)


def _operation(task: Task) -> tuple[Operation, Options]:
    try:
        operation = get_operation(task.operation)
    except UnknownOperation as error:
        raise PermanentFailure(f"This server does not offer that operation: {error}.") from None
    return operation, operation.restore(task.options or {})


def _input(task: Task) -> bytes:
    try:
        return get_storage().get(task.input_key)
    except ObjectNotFound:
        raise PermanentFailure("The uploaded photo is no longer in storage; upload it again.") from None


def _titles(task: Task) -> dict[str, str]:
    """Return what the task's operation calls each attachment, for the reasons a person reads."""
    try:
        return {attachment.name: attachment.title.lower() for attachment in get_operation(task.operation).attachments}
    except UnknownOperation:
        return {}


def _attachments(task: Task, operation: Operation) -> dict[str, bytes]:
    """Return the stored pictures attached to the task, by name."""
    titles = {attachment.name: attachment.title.lower() for attachment in operation.attachments}
    attachments = {}
    for name, record in (task.attachments or {}).items():
        try:
            attachments[name] = get_storage().get(record["key"])
        except ObjectNotFound:
            what = titles.get(name, name.replace("_", " "))
            raise PermanentFailure(f"The {what} is no longer in storage; upload it again.") from None
    return attachments


def _finish(task: Task, operation: Operation, outputs: list[EncodedOutput], photo: bytes,
            duplicate_key: str | None = None) -> None:
    """Store every output and the thumbnails, then record the task COMPLETED; a task gone meanwhile has them
    deleted."""
    main = next((output for output in outputs if output.name == operation.result.name), None)
    if main is None:
        raise RuntimeError(f"the run returned no {operation.result.name}")
    storage, stored = get_storage(), {}
    for output in outputs:
        key = result_key(task.user_id, task.id, output.extension, output.name)
        storage.put(key, output.data, output.media_type)
        stored[output.name] = StoredOutput(key, output.media_type, len(output.data))
    faults.after_store(task)
    pictured = thumbnails.result_source({name: output.to_dict() for name, output in stored.items()})
    made = thumbnails.store(task.user_id, task.id, {
        "input": photo, "result": next((output.data for output in outputs if output.name == pictured), None)})
    if not lifecycle.completed(task.id, task.user_id, stored, output_pixels=main.pixels, thumbnails=made,
                               duplicate_key=duplicate_key):
        for key in [output.key for output in stored.values()] + [item["key"] for item in made.values() if item]:
            storage.delete(key)
        raise TaskStopped()
    others = [name for name in stored if name != main.name]
    logger.info("task %s: completed (%s, %s bytes%s)", task.id, main.media_type, len(main.data),
                f", and {', '.join(others)}" if others else "")


def failure_reason(attempts: int, timeout: int | None, exc_type: type[BaseException] | None,
                   reference: str) -> str:
    """Return the message a user sees when every attempt failed: readable, and no internals.

    The exception text of an unexpected error may hold paths, hosts or SQL: it goes to the log under the
    reference, and the user sees only the reference.
    """
    if exc_type is not None and issubclass(exc_type, JobTimeoutException):
        cause = f"it took longer than {timeout} seconds"
    elif exc_type is not None and issubclass(exc_type, WorkerKilledAgain):
        cause = "its worker was killed each time, most likely because the photo needed more memory than a worker has"
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
    record_failure(job.id, job.timeout, exc_type, reference)


def record_failure(task_id: str, timeout: int | None, exc_type: type[BaseException] | None,
                   reference: str) -> bool:
    """Mark the task FAILED with the reason its last attempt gives (failure_reason), unless it finished already;
    return True if it was unfinished. Its upload, if never cleaned, is deleted then: no job is left to clean it.

    The tail of every queue's last failed attempt: RQ's callbacks (mark_failed) and the SQS job (jobs/sqs_job.py).
    """
    with app_context():
        try:
            task = db.session.get(Task, task_id)
            if task is None or task.task_status.finished:
                return False
            lifecycle.failed(task.id, failure_reason(task.attempts, timeout, exc_type, reference))
        finally:
            db.session.remove()
    _discard_uncleaned(task_id)
    return True


def on_failure(job: Job, connection: Any, exc_type: type[BaseException] | None,
               exc_value: BaseException | None, traceback: TracebackType | None) -> None:
    """RQ failure callback: mark the task FAILED once no retry is left (RQ calls it for every failed attempt).

    RQ calls it too, with AbandonedJobError, for a job whose worker vanished (StartedJobRegistry.cleanup).
    """
    if _cancelled_or_gone(job):
        _discard_uncleaned(job.id)
        return
    if exc_type is not None and issubclass(exc_type, JobTimeoutException):
        job.retries_left = 0  # a photo that ran out of time once would again: its next attempt only costs a worker
    elif exc_type is not None and issubclass(exc_type, AbandonedJobError):
        # Its worker was killed: retried at once, as a killed horse's job is (on_work_horse_killed), once at most.
        if _killed_again(job):
            exc_type, exc_value = WorkerKilledAgain, None
        else:
            job.retry_intervals = None
    if job.retries_left:
        logger.warning("task %s: attempt failed (%s: %s); %s retries left", job.id,
                       exc_type.__name__ if exc_type else "error", exc_value, job.retries_left)
        count_retry(job.id)
        return
    mark_failed(job, exc_type, exc_value, traceback)


def on_work_horse_killed(job: Job, pid: int | None, status: int | None, rusage: Any) -> None:
    """RQ hook for a work horse that died without running the failure callback (killed, out of memory).

    RQ retries the job right after this hook, on the same job object. The backoff is for failing dependencies;
    a horse killed by the OOM killer or an operator is retried at once, so the intervals are dropped from this
    object only (Job.save writes fields with HSET, so the stored intervals stay for later failures). It is retried
    KILLED_RETRIES times at most, and a horse killed past its timeout not at all.
    """
    overran = _overran_timeout(job)
    if _cancelled_or_gone(job):
        _discard_uncleaned(job.id)
        return
    if overran:
        # A horse that ignored its timeout alarm (stuck in native code), killed by RQ at the timeout plus 60 s: a
        # timed-out job is never retried.
        job.retries_left = 0
        logger.error("task %s: work horse %s killed past its timeout (status %s); not retried", job.id, pid, status)
        mark_failed(job, JobTimeoutException, None)
        return
    if _killed_again(job):
        logger.error("task %s: work horse %s killed (status %s) again; not retried", job.id, pid, status)
        mark_failed(job, WorkerKilledAgain, None)
        return
    if job.retries_left:
        job.retry_intervals = None
        count_retry(job.id)
        logger.warning("task %s: work horse %s died (status %s); retrying at once, %s retries left", job.id, pid,
                       status, job.retries_left)
        return
    logger.error("task %s: work horse %s died (status %s) on the last attempt", job.id, pid, status)
    mark_failed(job, None, None)


def _killed_again(job: Job) -> bool:
    """Count an attempt whose worker was killed; return True, and take the job's retries away, past KILLED_RETRIES.

    The count lives in job.meta, which RQ keeps across the job's attempts.
    """
    kills = int(job.meta.get(_KILLS, 0)) + 1
    job.meta[_KILLS] = kills
    try:
        job.save_meta()
    except Exception:  # noqa: BLE001 - Redis may be why the worker died: the retry below is bounded all the same
        logger.warning("task %s: could not record that its worker was killed", job.id)
    if kills <= KILLED_RETRIES:
        return False
    job.retries_left = 0
    return True


def _cancelled_or_gone(job: Job) -> bool:
    """Return True, and take the job's retries away, when its task was cancelled or deleted: nothing is left to do.

    RQ calls the failure callback and the work-horse-killed hook before it decides on a retry, with the same job
    object, so no retry is scheduled then. (A job stopped through RQ's stop-job command reaches neither: RQ marks
    it STOPPED, never retried, and calls on_stopped instead.)
    """
    try:
        with app_context():
            task = db.session.get(Task, job.id)
            finished = task is None or task.task_status == TaskStatus.CANCELLED
            db.session.remove()
    except Exception:  # noqa: BLE001 - the database may be the reason the attempt failed: carry on as usual
        return False
    if finished:
        job.retries_left = 0
        logger.info("task %s: cancelled or deleted; its job is not retried", job.id)
    return finished


def on_stopped(job: Job, connection: Any) -> None:
    """RQ stopped callback, run by the worker once it has killed the work horse of a stopped job.

    The task was cancelled before the stop was sent (studio.tasks.service.cancel_task); the horse may have stored
    an output just before it died, so the outputs it could have stored are deleted now that nothing writes them.
    A job stopped some other way (an operator's rq command) cancels its task, so the task does not hang PROCESSING.
    """
    with app_context(), logs.bind(task_id=job.id):
        try:
            task = db.session.get(Task, job.id)
            if task is None:
                return
            if not task.task_status.finished:
                lifecycle.cancelled(task.id, "Stopped by an administrator.")
                db.session.refresh(task)
            delete_unrecorded_outputs(task)
            logger.info("task %s: its job was stopped; the task is %s", task.id, task.status)
        finally:
            db.session.remove()
    _discard_uncleaned(job.id)


def count_retry(task_id: str) -> None:
    """Count a retry under its task's operation (a metric: never worth failing the callback for)."""
    try:
        with app_context():
            task = db.session.get(Task, task_id)
            metrics.job_retried(task.operation if task else "unknown")
            db.session.remove()
    except Exception:  # noqa: BLE001 - the database may be the reason the attempt failed
        metrics.job_retried("unknown")


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
            lifecycle.released(task_id)
        except SQLAlchemyError as error:
            # The attempt then counts; the task itself is not lost, its job is queued again all the same.
            logger.warning("task %s: could not release the interrupted task: %s", task_id, error.__class__.__name__)
        finally:
            db.session.remove()
