"""Task rules shared by the pages and the API: upload, re-run, cancel, list, find and delete; data in, data out.

Nothing here answers HTTP (studio/tasks/files.py serves stored files; the views and the API answer requests), so
the jobs and the CLI can use these rules too. Every refusal is an UploadRejected with a status, a code and a
sentence a person can act on.
"""

from __future__ import annotations

import io
import logging
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any, Mapping, TypeVar

from flask import current_app
from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import select
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import NotFound

from ml.operations import DEFAULT_OPERATION, InvalidOptions, Limits, ModelNotInstalled, Operation, Options, \
    UnknownOperation, get_operation
from ml.imageio import EXTENSIONS
from ml.registry import available_model_names
from studio import plans
from studio.extensions import db
from studio.models import Batch, Task, TaskStatus, User, WebhookStatus, new_task_id
from studio.queue import cancel_task_job, enqueue_cleaning, enqueue_task, stop_task_job
from studio.storage import ObjectNotFound, attachment_key, get_storage, input_key, result_key
from studio.tasks import duplicates, lifecycle, quota, remote, uploads
from studio.tasks.remote import RemotePhoto
from studio.tasks.representation import picture_result
from studio.tasks.uploads import AcceptedPhoto, UploadRejected
from studio.webhooks import check_webhook_url, ensure_secret

logger = logging.getLogger(__name__)

MAX_FILENAME_LENGTH = 120
MAX_PER_PAGE = 100
# Far beyond any real history; a larger page number would overflow the database's OFFSET (a 64-bit integer).
MAX_PAGE = 1_000_000
# What the account can own and find by id.
Owned = TypeVar("Owned", Task, Batch)
NOT_FOUND_MESSAGE = "No such task. It may have been deleted, or it belongs to another account."
EXPIRY_BATCH_SIZE = 200
OPERATION_FIELD = "operation"
WEBHOOK_FIELD = "webhook_url"
# Fields that are not options of any operation: the photo itself, what to do, whom to tell.
RESERVED_FIELDS = {OPERATION_FIELD, WEBHOOK_FIELD, "image", "photo", remote.IMAGE_URL_FIELD}
# What create_task takes as the photo: an uploaded file, or a URL the worker fetches.
PhotoSource = FileStorage | RemotePhoto
# What ?download= says "save it as a file" with, on the pages and in the API alike.
DOWNLOAD_VALUES = ("1", "true")


@dataclass(frozen=True)
class UploadRequest:
    """What an upload or a re-run asks for, validated once: the operation, its options, whom to tell when it is
    done, and the extra pictures it takes, checked from their headers."""

    operation: Operation
    options: Options
    webhook_url: str | None = None
    attachments: Mapping[str, AcceptedPhoto] = field(default_factory=dict)
    # Attachments given by URL (bg_image_url), by attachment name: the worker fetches them.
    attachment_urls: Mapping[str, str] = field(default_factory=dict)

    @property
    def model(self) -> str:
        """Return the model the options chose, or "" for an operation without one."""
        return str(getattr(self.options, "model", "") or "")


@dataclass(frozen=True)
class _File:
    """A file a new task stores: new bytes (data) or a copy of a stored object (source)."""

    key: str
    media_type: str
    size: int
    attachment: str | None = None
    data: bytes | None = None
    source: str | None = None


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


def limits(config: Mapping[str, Any] | None = None) -> Limits:
    """Return the operator's limits an operation checks its options and its work against (the app's by default)."""
    return Limits.from_config(current_app.config if config is None else config)


