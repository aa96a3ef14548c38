"""Photos by URL: `image_url` (and `<attachment>_url`, such as `bg_image_url`) instead of a file.

The web request checks only what needs no network (studio.outbound.check_url: the strict parse, http(s), the host
when it is an address literal) and records the URLs on the task (Task.source_urls). The worker fetches them
(fetch_inputs) through the same strict, pinned, capped client that webhooks use, at most the upload limit within
STUDIO_IMAGE_URL_TIMEOUT_SECONDS, following at most five redirects, each judged again, and never from a
non-public address unless STUDIO_IMAGE_URL_ALLOW_PRIVATE is set. What it fetches then goes through the upload's own
checks (the header: format, structure, pixels; the operation's limits for the photo's size, the plan's monthly
megapixels, the storage quota) and is stored as an upload would be, uncleaned; the job's cleaning step follows, as
for any upload. A refusal is the task's readable failure reason, naming the field.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Mapping
from urllib.parse import unquote, urlsplit

from sqlalchemy import update

from ml.operations import InvalidOptions, Limits, get_operation
from studio import plans
from studio.extensions import db
from studio.models import Task, TaskStatus
from studio.outbound import FetchFailed, UnsafeURL, check_url, fetch
from studio.storage import attachment_key, get_storage, input_key
from studio.tasks import quota
from studio.tasks.uploads import AcceptedPhoto, UploadRejected, accept_photo

logger = logging.getLogger(__name__)

URL_SUFFIX = "_url"
IMAGE_URL_FIELD = "image_url"
# The photo's own name in Task.source_urls; attachments go under their names.
PHOTO = "image"
MAX_FILENAME_LENGTH = 120


@dataclass(frozen=True)
class RemotePhoto:
    """A photo given by URL, checked without the network; the worker fetches it."""

    url: str

    @property
    def filename(self) -> str:
        """Return the name the URL's path ends with (the task's original filename), "photo" when it has none."""
        name = PurePosixPath(unquote(urlsplit(self.url).path)).name
        return name[:MAX_FILENAME_LENGTH] or "photo"


class TaskGone(Exception):
    """The task was deleted or cancelled while its photo was fetched: what was stored meanwhile is deleted."""


def field_name(name: str) -> str:
    """Return the request field that gives a picture by URL (image_url, bg_image_url)."""
    return IMAGE_URL_FIELD if name == PHOTO else f"{name}{URL_SUFFIX}"


def check_photo_url(value: object, field: str, allow_private: bool) -> str:
    """Return the URL to store; raise UploadRejected (400, naming the field) for one we will not fetch."""
    if not isinstance(value, str) or not value.strip():
        raise UploadRejected(400, "invalid_url", f"{field}: give the URL of a JPEG, PNG or WebP photo.")
    try:
        return check_url(value, allow_private=allow_private).url
    except UnsafeURL as error:
        raise UploadRejected(400, "invalid_url", f"{field} {error}.") from None


def remote_photo(value: object, allow_private: bool) -> RemotePhoto:
    """Return the photo an image_url field gives; raise UploadRejected (400) for a URL we will not fetch."""
    return RemotePhoto(check_photo_url(value, IMAGE_URL_FIELD, allow_private))


def fetch_inputs(task: Task, config: Mapping[str, Any]) -> str | None:
    """Fetch the task's pictures given by URL, check them as uploads and store them; return why they are refused.

    A no-op for what is stored already (a retry after the fetch). Raises TaskGone when the task was deleted or
    cancelled meanwhile; other errors (storage, database) propagate so the job is retried.
    """
    waiting = {name: url for name, url in (task.source_urls or {}).items() if not _stored(task, name)}
    if not waiting:
        return None
    try:
        fetched = {name: _fetch(name, url, config) for name, url in waiting.items()}
        if PHOTO in fetched:
            _check_photo(task, fetched[PHOTO], config)
        size = sum(len(photo.data) for photo in fetched.values())
        quota.reserve(task.user_id, size)
    except UploadRejected as error:
        return error.message
    try:
        _store(task, fetched, size)
    except TaskGone:
        raise
    except Exception:
        # A retry fetches and reserves again: give this reservation back first.
        quota.give_back(task.user_id, size)
        db.session.commit()
        raise
    return None


def _stored(task: Task, name: str) -> bool:
    return bool(task.input_key) if name == PHOTO else name in (task.attachments or {})


def _fetch(name: str, url: str, config: Mapping[str, Any]) -> AcceptedPhoto:
    """Fetch one picture and check it from its header, as an upload; a refusal names the field."""
    field = field_name(name)
    max_bytes = int(config.get("MAX_CONTENT_LENGTH") or 20 * 1024 * 1024)
    try:
        fetched = fetch(url, max_bytes=max_bytes, timeout=config["STUDIO_IMAGE_URL_TIMEOUT_SECONDS"],
                        allow_private=config["STUDIO_IMAGE_URL_ALLOW_PRIVATE"])
    except FetchFailed as error:
        raise UploadRejected(422, "fetch_failed", f"{field}: {error}.") from None
    try:
        return accept_photo(fetched.data, config["STUDIO_MAX_PIXELS"])
    except UploadRejected as error:
        if error.code == "unsupported_image":
            claimed = fetched.content_type.split(";")[0].strip()[:60] or "something without a content type"
            message = f"not an image: the URL sent {claimed}, not a JPEG, PNG or WebP photo"
        else:
            message = error.message.rstrip(".")
        raise UploadRejected(error.status, error.code, f"{field}: {message}.") from None


def _check_photo(task: Task, photo: AcceptedPhoto, config: Mapping[str, Any]) -> None:
    """Check what an upload checks with the photo's size: the operation's limits and the plan's megapixels."""
    operation = get_operation(task.operation)
    options = operation.restore(task.options or {})
    try:
        operation.check_photo(options, photo.width, photo.height, Limits.from_config(config))
    except InvalidOptions as error:
        raise UploadRejected(400, "invalid_option", f"{error.field}: {error.message}") from None
    # This task is counted among the account's unfinished ones already (with no work yet).
    plans.check_monthly_limits(task.user_id, operation.work_pixels(options, photo.width, photo.height),
                               tasks=0)


