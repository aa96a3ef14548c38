"""Batch rules shared by the pages and the API: many photos in one upload, one operation, each photo its own task.

A batch is checked whole before anything is stored: every photo's header against the operation (bad ones are
listed as skipped, not fatal), then the account's unfinished-task cap, its plan's month and its storage quota for
all of them at once; only then are the photos stored and every task recorded in one commit, and queued. Photos are
read twice (checked, then stored) rather than held, so memory holds one photo at a time whatever the batch's size.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime
from dataclasses import dataclass, replace
from functools import partial
from typing import Callable

from flask import current_app
from sqlalchemy import delete, select
from werkzeug.datastructures import FileStorage

from studio import plans
from studio.batches.zip_upload import (ArchiveLimits, ArchiveRefused, PhotoArchive, Skipped, limits_from_config,
                                       looks_like_archive)
from studio.extensions import db
from studio.models import Batch, Task, TaskStatus, User, new_task_id
from studio.queue import enqueue_task
from studio.tasks import lifecycle, quota, service, uploads
from studio.tasks.service import UploadRequest
from studio.tasks.uploads import AcceptedPhoto, UploadRejected

logger = logging.getLogger(__name__)

NOT_FOUND_MESSAGE = "No such batch. It may have been deleted, or it belongs to another account."
NESTED_ARCHIVE = "nested archives are refused"


@dataclass(frozen=True)
class Candidate:
    """A file of the upload that may be a photo: its name for people, and how to read its bytes (again)."""

    name: str
    read: Callable[[], bytes]


@dataclass(frozen=True)
class _Checked:
    candidate: Candidate
    photo: AcceptedPhoto  # its facts, without its bytes
    size: int
    digest: str


def archive_limits() -> ArchiveLimits:
    """Return what an uploaded archive may hold, from the app's settings."""
    return limits_from_config(current_app.config)


def file_candidates(files: list[FileStorage]) -> list[Candidate]:
    """Return the photos sent as separate files; refuse (413) more than a batch may hold."""
    limit = current_app.config["STUDIO_BATCH_MAX_ENTRIES"]
    if len(files) > limit:
        raise UploadRejected(413, "too_many_files", f"images: {len(files):,} files; a batch takes at most {limit:,}.")
    max_bytes = current_app.config.get("MAX_CONTENT_LENGTH")

    def read(upload: FileStorage) -> bytes:
        upload.stream.seek(0)
        return uploads.read_upload(upload, max_bytes)

    return [Candidate(service.display_filename(upload.filename) or "photo", partial(read, upload)) for upload in files]


def archive_candidates(upload: FileStorage) -> tuple[list[Candidate], list[Skipped]]:
    """Return the candidate photos of an uploaded ZIP and the entries skipped; refuse a hostile archive."""
    if upload is None or not upload.filename:
        raise UploadRejected(400, "missing_file", "archive: attach a ZIP file of photos.")
    upload.stream.seek(0)
    archive = PhotoArchive(upload.stream, archive_limits())
    candidates = [Candidate(service.display_filename(info.filename) or "photo", partial(archive.read, info))
                  for info in archive.entries]
    return candidates, list(archive.skipped)


def create_batch(user: User, request: UploadRequest, candidates: list[Candidate], skipped: list[Skipped],
                 archive_name: str = "") -> Batch:
    """Check every photo, then the account's limits for all of them at once, store them, record the batch and
    its tasks in one commit and queue them; refuse (nothing stored) when no photo is left or a limit is reached."""
    skipped = list(skipped)
    checked = _check_photos(request, candidates, skipped)
    if not checked:
        reasons = "; ".join(f"{item.name}: {item.reason}" for item in skipped[:3])
        raise UploadRejected(400, "no_photos", f"No photo in the upload can be processed ({reasons}).")
    work = sum(request.operation.work_pixels(request.options, item.photo.width, item.photo.height)
               for item in checked)
    quota.check_unfinished(user.id, adding=len(checked))
    plans.check_monthly_limits(user.id, work, tasks=len(checked))
    attachments = sum(len(attached.data) for attached in request.attachments.values())
    size = sum(item.size for item in checked) + attachments * len(checked)
    quota.reserve(user.id, size)
    batch = Batch(id=new_task_id(), user_id=user.id, operation=request.operation.name,
                  options=request.options.to_dict(), archive_name=service.display_filename(archive_name),
                  skipped=[item.to_dict() for item in skipped])
    tasks, stored = [], []
    try:
        for item in checked:
            tasks.append(_store_photo(user, request, batch, item, stored))
        lifecycle.created_together(tasks, batch)
    except Exception:
        db.session.rollback()
        service.delete_objects(stored)
        quota.give_back(user.id, size)
        db.session.commit()
        raise
    for task in tasks:
        enqueue_task(task)
    logger.info("batch %s: %s photos for account %s, %s skipped", batch.id, len(tasks), user.id, len(skipped))
    return batch


