"""Task rules shared by the pages and the API: upload, list, find, delete, re-run and serve files."""

from __future__ import annotations

import logging
import unicodedata
import uuid
from datetime import datetime, timezone
from pathlib import PurePosixPath
from typing import Any, Iterable, Mapping

from flask import current_app, redirect, send_file, url_for
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import func, select
from werkzeug.datastructures import FileStorage, MultiDict
from werkzeug.exceptions import NotFound
from werkzeug.utils import secure_filename
from werkzeug.wrappers import Response

from ml.options import ProcessingOptions
from studio.extensions import db
from studio.models import Task, TaskStatus, User, WebhookStatus
from studio.queue import cancel_task_job, enqueue_task
from studio.storage import ObjectNotFound, background_key, get_storage, input_key
from studio.tasks import uploads
from studio.tasks.uploads import CleanPhoto, UploadRejected
from studio.webhooks import check_webhook_url, ensure_secret

logger = logging.getLogger(__name__)

MAX_FILENAME_LENGTH = 120
MAX_PER_PAGE = 100
# Far beyond any real history; a larger page number would overflow the database's OFFSET (a 64-bit integer).
MAX_PAGE = 1_000_000
NOT_FOUND_MESSAGE = "No such task. It may have been deleted, or it belongs to another account."
EXPIRY_BATCH_SIZE = 200
WEBHOOK_FIELD = "webhook_url"
BACKGROUND_FIELD = "bg_image"


def create_task(user: User, upload: FileStorage | None, raw_options: Mapping[str, Any],
                background: CleanPhoto | None = None) -> Task:
    """Validate an uploaded photo and its options, store a clean copy of it, record the task and queue it.

    background is the cleaned image to put behind the cutout (read_background), None for none.
    """
    data = uploads.read_upload(upload, current_app.config.get("MAX_CONTENT_LENGTH"))
    max_pixels = current_app.config["STUDIO_MAX_PIXELS"]
    # The header check first: a decompression bomb is refused before a single pixel is decoded.
    uploads.inspect_upload(data, max_pixels)
    raw_options, webhook_url = _take_webhook_url(raw_options)
    options = parse_options(_with_background_flag(raw_options, background is not None))
    check_unfinished(user.id)
    photo = uploads.clean_photo(data, max_pixels)
    check_quota(user.id, len(photo.data) + (len(background.data) if background else 0))
    task_id = str(uuid.uuid4())
    key = input_key(user.id, task_id, photo.extension)
    storage = get_storage()
    storage.put(key, photo.data, photo.media_type)
    task = Task(
        id=task_id, user_id=user.id, status=TaskStatus.PENDING.value, progress=0, attempts=0,
        model=options.model, options=options.to_dict(), original_filename=display_filename(upload.filename),
        input_key=key, input_content_type=photo.media_type, input_size=len(photo.data),
        input_width=photo.width, input_height=photo.height,
    )
    if background is not None:
        task.background_key = background_key(user.id, task_id, background.extension)
        task.background_size = len(background.data)
        storage.put(task.background_key, background.data, background.media_type)
    if webhook_url:
        task.webhook_url, task.webhook_status = webhook_url, WebhookStatus.PENDING.value
        ensure_secret(user)  # committed with the task: the delivery is signed with it
    _save_and_enqueue(task)
    return task


def read_background(upload: FileStorage | None) -> CleanPhoto:
    """Check and clean an uploaded background image; raise UploadRejected naming bg_image."""
    return uploads.clean_background(upload, current_app.config.get("MAX_CONTENT_LENGTH"),
                                    current_app.config["STUDIO_MAX_PIXELS"])


def _with_background_flag(raw_options: Mapping[str, Any], attached: bool) -> MultiDict:
    """Set the bg_image option from whether an image is attached; the option cannot be typed in."""
    fields = MultiDict(raw_options)
    if fields.poplist(BACKGROUND_FIELD):
        raise UploadRejected(400, "invalid_option", f"{BACKGROUND_FIELD}: send the background as an image file, "
                             "not as a text field.")
    fields[BACKGROUND_FIELD] = "true" if attached else "false"
    return fields


def _take_webhook_url(raw_options: Mapping[str, Any]) -> tuple[MultiDict, str | None]:
    """Split the submitted fields into the processing options and the checked webhook URL (None if not given)."""
    fields = MultiDict(raw_options)
    values = fields.poplist(WEBHOOK_FIELD)
    if len(values) > 1:
        raise UploadRejected(400, "invalid_webhook_url", f"{WEBHOOK_FIELD}: give it once, not {len(values)} times.")
    url = check_webhook_url(values[0] if values else None, current_app.config["STUDIO_WEBHOOK_ALLOW_PRIVATE"])
    return fields, url