def _store(task: Task, fetched: dict[str, AcceptedPhoto], size: int) -> None:
    """Store the fetched pictures as uploads (uncleaned) and record them on the row, while it is PROCESSING."""
    storage, keys = get_storage(), []
    values: dict[str, Any] = {"inputs_clean": False}
    attachments = dict(task.attachments or {})
    for name, photo in fetched.items():
        if name == PHOTO:
            key = input_key(task.user_id, task.id, photo.extension)
            operation = get_operation(task.operation)
            values.update(input_key=key, input_content_type=photo.media_type, input_size=len(photo.data),
                          input_width=photo.width, input_height=photo.height,
                          work_pixels=operation.work_pixels(operation.restore(task.options or {}), photo.width,
                                                            photo.height))
        else:
            key = attachment_key(task.user_id, task.id, name, photo.extension)
            attachments[name] = {"key": key, "media_type": photo.media_type, "size": len(photo.data)}
        storage.put(key, photo.data, photo.media_type)
        keys.append(key)
    if set(fetched) - {PHOTO}:
        values.update(attachments=attachments,
                      attachments_size=sum(record["size"] for record in attachments.values()))
    moved = db.session.execute(
        update(Task).where(Task.id == task.id, Task.status == TaskStatus.PROCESSING.value)
        .values(**values).execution_options(synchronize_session=False)).rowcount
    if not moved:
        quota.give_back(task.user_id, size)
    db.session.commit()
    if not moved:
        for key in keys:
            storage.delete(key)
        raise TaskGone(task.id)
    db.session.refresh(task)
    logger.info("task %s: fetched %s by URL (%s bytes)", task.id, ", ".join(sorted(fetched)), size)
