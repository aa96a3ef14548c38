"""Task rules shared by the pages and the API: upload, re-run, cancel, list, find and delete; data in, data out.

Nothing here answers HTTP (studio/tasks/files.py serves stored files; the views and the API answer requests), so
the jobs and the CLI can use these rules too. Every refusal is an UploadRejected with a status, a code and a
sentence a person can act on.
"""

from __future__ import annotations

import logging
import unicodedata
import uuid
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, Mapping

from flask import current_app
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import NotFound

from ml.operations import DEFAULT_OPERATION, InvalidOptions, Limits, Operation, Options, UnknownOperation, \
    get_operation
from ml.imageio import EXTENSIONS
from ml.registry import available_model_names
from studio import plans
from studio.extensions import db
from studio.models import Task, TaskStatus, User, WebhookStatus, new_task_id
from studio.queue import cancel_task_job, enqueue_task, stop_task_job
from studio.storage import ObjectNotFound, attachment_key, get_storage, input_key, result_key
from studio.tasks import lifecycle, quota, uploads
from studio.tasks.uploads import CleanPhoto, UploadRejected
from studio.webhooks import check_webhook_url, ensure_secret

logger = logging.getLogger(__name__)

MAX_FILENAME_LENGTH = 120
MAX_PER_PAGE = 100
# Far beyond any real history; a larger page number would overflow the database's OFFSET (a 64-bit integer).
MAX_PAGE = 1_000_000
NOT_FOUND_MESSAGE = "No such task. It may have been deleted, or it belongs to another account."
EXPIRY_BATCH_SIZE = 200
OPERATION_FIELD = "operation"
WEBHOOK_FIELD = "webhook_url"
# Fields that are not options of any operation: the photo itself, what to do, whom to tell.
RESERVED_FIELDS = {OPERATION_FIELD, WEBHOOK_FIELD, "image", "photo"}


def operation_named(name: object) -> Operation:
    """Return the operation a request names (remove_background when it names none); 400 for an unknown one."""
    if name is None or name == "":
        return get_operation(DEFAULT_OPERATION)
    try:
        return get_operation(name)
    except UnknownOperation as error:
        raise UploadRejected(400, "invalid_operation", f"operation: {error}.") from None


def installed_models() -> tuple[str, ...]:
    """Return the names of the models whose weights are installed."""
    return available_model_names(current_app.config["STUDIO_MODEL_DIR"])


def parse_options(operation: Operation, fields: Mapping[str, Any], attachments: set[str] | frozenset[str]) -> Options:
    """Validate an operation's options from submitted fields; raise UploadRejected (400, or 503 without models)."""
    fields = dict(fields)
    for attachment in operation.attachments:
        if attachment.name in fields:
            raise UploadRejected(400, "invalid_option", f"{attachment.name}: send it as an image file, not as a "
                                                        "text field.")
    try:
        return operation.parse(fields, models=installed_models(), default_model=current_app.config[
            "STUDIO_DEFAULT_MODEL"], attachments=frozenset(attachments))
    except InvalidOptions as error:
        if error.field == "model" and "is installed" in error.message:
            raise UploadRejected(503, "no_models", "No model for this operation is installed on the server yet; "
                                                   "try again later.") from None
        raise UploadRejected(400, "invalid_option", f"{error.field[:40]}: {error.message}") from None


def limits() -> Limits:
    """Return the operator's limits an operation checks its options against."""
    return Limits.from_config(current_app.config)


def check_for_photo(operation: Operation, options: Options, width: int, height: int) -> None:
    """Refuse (400) options that cannot work on a photo of this size, before anything is stored or run."""
    try:
        operation.check_photo(options, width, height, limits())
    except InvalidOptions as error:
        raise UploadRejected(400, "invalid_option", f"{error.field}: {error.message}") from None


def read_attachments(operation: Operation, files: Mapping[str, FileStorage]) -> dict[str, CleanPhoto]:
    """Check and clean the pictures attached for the operation; refuse unknown, missing or bad ones (naming them)."""
    known = {attachment.name: attachment for attachment in operation.attachments}
    unknown = sorted(set(files) - set(known))
    if unknown:
        raise UploadRejected(400, "invalid_option", f"{unknown[0][:40]}: {operation.name} takes no such file"
                             + (f" (it takes {', '.join(known)})" if known else ""))
    missing = [name for name, attachment in known.items() if attachment.required and name not in files]
    if missing:
        raise UploadRejected(400, "invalid_option", f"{missing[0]}: attach the {known[missing[0]].title.lower()}.")
    config = current_app.config
    return {name: uploads.clean_attachment(name, upload, config.get("MAX_CONTENT_LENGTH"), config["STUDIO_MAX_PIXELS"])
            for name, upload in files.items()}