def parse_upload(submitted: Mapping[str, Any], files: Mapping[str, FileStorage]) -> UploadRequest:
    """Validate an upload's fields and extra pictures once, for every photo it carries; raise UploadRejected.

    submitted holds the text fields (the operation, its options, webhook_url); files the file fields besides the
    photo, which the operation must take.
    """
    fields = uploads.option_fields(submitted)
    fields.pop(remote.IMAGE_URL_FIELD, None)  # the photo itself: photo_source reads it
    operation = operation_named(fields.pop(OPERATION_FIELD, None))
    webhook_url = check_webhook_url(fields.pop(WEBHOOK_FIELD, None),
                                    current_app.config["STUDIO_WEBHOOK_ALLOW_PRIVATE"])
    urls = _attachment_urls(operation, fields, files)
    check_attached_names(operation, files, set(urls))
    # The options before the pictures: a refused request decodes nothing.
    options = parse_options(operation, fields, set(files) | set(urls))
    return UploadRequest(operation, options, webhook_url, _accept_attachments(files), urls)


def photo_source(submitted: Mapping[str, Any], upload: FileStorage | None) -> PhotoSource:
    """Return the photo a request gives: its file, or the URL in its image_url field (not both); 400 otherwise."""
    value = submitted.get(remote.IMAGE_URL_FIELD)
    if value in (None, ""):
        if upload is None or not upload.filename:
            raise UploadRejected(400, "missing_file", "Attach the photo as a file field named image, or give its "
                                 "URL in image_url (a JPEG, PNG or WebP photo).")
        return upload
    if upload is not None and upload.filename:
        raise UploadRejected(400, "invalid_url", "image_url: send the photo as a file or as a URL, not both.")
    return remote.remote_photo(value, current_app.config["STUDIO_IMAGE_URL_ALLOW_PRIVATE"])


def _attachment_urls(operation: Operation, fields: dict[str, Any], files: Mapping[str, FileStorage]) -> dict[str, str]:
    """Take the attachments given by URL (bg_image_url) out of the fields; a refusal names the field."""
    urls = {}
    for attachment in operation.attachments:
        name = remote.field_name(attachment.name)
        value = fields.pop(name, None)
        if value in (None, ""):
            continue
        if attachment.name in files:
            raise UploadRejected(400, "invalid_url", f"{name}: send the {attachment.title.lower()} as a file or "
                                                     "as a URL, not both.")
        urls[attachment.name] = remote.check_photo_url(value, name,
                                                       current_app.config["STUDIO_IMAGE_URL_ALLOW_PRIVATE"])
    return urls


def parse_options(operation: Operation, fields: Mapping[str, Any], attachments: set[str] | frozenset[str]) -> Options:
    """Validate an operation's options from submitted fields; raise UploadRejected (400, or 503 without models)."""
    fields = dict(fields)
    for attachment in operation.attachments:
        if attachment.name in fields:
            raise UploadRejected.about(attachment.name, "send it as an image file, not as a text field.")
    try:
        return operation.parse(fields, models=installed_models(), default_model=current_app.config[
            "STUDIO_DEFAULT_MODEL"], attachments=frozenset(attachments))
    except ModelNotInstalled:
        raise UploadRejected(503, "no_models", "No model for this operation is installed on the server yet; "
                                               "try again later.") from None
    except InvalidOptions as error:
        raise UploadRejected.about(error.field[:40], error.message) from None


def check_for_photo(request: UploadRequest, width: int, height: int) -> None:
    """Refuse (400) options that cannot work on a photo of this size, before anything is stored or run."""
    try:
        request.operation.check_photo(request.options, width, height, limits())
    except InvalidOptions as error:
        raise UploadRejected.about(error.field, error.message) from None


def check_attached_names(operation: Operation, files: Mapping[str, FileStorage],
                         by_url: set[str] | frozenset[str] = frozenset()) -> None:
    """Refuse file fields the operation does not take, and pictures it needs that are missing (naming them);
    by_url: the attachments given by URL."""
    known = {attachment.name: attachment for attachment in operation.attachments}
    unknown = sorted(set(files) - set(known))
    if unknown:
        raise UploadRejected.about(unknown[0][:40], f"{operation.name} takes no such file"
                                   + (f" (it takes {', '.join(known)})" if known else ""))
    missing = [name for name, attachment in known.items()
               if attachment.required and name not in files and name not in by_url]
    if missing:
        raise UploadRejected.about(missing[0], f"attach the {known[missing[0]].title.lower()}.")


