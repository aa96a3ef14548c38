"""Helpers for the batch tests: small photos, ZIPs of them, uploads to POST /api/v1/batches, finished tasks."""

from __future__ import annotations

import io
import zipfile
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image

from studio.extensions import db
from studio.models import Task
from studio.queue import LIVE_STATUSES, cancel_task_job, get_redis, job_status
from studio.storage import get_storage, result_key
from studio.tasks import lifecycle
from tests.support.images import encoded

BATCHES = "/api/v1/batches"


def photo(colour: tuple[int, int, int] = (30, 120, 200), size: tuple[int, int] = (48, 32),
          image_format: str = "PNG") -> bytes:
    """Return a small photo."""
    return encoded(Image.new("RGB", size, colour), image_format)


def zipped(*entries: tuple[str, bytes]) -> bytes:
    """Return a ZIP of (name, bytes) entries."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return buffer.getvalue()


def post_images(client: FlaskClient, headers: dict[str, str], files: list[tuple[str, bytes]], **fields: Any):
    """POST photos as repeated images fields."""
    return client.post(BATCHES, headers=headers, content_type="multipart/form-data",
                       data={"images": [(io.BytesIO(data), name) for name, data in files], **fields})


def post_archive(client: FlaskClient, headers: dict[str, str], data: bytes, name: str = "photos.zip",
                 **fields: Any):
    """POST one ZIP as the archive field."""
    return client.post(BATCHES, headers=headers, content_type="multipart/form-data",
                       data={"archive": (io.BytesIO(data), name), **fields})


def complete(app: Flask, task_id: str, data: bytes, extension: str = ".png", media_type: str = "image/png") -> None:
    """Finish a task as its job would, with this result stored (no model run)."""
    with app.app_context():
        task = db.session.get(Task, task_id)
        key = result_key(task.user_id, task.id, extension)
        get_storage().put(key, data, media_type)
        lifecycle.started(task_id)
        output = lifecycle.StoredOutput(key, media_type, len(data))
        assert lifecycle.completed(task_id, task.user_id, {"result": output})


def fail(app: Flask, task_id: str, reason: str = "The photo could not be processed.") -> None:
    """Fail a task as its job would, leaving it no live job."""
    with app.app_context():
        cancel_task_job(task_id)
        lifecycle.started(task_id)
        assert lifecycle.failed(task_id, reason)


def live_jobs(app: Flask, task_ids: list[str]) -> set[str]:
    """Return the tasks among these that have a live job (queued, or held back by the account's share)."""
    with app.app_context():
        connection = get_redis()
        return {task_id for task_id in task_ids if job_status(task_id, connection) in LIVE_STATUSES}