def create_task(user: User, upload: FileStorage | None, submitted: Mapping[str, Any],
                attachments: Mapping[str, CleanPhoto] | None = None) -> Task:
    """Validate a photo, its operation and options, store clean copies, record the task and queue it.

    attachments are the operation's extra pictures, already cleaned (read_attachments), by name.
    """
    attachments = dict(attachments or {})
    data = uploads.read_upload(upload, current_app.config.get("MAX_CONTENT_LENGTH"))
    max_pixels = current_app.config["STUDIO_MAX_PIXELS"]
    # The header check first: a decompression bomb is refused before a single pixel is decoded.
    header = uploads.inspect_upload(data, max_pixels)
    fields = uploads.option_fields(submitted)
    operation = operation_named(fields.pop(OPERATION_FIELD, None))
    webhook_url = check_webhook_url(fields.pop(WEBHOOK_FIELD, None),
                                    current_app.config["STUDIO_WEBHOOK_ALLOW_PRIVATE"])
    options = parse_options(operation, fields, set(attachments))
    check_for_photo(operation, options, header.width, header.height)
    quota.check_unfinished(user.id)
    plans.check_monthly_limits(user.id, operation.work_pixels(options, header.width, header.height))
    photo = uploads.clean_photo(data, max_pixels)
    task = Task(id=new_task_id(), user_id=user.id, operation=operation.name, model=_model(options),
                options=options.to_dict(), original_filename=display_filename(upload.filename),
                input_content_type=photo.media_type, input_size=len(photo.data), input_width=photo.width,
                input_height=photo.height, input_key="")
    if webhook_url:
        task.webhook_url, task.webhook_status = webhook_url, WebhookStatus.PENDING.value
        ensure_secret(user)  # committed with the task: the delivery is signed with it
    files = [(input_key(user.id, task.id, photo.extension), photo.data, photo.media_type, None)]
    files += [(attachment_key(user.id, task.id, name, clean.extension), clean.data, clean.media_type, name)
              for name, clean in attachments.items()]
    _store_and_queue(task, files)
    return task


def _model(options: Options) -> str:
    return str(getattr(options, "model", "") or "")


def _store_and_queue(task: Task, files: list[tuple[str, bytes, str, str | None]]) -> None:
    """Reserve the bytes, store the files, record the task, then queue it; undo everything if a step fails."""
    size = sum(len(data) for _, data, _, _ in files)
    quota.reserve(task.user_id, size)
    storage, stored = get_storage(), []
    try:
        for key, data, media_type, attachment in files:
            storage.put(key, data, media_type)
            stored.append(key)
            _record_file(task, key, media_type, len(data), attachment)
        lifecycle.created(task)
    except Exception:
        _delete_objects(stored)
        quota.give_back(task.user_id, size)
        db.session.commit()
        raise
    enqueue_task(task)


def _record_file(task: Task, key: str, media_type: str, size: int, attachment: str | None) -> None:
    if attachment is None:
        task.input_key = key
        return
    record = {"key": key, "media_type": media_type, "size": size}
    task.attachments = {**(task.attachments or {}), attachment: record}
    task.attachments_size = (task.attachments_size or 0) + size


def rerun_task(task: Task, submitted: Mapping[str, Any], keep_attachments: bool = False) -> Task:
    """Process the task's photo again, with other options or another operation, as a new task.

    keep_attachments keeps the task's pictures (a background image, say) that the operation also takes.
    """
    fields = uploads.option_fields(submitted)
    operation = operation_named(fields.pop(OPERATION_FIELD, None) or task.operation)
    fields.pop(WEBHOOK_FIELD, None)
    accepted = {attachment.name for attachment in operation.attachments}
    kept = {name: item for name, item in (task.attachments or {}).items() if keep_attachments and name in accepted}
    options = parse_options(operation, fields, set(kept))
    check_for_photo(operation, options, task.input_width, task.input_height)
    quota.check_unfinished(task.user_id)
    plans.check_monthly_limits(task.user_id, operation.work_pixels(options, task.input_width, task.input_height))
    new_id = new_task_id()
    new_task = Task(id=new_id, user_id=task.user_id, operation=operation.name, model=_model(options),
                    options=options.to_dict(), original_filename=task.original_filename,
                    input_key=input_key(task.user_id, new_id, PurePosixPath(task.input_key).suffix),
                    input_content_type=task.input_content_type, input_size=task.input_size,
                    input_width=task.input_width, input_height=task.input_height)
    copies = [(task.input_key, new_task.input_key, task.input_content_type, None)]
    copies += [(item["key"], attachment_key(task.user_id, new_id, name, PurePosixPath(item["key"]).suffix),
                item["media_type"], name) for name, item in kept.items()]
    size = task.input_size + sum(item["size"] for item in kept.values())
    quota.reserve(task.user_id, size)
    storage, done = get_storage(), []
    try:
        for source, target, media_type, attachment in copies:
            try:
                storage.copy(source, target, media_type)
            except ObjectNotFound:
                what = "original photo" if attachment is None else attachment.replace("_", " ")
                raise UploadRejected(410, "input_missing", f"The {what} is no longer stored; upload it again.") \
                    from None
            done.append(target)
            if attachment is not None:
                _record_file(new_task, target, media_type, kept[attachment]["size"], attachment)
        lifecycle.created(new_task)
    except Exception:
        _delete_objects(done)
        quota.give_back(task.user_id, size)
        db.session.commit()
        raise
    enqueue_task(new_task)
    return new_task


