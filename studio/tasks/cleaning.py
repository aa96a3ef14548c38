"""The job's first step: replace a task's stored photo and attachments, kept as uploaded, by their clean copies.

The web request checks an upload from its header alone and stores it under its final key (studio/tasks/service.py);
decoding it, cutting its metadata out, checking that cut copy by decoding it again or re-encoding it upright in
sRGB (studio/tasks/uploads.clean_photo) all happen here, in the worker. Each copy replaces the upload under the
same key, then the row records them (Task.inputs_clean): a job stopped in between cleans them again, and cleaning a
clean copy changes nothing. A task that ends before its photo was cleaned, or whose photo cannot be cleaned, has
the uploaded files deleted (discard_uncleaned): the metadata of a photo never outlives the task's job.
"""

from __future__ import annotations

import logging
from typing import Mapping

from sqlalchemy import update

from studio.extensions import db
from studio.models import Task
from studio.storage import ObjectNotFound, get_storage
from studio.tasks import quota
from studio.tasks.uploads import CleanPhoto, UploadRejected, clean_photo

logger = logging.getLogger(__name__)


class TaskGone(Exception):
    """The task was deleted while its uploads were being cleaned: the copies stored meanwhile are deleted too."""


def clean_or_discard(task: Task, max_pixels: int, titles: Mapping[str, str] | None = None) -> str | None:
    """Clean the task's stored inputs unless they are; return the reason, with the uploads deleted, when they
    cannot be cleaned (a damaged photo, one gone from storage), else None. titles: what to call each attachment.

    Other errors (storage or database down) propagate, so the job is retried; after its last attempt the failure
    callback deletes the uploads (discard_uncleaned).
    """
    if task.inputs_clean:
        return None
    try:
        clean_inputs(task, max_pixels, titles)
    except UploadRejected as error:
        logger.info("task %s: its upload could not be cleaned (%s); deleting it", task.id, error.code)
        discard_uncleaned(task.id)
        return error.message
    return None


def clean_inputs(task: Task, max_pixels: int, titles: Mapping[str, str] | None = None) -> None:
    """Store the clean copies of the task's photo and attachments over the uploads, then record them; raise
    UploadRejected for one that cannot be cleaned, TaskGone for a task deleted meanwhile."""
    photo = _clean(task.input_key, max_pixels)
    attachments = {name: _clean(record["key"], max_pixels, name, (titles or {}).get(name))
                   for name, record in (task.attachments or {}).items()}
    storage = get_storage()
    storage.put(task.input_key, photo.data, photo.media_type)
    for name, clean in attachments.items():
        storage.put(task.attachments[name]["key"], clean.data, clean.media_type)
    if not _record_clean(task, photo, attachments):
        # Deleted meanwhile: its files went with its row, before these copies were written.
        for key in [task.input_key] + [record["key"] for record in (task.attachments or {}).values()]:
            storage.delete(key)
        raise TaskGone(task.id)
    logger.info("task %s: stored the clean copies of its photo and %s attachments", task.id, len(attachments))


def discard_uncleaned(task_id: str) -> None:
    """Delete the uploaded photo and attachments of a task whose job did not clean them, and free their bytes."""
    task = db.session.get(Task, task_id, populate_existing=True)
    if task is None or task.inputs_clean:
        return
    storage = get_storage()
    for key in [task.input_key] + [record["key"] for record in (task.attachments or {}).values()]:
        if key:
            storage.delete(key)
    freed = task.input_size + task.attachments_size
    moved = db.session.execute(
        update(Task).where(Task.id == task.id, Task.inputs_clean.is_(False))
        .values(inputs_clean=True, input_size=0, attachments_size=0)
        .execution_options(synchronize_session=False)).rowcount
    if moved:
        quota.give_back(task.user_id, freed)
    db.session.commit()
    logger.info("task %s: deleted its uploaded photo, never cleaned", task_id)


def _clean(key: str, max_pixels: int, attachment: str | None = None, title: str | None = None) -> CleanPhoto:
    try:
        data = get_storage().get(key)
    except ObjectNotFound:
        what = "uploaded photo" if attachment is None else title or attachment.replace("_", " ")
        raise UploadRejected(410, "input_missing", f"The {what} is no longer in storage; upload it again.") from None
    try:
        return clean_photo(data, max_pixels)
    except UploadRejected as error:
        if attachment is None:
            raise
        raise UploadRejected(error.status, error.code, f"{attachment}: {error.message}") from None


def _record_clean(task: Task, photo: CleanPhoto, attachments: dict[str, CleanPhoto]) -> bool:
    """Record the clean copies' sizes on the row and move the account's counter by the difference; False when the
    row is gone."""
    records = {name: {**record, "media_type": attachments[name].media_type, "size": len(attachments[name].data)}
               for name, record in (task.attachments or {}).items()}
    before = task.input_size + task.attachments_size
    attachments_size = sum(record["size"] for record in records.values())
    after = len(photo.data) + attachments_size
    moved = db.session.execute(
        update(Task).where(Task.id == task.id, Task.inputs_clean.is_(False))
        .values(inputs_clean=True, input_content_type=photo.media_type, input_size=len(photo.data),
                input_width=photo.width, input_height=photo.height, attachments=records,
                attachments_size=attachments_size)
        .execution_options(synchronize_session=False)).rowcount
    if moved and after > before:
        # A re-encoded copy may be larger than the upload: counted, like an output, even past the quota.
        quota.add_outputs(task.user_id, after - before)
    elif moved:
        quota.give_back(task.user_id, before - after)
    db.session.commit()
    if not moved:
        return db.session.get(Task, task.id, populate_existing=True) is not None
    db.session.refresh(task)
    return True