def _accept_attachments(files: Mapping[str, FileStorage]) -> dict[str, AcceptedPhoto]:
    """Check the attached pictures' headers by the photo's rules; a refusal names the field."""
    config = current_app.config
    return {name: uploads.accept_attachment(name, upload, config.get("MAX_CONTENT_LENGTH"),
                                            config["STUDIO_MAX_PIXELS"])
            for name, upload in files.items()}


def create_task(user: User, source: PhotoSource | None, request: UploadRequest) -> Task:
    """Check a photo's header against a validated request, store the upload, record the task and queue it.

    source: the uploaded file, or a RemotePhoto (photo_source) that the worker fetches and checks as an upload
    (studio/tasks/remote.py); attachments given by URL are fetched there too. No pixel is decoded here: the job
    replaces the stored photo and attachments by their clean copies before its operation runs
    (studio/tasks/cleaning.py).
    """
    if isinstance(source, RemotePhoto):
        # What needs the photo's size (its pixels, the plan's megapixels, the storage) is checked by the worker.
        quota.check_unfinished(user.id)
        plans.check_monthly_limits(user.id, 0)
        task = _new_task(user.id, request, display_filename(source.filename), "", 0, 0, 0)
        files = []
    else:
        data = uploads.read_upload(source, current_app.config.get("MAX_CONTENT_LENGTH"))
        photo = uploads.accept_photo(data, current_app.config["STUDIO_MAX_PIXELS"])
        _check_allowed(user.id, request, photo.width, photo.height)
        task = _new_task(user.id, request, display_filename(source.filename), photo.media_type, len(photo.data),
                         photo.width, photo.height)
        files = [_File(input_key(user.id, task.id, photo.extension), photo.media_type, len(photo.data),
                       data=photo.data)]
    urls = {name: url for name, url in request.attachment_urls.items()}
    if isinstance(source, RemotePhoto):
        urls[remote.PHOTO] = source.url
    task.source_urls = urls or None
    if request.webhook_url:
        task.webhook_url, task.webhook_status = request.webhook_url, WebhookStatus.PENDING.value
        ensure_secret(user)  # committed with the task: the delivery is signed with it
    files += [_File(attachment_key(user.id, task.id, name, clean.extension), clean.media_type, len(clean.data), name,
                    data=clean.data) for name, clean in request.attachments.items()]
    # Nothing stored yet is nothing to clean: what the worker fetches is recorded uncleaned when it is stored.
    task.inputs_clean = not files
    _store_and_queue(task, files)
    return task


def prepare_task(user: User, request: UploadRequest, filename: str | None, photo: AcceptedPhoto) -> \
        tuple[Task, list[_File]]:
    """Return a new task for a photo already checked against the request, and the files it will store (the photo,
    its own copy of each attachment); nothing is stored or recorded yet (a batch stores many, then records all)."""
    task = _new_task(user.id, request, display_filename(filename), photo.media_type, len(photo.data), photo.width,
                     photo.height)
    task.inputs_clean = False
    if request.webhook_url:
        task.webhook_url, task.webhook_status = request.webhook_url, WebhookStatus.PENDING.value
        ensure_secret(user)
    files = [_File(input_key(user.id, task.id, photo.extension), photo.media_type, len(photo.data), data=photo.data)]
    files += [_File(attachment_key(user.id, task.id, name, clean.extension), clean.media_type, len(clean.data), name,
                    data=clean.data) for name, clean in request.attachments.items()]
    return task, files


def store_task_files(task: Task, files: list[_File], stored: list[str]) -> None:
    """Store a prepared task's files and record their keys on it, adding each stored key to stored (so a caller
    can delete them all if a later step fails)."""
    for file in files:
        _store(file)
        stored.append(file.key)
        _record_file(task, file)


