"""Serving a task's stored files over HTTP, for the pages and the API alike: presigned links on S3, the bytes
from local disk, JSON outputs as JSON."""

from __future__ import annotations

import io
import json
import warnings
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any

from flask import redirect, send_file
from PIL import Image
from werkzeug.exceptions import NotFound
from werkzeug.utils import secure_filename
from werkzeug.wrappers import Response

from studio.models import Task
from studio.storage import ObjectNotFound, get_storage
from studio.tasks import thumbnails
from studio.tasks.representation import output_records

JSON_MEDIA_TYPE = "application/json"
# Enough for the header of any image we write (PNG's is in its first 33 bytes; our JPEGs and WebPs carry no
# metadata before the frame header), and a bounded read from S3 whatever the file's size.
HEADER_BYTES = 64 * 1024
ALPHA_MODES = frozenset({"RGBA", "LA", "PA", "RGBa", "La"})


@dataclass(frozen=True)
class ImageHeader:
    """An image output's pixel size and whether it can have transparent pixels, read from its header."""

    width: int
    height: int
    transparent: bool


def output_record(task: Task, name: str) -> dict[str, Any]:
    """Return the stored record of one of a completed task's outputs; NotFound when there is none (yet)."""
    record = output_records(task).get(name)
    if record is None:
        raise NotFound("This task has no such output yet." if name != "result" else "This task has no result yet.")
    return record


def serve_output(task: Task, name: str = "result", *, download: bool = False) -> Response:
    """Serve one of the task's outputs (?download=1 as an attachment)."""
    record = output_record(task, name)
    suffix = PurePosixPath(record["key"]).suffix
    filename = download_filename(task, suffix if name == "result" else f"-{name}{suffix}")
    return _serve(record["key"], record["media_type"], filename, download)


def read_json_output(task: Task, name: str = "result") -> Any:
    """Return a JSON output's data (shown as a table on the task page); None when it is not JSON."""
    record = output_records(task).get(name)
    if record is None or record["media_type"] != JSON_MEDIA_TYPE:
        return None
    try:
        return json.loads(get_storage().get(record["key"]))
    except (ObjectNotFound, ValueError):
        return None


def read_json_outputs(task: Task) -> dict[str, Any]:
    """Return the data of every JSON output the task has, by output name (the main result first)."""
    found = {}
    for name, record in output_records(task).items():
        if record["media_type"] == JSON_MEDIA_TYPE:
            data = read_json_output(task, name)
            if data is not None:
                found[name] = data
    return found


def image_header(key: str) -> ImageHeader | None:
    """Return a stored image's size and transparency from its first bytes; None when it cannot be read."""
    try:
        with get_storage().open(key) as stream:
            head = stream.read(HEADER_BYTES)
    except ObjectNotFound:
        return None
    try:
        # Only the header is parsed; the size warning is for decoding, which never happens here.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(head)) as image:
                transparent = image.mode in ALPHA_MODES or "transparency" in image.info
                return ImageHeader(image.width, image.height, transparent)
    except (OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError):
        return None


def serve_input(task: Task) -> Response:
    """Serve the uploaded photo (for the before/after view), by the same rules as the outputs."""
    if not task.input_key:
        raise NotFound("The photo has not been fetched from its URL yet.")
    filename = download_filename(task, PurePosixPath(task.input_key).suffix)
    return _serve(task.input_key, task.input_content_type, filename, download=False)


def serve_thumbnail(task: Task) -> Response:
    """Serve the thumbnail the history shows (the result's, else the photo's); NotFound while there is none."""
    chosen = thumbnails.shown(task.thumbnails)
    if chosen is None:
        raise NotFound("This task has no thumbnail yet.")
    name, record = chosen
    return _serve(record["key"], record["media_type"], download_filename(task, f"-{name}-thumbnail.webp"), False)


def download_filename(task: Task, ending: str) -> str:
    """Return a safe ASCII filename like 'holiday.png' built from the uploaded name."""
    stem = secure_filename(PurePosixPath(task.original_filename or "").stem)[:80] or "photo"
    return f"{stem}{ending}"


def _serve(key: str, content_type: str, filename: str, download: bool) -> Response:
    storage = get_storage()
    # JSON goes through the app, so an API client gets the data itself and not a redirect to follow.
    url = None if content_type == JSON_MEDIA_TYPE else storage.presigned_url(
        key, filename=filename, content_type=content_type, download=download)
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
