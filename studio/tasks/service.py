"""Task rules shared by the pages and the API: upload, list, find, delete, re-run and serve files."""

from __future__ import annotations

import logging
import sys
import unicodedata
import uuid
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any, Mapping

from flask import current_app, redirect, send_file, url_for
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import NotFound
from werkzeug.utils import secure_filename
from werkzeug.wrappers import Response

from ml.imageio import EXTENSIONS, ImageDecodeError, ImageInfo, inspect_image
from ml.options import InvalidOptions, ProcessingOptions
from studio.extensions import db
from studio.models import Task, TaskStatus, User
from studio.queue import enqueue_task
from studio.storage import ObjectNotFound, get_storage, input_key

logger = logging.getLogger(__name__)

MAX_FILENAME_LENGTH = 120
MAX_PER_PAGE = 100
NOT_FOUND_MESSAGE = "No such task. It may have been deleted, or it belongs to another account."


class UploadRejected(Exception):
    """An upload or re-run refused for a reason the user can fix; carries the HTTP status and an error code."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def create_task(user: User, upload: FileStorage | None, raw_options: Mapping[str, Any]) -> Task:
    """Validate an uploaded photo and its options, store the photo, record the task and queue it."""
    data = _read_upload(upload)
    info = _inspect(data)
    options = parse_options(raw_options)
    task_id = str(uuid.uuid4())
    key = input_key(user.id, task_id, EXTENSIONS[info.format.lower()])
    get_storage().put(key, data, info.media_type)
    task = Task(
        id=task_id, user_id=user.id, status=TaskStatus.PENDING.value, progress=0, attempts=0,
        model=options.model, options=options.to_dict(), original_filename=display_filename(upload.filename),
        input_key=key, input_content_type=info.media_type, input_size=len(data),
        input_width=info.width, input_height=info.height,
    )
    _save_and_enqueue(task)
    return task


def rerun_task(task: Task, raw_options: Mapping[str, Any]) -> Task:
    """Create a new task on the same photo with other options (the photo is copied, the old task is kept)."""
    options = parse_options(raw_options)
    new_id = str(uuid.uuid4())
    key = input_key(task.user_id, new_id, PurePosixPath(task.input_key).suffix)
    try:
        get_storage().copy(task.input_key, key, task.input_content_type)
    except ObjectNotFound:
        raise UploadRejected(410, "input_missing", "The original photo is no longer stored; upload it again.") \
            from None
    new_task = Task(
        id=new_id, user_id=task.user_id, status=TaskStatus.PENDING.value, progress=0, attempts=0,
        model=options.model, options=options.to_dict(), original_filename=task.original_filename,
        input_key=key, input_content_type=task.input_content_type, input_size=task.input_size,
        input_width=task.input_width, input_height=task.input_height,
    )
    _save_and_enqueue(new_task)
    return new_task


def parse_options(raw_options: Mapping[str, Any]) -> ProcessingOptions:
    """Validate processing options against the installed models; raise UploadRejected."""
    models = installed_models()
    if not models:
        raise UploadRejected(503, "no_models", "No model is installed on the server yet; try again later.")
    default = current_app.config["STUDIO_DEFAULT_MODEL"]
    try:
        return ProcessingOptions.from_mapping(raw_options, models=models,
                                              default_model=default if default in models else models[0])
    except InvalidOptions as error:
        raise UploadRejected(400, "invalid_option", f"{error.field}: {error.message}") from None


def installed_models() -> tuple[str, ...]:
    """Return the names of the models whose weights are installed."""
    # Imported here: the registry imports torch, which web processes only need once someone uploads.
    from ml.registry import available_model_names

    return available_model_names(current_app.config["STUDIO_MODEL_DIR"])


def display_filename(filename: str | None) -> str:
    """Return the uploaded name for display only: the base name, no control characters, length-capped."""
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join(character for character in name if unicodedata.category(character)[0] != "C").strip()
    return name[:MAX_FILENAME_LENGTH]


def _read_upload(upload: FileStorage | None) -> bytes:
    if upload is None or not upload.filename:
        raise UploadRejected(400, "missing_file", "Attach a photo (a JPEG, PNG or WebP file).")
    limit = current_app.config.get("MAX_CONTENT_LENGTH")
    data = upload.stream.read(limit + 1 if limit else -1)
    if limit and len(data) > limit:
        raise UploadRejected(413, "file_too_large", f"The photo is larger than the limit of {limit:,} bytes.")
    if not data:
        raise UploadRejected(400, "empty_file", "The file is empty; choose a photo.")
    return data


def _inspect(data: bytes) -> ImageInfo:
    """Identify the real format from the bytes (never the filename or the client's content type)."""
    max_pixels = current_app.config["STUDIO_MAX_PIXELS"]
    try:
        return inspect_image(data, max_pixels)
    except ImageDecodeError as error:
        message = _sentence(str(error))
    try:
        inspect_image(data, sys.maxsize)
    except ImageDecodeError:
        raise UploadRejected(415, "unsupported_image", f"{message} Upload a JPEG, PNG or WebP photo.") from None
    raise UploadRejected(400, "too_many_pixels", f"{message} Upload a smaller photo.")


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def _save_and_enqueue(task: Task) -> None:
    """Commit the task, then queue it: a worker must never look for a row that is not committed yet."""
    db.session.add(task)
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        _delete_objects([task.input_key])
        raise
    logger.info("task %s: created for account %s (model %s)", task.id, task.user_id, task.model)
    enqueue_task(task)


def list_tasks(user: User, page: int, per_page: int | None = None) -> Pagination:
    """Return one page of the account's tasks, newest first."""
    query = select(Task).where(Task.user_id == user.id).order_by(Task.created_at.desc(), Task.id.desc())
    return db.paginate(query, page=max(page, 1), per_page=per_page or current_app.config["STUDIO_TASKS_PER_PAGE"],
                       max_per_page=MAX_PER_PAGE, error_out=False)


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
    """Delete the task row, then its stored photo and result (a running job notices and discards its result)."""
    keys = [key for key in (task.input_key, task.result_key) if key]
    task_id = task.id
    db.session.delete(task)
    db.session.commit()
    _delete_objects(keys)
    logger.info("task %s: deleted with %s stored objects", task_id, len(keys))


def _delete_objects(keys: list[str]) -> None:
    storage = get_storage()
    for key in keys:
        try:
            storage.delete(key)
        except Exception:  # noqa: BLE001 - the row is gone; an orphaned object is logged, not shown as an error
            logger.exception("could not delete stored object %s", key)


def result_response(task: Task, *, download: bool) -> Response:
    """Serve the task's result: a redirect to a presigned URL on S3, the file itself on local disk."""
    if task.task_status is not TaskStatus.COMPLETED or not task.result_key:
        raise NotFound("This task has no result yet.")
    filename = download_filename(task, PurePosixPath(task.result_key).suffix)
    return _serve(task.result_key, task.result_content_type or "application/octet-stream", filename, download)


def input_response(task: Task) -> Response:
    """Serve the uploaded photo (for the before/after view), by the same rules as the result."""
    filename = download_filename(task, PurePosixPath(task.input_key).suffix)
    return _serve(task.input_key, task.input_content_type, filename, download=False)


def download_filename(task: Task, extension: str) -> str:
    """Return a safe ASCII filename like 'holiday.png' built from the uploaded name."""
    stem = secure_filename(PurePosixPath(task.original_filename or "").stem)[:80] or "photo"
    return f"{stem}{extension}"


def _serve(key: str, content_type: str, filename: str, download: bool) -> Response:
    storage = get_storage()
    url = storage.presigned_url(key, filename=filename, content_type=content_type, download=download)
    if url is not None:
        response = redirect(url, 302)
    else:
        try:
            stream = storage.open(key)
        except ObjectNotFound:
            raise NotFound("The file is no longer stored.") from None
        response = send_file(stream, mimetype=content_type, as_attachment=download, download_name=filename,
                             etag=False, conditional=False, max_age=0)
        response.headers["X-Content-Type-Options"] = "nosniff"
    # Private photos: no shared cache may keep them, and a presigned URL expires anyway.
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _isoformat(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    if moment.tzinfo is None:
        # SQLite drops the zone; every time we store is UTC.
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.isoformat()


def task_to_dict(task: Task) -> dict[str, Any]:
    """Return the API representation of a task."""
    has_result = task.task_status is TaskStatus.COMPLETED and bool(task.result_key)
    return {
        "id": task.id,
        "status": task.status,
        "progress": task.progress,
        "error": task.error,
        "model": task.model,
        "options": task.options,
        "original_filename": task.original_filename,
        "created_at": _isoformat(task.created_at),
        "started_at": _isoformat(task.started_at),
        "finished_at": _isoformat(task.finished_at),
        "attempts": task.attempts,
        "result_url": url_for("api.task_result", task_id=task.id, _external=True) if has_result else None,
    }