def delete_objects(keys: list[str]) -> None:
    """Delete stored objects, logging (not raising) those that cannot be deleted."""
    _delete_objects(keys)


def rerun_task(task: Task, submitted: Mapping[str, Any], keep_attachments: bool = False) -> Task:
    """Process the task's photo again, with other options or another operation, as a new task.

    keep_attachments keeps the task's pictures (a background image, say) that the operation also takes.
    """
    if not task.input_key:
        raise UploadRejected(410, "input_missing", "This task has no stored photo (its URL was never fetched); "
                                                   "upload the photo again.")
    fields = uploads.option_fields(submitted)
    operation = operation_named(fields.pop(OPERATION_FIELD, None) or task.operation)
    fields.pop(WEBHOOK_FIELD, None)
    accepted = {attachment.name for attachment in operation.attachments}
    kept = {name: item for name, item in (task.attachments or {}).items() if keep_attachments and name in accepted}
    request = UploadRequest(operation, parse_options(operation, fields, set(kept)))
    _check_allowed(task.user_id, request, task.input_width, task.input_height)
    new_task = _new_task(task.user_id, request, task.original_filename, task.input_content_type, task.input_size,
                         task.input_width, task.input_height)
    # A copy of a photo whose job has not cleaned it yet is cleaned by the new task's own job.
    new_task.inputs_clean = task.inputs_clean
    files = [_File(input_key(task.user_id, new_task.id, PurePosixPath(task.input_key).suffix),
                   task.input_content_type, task.input_size, source=task.input_key)]
    files += [_File(attachment_key(task.user_id, new_task.id, name, PurePosixPath(item["key"]).suffix),
                    item["media_type"], item["size"], name, source=item["key"]) for name, item in kept.items()]
    _store_and_queue(new_task, files)
    return new_task


def result_as_upload(task: Task) -> FileStorage:
    """Return a completed task's picture result as an upload, so it becomes the photo of a new task by the same
    checks, quotas and life as any upload; UploadRejected when there is no picture to use (409) or it is gone."""
    record = picture_result(task)
    if record is None:
        raise UploadRejected(409, "no_picture_result", "This task has no picture result to use as a photo.")
    max_bytes = current_app.config.get("MAX_CONTENT_LENGTH")
    if max_bytes and record["size"] > max_bytes:
        # Refused before it is read: an upscaled result can be many times the size of any upload.
        raise UploadRejected(413, "file_too_large", f"The result is larger than the limit of {max_bytes:,} bytes "
                                                    "for a photo.")
    try:
        data = get_storage().get(record["key"])
    except ObjectNotFound:
        raise UploadRejected(410, "input_missing", "The result is no longer stored; process the photo again.") \
            from None
    stem = PurePosixPath(task.original_filename or "photo").stem or "photo"
    filename = display_filename(f"{stem}-{task.operation}{PurePosixPath(record['key']).suffix}")
    return FileStorage(io.BytesIO(data), filename=filename, content_type=record["media_type"])


def _check_allowed(user_id: int, request: UploadRequest, width: int, height: int) -> None:
    """Refuse what this photo, the account's unfinished tasks or its plan do not allow."""
    check_for_photo(request, width, height)
    quota.check_unfinished(user_id)
    plans.check_monthly_limits(user_id, request.operation.work_pixels(request.options, width, height))


def _new_task(user_id: int, request: UploadRequest, filename: str | None, media_type: str, size: int, width: int,
              height: int) -> Task:
    return Task(id=new_task_id(), user_id=user_id, operation=request.operation.name, model=request.model,
                options=request.options.to_dict(), original_filename=filename, input_content_type=media_type,
                input_size=size, input_width=width, input_height=height, input_key="",
                work_pixels=request.operation.work_pixels(request.options, width, height))