def cancel_task(task: Task, reason: str = "Cancelled by its owner.") -> bool:
    """Cancel a waiting or running task; False when it had finished.

    A waiting job is deleted; a running one is stopped through RQ's stop-job command (its work horse killed, the
    job never retried). The photo stays, so the task can be re-run; outputs an interrupted run may have stored are
    deleted (again by the job's stopped callback, once the horse is dead: it may have been writing one just now).
    """
    if not lifecycle.cancelled(task.id, reason):
        return False
    cancel_task_job(task.id)
    stop_task_job(task.id)
    db.session.refresh(task)
    if task.started_at is not None:
        delete_unrecorded_outputs(task)
    return True


def possible_output_keys(task: Task) -> list[str]:
    """Return every key an output of the task could have been stored under (a run stores them before it records
    them, so a run cut short leaves them unrecorded)."""
    try:
        names = [output.name for output in get_operation(task.operation).outputs]
    except UnknownOperation:
        names = ["result"]
    extensions = sorted(set(EXTENSIONS.values()) | {".json"})
    return [result_key(task.user_id, task.id, extension, name) for name in names for extension in extensions]


def delete_unrecorded_outputs(task: Task) -> None:
    """Delete whatever outputs a cancelled task's run stored before it was stopped (a finished run recorded its
    own, and they are the task's until it is deleted)."""
    if task.status == TaskStatus.CANCELLED.value:
        _delete_objects(possible_output_keys(task))


def display_filename(filename: str | None) -> str:
    """Return the uploaded name for display only: the base name, no control characters, length-capped."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(character for character in name if unicodedata.category(character)[0] != "C").strip()
    return name[:MAX_FILENAME_LENGTH]


def list_tasks(user: User, page: int, per_page: int | None = None) -> Pagination:
    """Return one page of the account's tasks, newest first."""
    query = select(Task).where(Task.user_id == user.id).order_by(Task.created_at.desc(), Task.id.desc())
    return db.paginate(query, page=min(max(page, 1), MAX_PAGE),
                       per_page=per_page or current_app.config["STUDIO_TASKS_PER_PAGE"],
                       max_per_page=MAX_PER_PAGE, error_out=False)


def tasks_by_id(user: User, task_ids: list[str]) -> list[Task]:
    """Return the account's tasks among these ids, in the order given; others' and unknown ids are left out."""
    wanted = []
    for task_id in task_ids[:MAX_PER_PAGE]:
        try:
            wanted.append(str(uuid.UUID(task_id)))
        except (ValueError, TypeError, AttributeError):
            continue
    found = {task.id: task for task in db.session.scalars(
        select(Task).where(Task.user_id == user.id, Task.id.in_(wanted)))}
    return [found[task_id] for task_id in wanted if task_id in found]


def get_task(user: User, task_id: str) -> Task:
    """Return the account's task; NotFound for a malformed id, a missing task or another account's task."""
    try:
        canonical = str(uuid.UUID(task_id))
    except (ValueError, TypeError, AttributeError):
        raise NotFound(NOT_FOUND_MESSAGE) from None
    task = db.session.get(Task, canonical)
    if task is None or task.user_id != user.id:
        raise NotFound(NOT_FOUND_MESSAGE)
    return task


def delete_task(task: Task) -> None:
    """Delete the task row and give its bytes back, then delete its files (a running job discards its result)."""
    keys, task_id = task.stored_keys(), task.id
    quota.give_back(task.user_id, task.stored_bytes)
    db.session.delete(task)
    db.session.commit()
    cancel_task_job(task_id)
    _delete_objects(keys)
    logger.info("task %s: deleted with %s stored objects", task_id, len(keys))


def _delete_objects(keys: list[str]) -> None:
    storage = get_storage()
    for key in keys:
        try:
            storage.delete(key)
        except Exception:  # noqa: BLE001 - the row is gone; an orphaned object is logged, not shown as an error
            logger.exception("could not delete stored object %s", key)


def delete_tasks_created_before(cutoff: datetime) -> int:
    """Delete every task created before the cutoff: its files first, then its row; return how many went."""
    storage = get_storage()
    deleted, kept = 0, set()
    while True:
        query = select(Task).where(Task.created_at < cutoff).order_by(Task.created_at).limit(EXPIRY_BATCH_SIZE)
        if kept:
            query = query.where(Task.id.not_in(kept))
        tasks = db.session.scalars(query).all()
        if not tasks:
            return deleted
        for task in tasks:
            try:
                for key in task.stored_keys():
                    storage.delete(key)
            except Exception:  # noqa: BLE001 - keep the row, so the next run deletes its files again
                logger.exception("task %s: could not delete its stored files; kept for the next run", task.id)
                kept.add(task.id)
                continue
            quota.give_back(task.user_id, task.stored_bytes)
            db.session.delete(task)
            deleted += 1
        db.session.commit()
        logger.info("deleted %s tasks created before %s", deleted, cutoff.isoformat())