def _check_photos(request: UploadRequest, candidates: list[Candidate], skipped: list[Skipped]) -> list[_Checked]:
    """Return the candidates that are photos this operation takes (from their headers); list the others."""
    max_pixels = current_app.config["STUDIO_MAX_PIXELS"]
    checked = []
    for candidate in candidates:
        try:
            data = candidate.read()
            if looks_like_archive(data):
                skipped.append(Skipped(candidate.name, NESTED_ARCHIVE))
                continue
            photo = uploads.accept_photo(data, max_pixels)
            service.check_for_photo(request, photo.width, photo.height)
        except ArchiveRefused:
            raise
        except UploadRejected as error:
            skipped.append(Skipped(candidate.name, error.message))
            continue
        # Its facts only: the bytes are read again when stored, so memory holds one photo at a time.
        checked.append(_Checked(candidate, replace(photo, data=b""), len(data), hashlib.sha256(data).hexdigest()))
    return checked


def _store_photo(user: User, request: UploadRequest, batch: Batch, item: _Checked, stored: list[str]) -> Task:
    data = item.candidate.read()
    if hashlib.sha256(data).hexdigest() != item.digest:
        raise UploadRejected(400, "upload_changed", f"{item.candidate.name}: the file changed while it was read.")
    task, files = service.prepare_task(user, request, item.candidate.name, replace(item.photo, data=data))
    task.batch_id = batch.id
    service.store_task_files(task, files, stored)
    return task


def get_batch(user: User, batch_id: str) -> Batch:
    """Return the account's batch; NotFound for a malformed id, a missing batch or another account's."""
    return service.get_owned(Batch, user, batch_id, NOT_FOUND_MESSAGE)


def batch_tasks(batch: Batch) -> list[Task]:
    """Return the batch's tasks in upload order."""
    return list(db.session.scalars(select(Task).where(Task.batch_id == batch.id).order_by(Task.id)))


def counts(tasks: list[Task]) -> dict[str, int]:
    """Return how many of the tasks are in each status, and in all."""
    found = {status.value: 0 for status in TaskStatus}
    for task in tasks:
        found[task.status] += 1
    return {"total": len(tasks), **found}


def progress(tasks: list[Task]) -> int:
    """Return the batch's overall progress in percent: finished tasks count whole."""
    if not tasks:
        return 100
    done = sum(100 if task.task_status.finished else task.progress for task in tasks)
    return done // len(tasks)


def finished(tasks: list[Task]) -> bool:
    """Return True when no task of the batch will change any more by itself."""
    return all(task.task_status.finished for task in tasks)


def delete_batch(batch: Batch) -> int:
    """Delete the batch, every task of it and their files; return how many tasks went."""
    tasks = batch_tasks(batch)
    for task in tasks:
        service.delete_task(task)
    db.session.delete(batch)
    db.session.commit()
    logger.info("batch %s: deleted with %s tasks", batch.id, len(tasks))
    return len(tasks)


def retry_failed(batch: Batch) -> int:
    """Run the batch's FAILED tasks again from the start, within the account's limits; return how many."""
    failed = [task for task in batch_tasks(batch) if task.status == TaskStatus.FAILED.value]
    if not failed:
        return 0
    # No plan check: a retried task's failure is taken back from the month's usage, so it counts once.
    quota.check_unfinished(batch.user_id, adding=len(failed))
    retried = 0
    for task in failed:
        if lifecycle.retried(task.id):
            db.session.refresh(task)
            enqueue_task(task)
            retried += 1
    logger.info("batch %s: %s failed tasks retried", batch.id, retried)
    return retried


def delete_empty_batches_before(cutoff: datetime) -> int:
    """Delete the batches made before the cutoff that have no task left (retention took them); return how many."""
    empty = select(Batch.id).where(Batch.created_at < cutoff, ~select(Task.id).where(Task.batch_id == Batch.id)
                                   .exists())
    deleted = db.session.execute(delete(Batch).where(Batch.id.in_(empty))
                                 .execution_options(synchronize_session=False)).rowcount
    db.session.commit()
    return deleted