def rerun_task(task: Task, raw_options: Mapping[str, Any], keep_background: bool = False) -> Task:
    """Create a new task on the same photo with other options (the files are copied, the old task is kept).

    keep_background keeps the task's background image, if it has one, behind the new cutout.
    """
    kept = keep_background and task.background_key is not None
    options = parse_options(_with_background_flag(raw_options, kept))
    check_unfinished(task.user_id)
    check_quota(task.user_id, task.input_size + (task.background_size if kept else 0))
    new_id = str(uuid.uuid4())
    key = input_key(task.user_id, new_id, PurePosixPath(task.input_key).suffix)
    storage = get_storage()
    new_task = Task(
        id=new_id, user_id=task.user_id, status=TaskStatus.PENDING.value, progress=0, attempts=0,
        model=options.model, options=options.to_dict(), original_filename=task.original_filename,
        input_key=key, input_content_type=task.input_content_type, input_size=task.input_size,
        input_width=task.input_width, input_height=task.input_height,
    )
    copies = [(task.input_key, key, task.input_content_type, "original photo")]
    if kept:
        new_task.background_key = background_key(task.user_id, new_id, PurePosixPath(task.background_key).suffix)
        new_task.background_size = task.background_size
        copies.append((task.background_key, new_task.background_key,
                       uploads.STORED_MEDIA_TYPES[PurePosixPath(task.background_key).suffix], "background image"))
    done: list[str] = []
    for source, target, content_type, what in copies:
        try:
            storage.copy(source, target, content_type)
        except ObjectNotFound:
            _delete_objects(done)
            raise UploadRejected(410, "input_missing", f"The {what} is no longer stored; upload it again.") \
                from None
        done.append(target)
    _save_and_enqueue(new_task)
    return new_task


def parse_options(raw_options: Mapping[str, Any]) -> ProcessingOptions:
    """Validate processing options against the installed models; raise UploadRejected."""
    return uploads.parse_options(raw_options, installed_models(), current_app.config["STUDIO_DEFAULT_MODEL"])


def check_unfinished(user_id: int) -> None:
    """Refuse (429) a new task while the account has STUDIO_MAX_UNFINISHED_TASKS waiting or processing (0: no cap)."""
    cap = current_app.config.get("STUDIO_MAX_UNFINISHED_TASKS") or 0
    if cap <= 0:
        return
    unfinished = db.session.scalar(select(func.count()).select_from(Task).where(
        Task.user_id == user_id, Task.status.in_([TaskStatus.PENDING.value, TaskStatus.PROCESSING.value])))
    if unfinished >= cap:
        raise UploadRejected(429, "too_many_unfinished_tasks",
                             f"You have {unfinished:,} photos waiting or processing, the most an account may have "
                             f"({cap:,}). Wait for some to finish, then upload again.")


def storage_used(user_id: int) -> int:
    """Return the bytes an account's photos and results take in storage."""
    total = db.session.scalar(
        select(func.coalesce(func.sum(Task.input_size + Task.background_size + Task.result_size), 0))
        .where(Task.user_id == user_id))
    return int(total or 0)


def check_quota(user_id: int, extra_bytes: int) -> None:
    """Refuse (413) new bytes that would take the account over STUDIO_USER_QUOTA_BYTES (0: no quota)."""
    quota = current_app.config.get("STUDIO_USER_QUOTA_BYTES") or 0
    if quota <= 0:
        return
    # Lock the account's row until the task is committed, so two parallel uploads cannot both take the last space.
    db.session.execute(select(User.id).where(User.id == user_id).with_for_update())
    used = storage_used(user_id)
    if used + extra_bytes > quota:
        raise UploadRejected(
            413, "quota_exceeded",
            f"Your storage is full: this photo needs {extra_bytes:,} bytes and {max(quota - used, 0):,} of your "
            f"{quota:,} bytes are left. Delete some tasks and try again.",
        )


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


def _save_and_enqueue(task: Task) -> None:
    """Commit the task, then queue it: a worker must never look for a row that is not committed yet."""
    db.session.add(task)
    try:
        db.session.commit()
    except Exception:
        db.session.rollback()
        _delete_objects(list(_stored_keys(task)))
        raise
    logger.info("task %s: created for account %s (model %s)", task.id, task.user_id, task.model)
    enqueue_task(task)


def list_tasks(user: User, page: int, per_page: int | None = None) -> Pagination:
    """Return one page of the account's tasks, newest first."""
    query = select(Task).where(Task.user_id == user.id).order_by(Task.created_at.desc(), Task.id.desc())
    return db.paginate(query, page=min(max(page, 1), MAX_PAGE),
                       per_page=per_page or current_app.config["STUDIO_TASKS_PER_PAGE"],
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
    keys = list(_stored_keys(task))
    task_id = task.id
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
                for key in _stored_keys(task):
                    storage.delete(key)
            except Exception:  # noqa: BLE001 - keep the row, so the next run deletes its files again
                logger.exception("task %s: could not delete its stored files; kept for the next run", task.id)
                kept.add(task.id)
                continue
            db.session.delete(task)
            deleted += 1
        db.session.commit()
        logger.info("deleted %s tasks created before %s", deleted, cutoff.isoformat())


def _stored_keys(task: Task) -> Iterable[str]:
    return [key for key in (task.input_key, task.background_key, task.result_key) if key]


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


def task_fields(task: Task) -> dict[str, Any]:
    """Return what the API and webhooks say about a task, links aside (a worker has no request to build them)."""
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
    }


def webhook_to_dict(task: Task) -> dict[str, Any] | None:
    """Return the state of the task's webhook, None when it has none."""
    if not task.webhook_url:
        return None
    return {
        "url": task.webhook_url,
        "status": task.webhook_status,
        "attempts": task.webhook_attempts,
        "last_response": task.webhook_response,
        "delivered_at": _isoformat(task.webhook_delivered_at),
    }


def task_to_dict(task: Task) -> dict[str, Any]:
    """Return the API representation of a task."""
    has_result = task.task_status is TaskStatus.COMPLETED and bool(task.result_key)
    return {
        **task_fields(task),
        "result_url": url_for("api.task_result", task_id=task.id, _external=True) if has_result else None,
        "webhook": webhook_to_dict(task),
    }