def _store_and_queue(task: Task, files: list[_File]) -> None:
    """Reserve the bytes, store the files, record the task, then queue it; undo everything if a step fails."""
    size = sum(file.size for file in files)
    quota.reserve(task.user_id, size)
    stored: list[str] = []
    try:
        store_task_files(task, files, stored)
        lifecycle.created(task)
    except Exception:
        _delete_objects(stored)
        quota.give_back(task.user_id, size)
        db.session.commit()
        raise
    enqueue_task(task)


def _store(file: _File) -> None:
    """Write new bytes, or copy a stored object (410 when it is gone: a re-run of a photo deleted meanwhile)."""
    storage = get_storage()
    if file.data is not None:
        storage.put(file.key, file.data, file.media_type)
        return
    try:
        storage.copy(file.source, file.key, file.media_type)
    except ObjectNotFound:
        what = "original photo" if file.attachment is None else file.attachment.replace("_", " ")
        raise UploadRejected(410, "input_missing", f"The {what} is no longer stored; upload it again.") from None


def _record_file(task: Task, file: _File) -> None:
    if file.attachment is None:
        task.input_key = file.key
        return
    record = {"key": file.key, "media_type": file.media_type, "size": file.size}
    task.attachments = {**(task.attachments or {}), file.attachment: record}
    task.attachments_size = (task.attachments_size or 0) + file.size


def wants_download(arguments: Mapping[str, str]) -> bool:
    """Return whether a request for an output asks to save it as a file (?download=1 or ?download=true)."""
    return arguments.get("download") in DOWNLOAD_VALUES


def cancel_task(task: Task, reason: str = "Cancelled by its owner.") -> bool:
    """Cancel a waiting or running task; False when it had finished.

    A waiting job is deleted; a running one is stopped through RQ's stop-job command (its work horse killed, the
    job never retried). The photo stays, so the task can be re-run; outputs an interrupted run may have stored are
    deleted (again by the job's stopped callback, once the horse is dead: it may have been writing one just now).
    A photo its job never cleaned is cleaned by a job of its own, in the worker (a stopped job's is deleted).
    """
    if not lifecycle.cancelled(task.id, reason):
        return False
    cancel_task_job(task.id)
    stop_task_job(task.id)
    db.session.refresh(task)
    if not task.inputs_clean and task.started_at is None:
        enqueue_cleaning(task)
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


def list_tasks(user: User, page: int, per_page: int | None = None, *, status: str | None = None,
               operation: str | None = None) -> Pagination:
    """Return one page of the account's tasks, newest first; with a status or an operation, only those."""
    query = select(Task).where(Task.user_id == user.id).order_by(Task.created_at.desc(), Task.id.desc())
    if status:
        query = query.where(Task.status == status)
    if operation:
        query = query.where(Task.operation == operation)
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
    return get_owned(Task, user, task_id, NOT_FOUND_MESSAGE)


def get_owned(model: type[Owned], user: User, row_id: str, not_found: str) -> Owned:
    """Return the account's task or batch by its id; NotFound saying not_found for a malformed id, a missing row or
    another account's (the same answer, so ids of other accounts cannot be probed)."""
    try:
        canonical = str(uuid.UUID(row_id))
    except (ValueError, TypeError, AttributeError):
        raise NotFound(not_found) from None
    row = db.session.get(model, canonical)
    if row is None or row.user_id != user.id:
        raise NotFound(not_found)
    return row


def delete_task(task: Task) -> None:
    """Delete the task row and give its bytes back, then delete its files (a running job discards its result)."""
    files, task_id = duplicates.TaskFiles.of(task), task.id
    quota.give_back(task.user_id, task.stored_bytes)
    db.session.delete(task)
    db.session.commit()
    cancel_task_job(task_id)
    # Asked after the commit: outputs another task reuses stay (studio/tasks/duplicates.py).
    keys = files.deletable()
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
                # Outputs a task that stays reuses are kept; those of tasks deleted earlier in this batch are not
                # counted as users any more (their deletes are flushed before the question).
                for key in duplicates.TaskFiles.of(task).deletable():
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
