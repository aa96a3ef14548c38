"""How tasks read on the pages, whatever their operation: a title, a one-line summary of the options, the outputs."""

from __future__ import annotations

from typing import Any

from flask import url_for

from ml.operations import OPERATIONS
from ml.registry import MODELS
from studio.models import Task
from studio.tasks import thumbnails
from studio.tasks.files import image_header
from studio.tasks.representation import output_records, picture_result

IMAGE_LABELS = {"image/png": "PNG", "image/webp": "WebP", "image/jpeg": "JPEG", "application/json": "JSON"}
# How far the result's width/height ratio may stray from the photo's and still be the same framing (rounding of a
# scaled size): within it, before and after share one comparison slider.
SAME_FRAMING_TOLERANCE = 0.02


def operation_title(name: str) -> str:
    """Return an operation's title for people (its name, if this server no longer offers it)."""
    operation = OPERATIONS.get(name)
    return operation.title if operation else name


def options_summary(task: Task) -> str:
    """Return the task's model and the options that differ from their defaults and apply, in a line."""
    operation = OPERATIONS.get(task.operation)
    options = task.options or {}
    # The model by its name for people ("U²-NetP (fast)"), not its id; an id no longer known stays as it is.
    parts = [MODELS[task.model].title if task.model in MODELS else task.model] if task.model else []
    if operation is None:
        return " · ".join(parts)
    for name, schema in operation.option_schema()["properties"].items():
        value = options.get(name)
        if name == "model" or value is None or value == schema.get("default") or not _applies(schema, options):
            continue
        title = schema.get("title", name).lower()
        if schema.get("type") == "boolean":
            parts.append(title)
        else:
            parts.append(f"{title} {schema.get('x-labels', {}).get(value, value)}")
    return " · ".join(parts)


def _applies(schema: dict[str, Any], options: dict[str, Any]) -> bool:
    """Return whether an option applies: the options it needs (x-requires) hold ("fill colour" only with a fill)."""
    for name, need in schema.get("x-requires", {}).items():
        # {"not": value}: needed is anything but that value, as the form's script reads it.
        met = options.get(name) != need["not"] if isinstance(need, dict) else options.get(name) == need
        if not met:
            return False
    return True


def task_outputs(task: Task) -> dict[str, Any]:
    """Return what the task page shows of the outputs: the image to show (its pixel size, file size and whether
    it compares with the photo on a slider), and every output to download."""
    records = output_records(task)
    links, image = [], None
    for name, record in records.items():
        url = url_for("tasks.result", task_id=task.id) if name == "result" else \
            url_for("tasks.output", task_id=task.id, name=name)
        kind = IMAGE_LABELS.get(record["media_type"], record["media_type"])
        label = kind if name == "result" else f"{name.replace('_', ' ')} ({kind})"
        links.append({"label": label, "download": f"{url}?download=1"})
        if image is None and record["media_type"].startswith("image/"):
            image = _image(task, name, record, url, kind)
    return {"image": image, "links": links, "compare": image is not None and _same_framing(task, image)}


def _image(task: Task, name: str, record: dict[str, Any], url: str, kind: str) -> dict[str, Any]:
    header = image_header(record["key"])
    return {"url": url, "name": name, "format": kind, "size": record.get("size") or 0,
            "size_text": file_size(record.get("size") or 0),
            "width": header.width if header else None, "height": header.height if header else None,
            "transparent": bool(header and header.transparent),
            "alt": f"{name.capitalize()}: {task.original_filename or 'the photo'} after "
                   f"{operation_title(task.operation).lower()}"}


def _same_framing(task: Task, image: dict[str, Any]) -> bool:
    """Return True when the image is the main result and shows the photo's whole frame (at any scale)."""
    if image["name"] != "result" or not (image["width"] and task.input_width and task.input_height):
        return False
    photo_ratio = task.input_width / task.input_height
    return abs(image["width"] / image["height"] / photo_ratio - 1) <= SAME_FRAMING_TOLERANCE


def file_size(size: int) -> str:
    """Return a byte count as people read it: 950 bytes, 312 KB, 4.2 MB (powers of 1000, as file managers do)."""
    if size < 1000:
        return f"{size} bytes"
    value, unit = float(size), "bytes"
    for unit in ("KB", "MB", "GB"):
        value /= 1000
        if value < 999.5:
            break
    return f"{value:.0f} {unit}" if value >= 100 else f"{value:.1f} {unit}"


def thumbnail_url(task: Task) -> str | None:
    """Return the URL of the task's thumbnail, None while it has none (the page shows a placeholder)."""
    return url_for("tasks.thumbnail", task_id=task.id) if thumbnails.shown(task.thumbnails) else None


def has_picture_result(task: Task) -> bool:
    """Return whether the task has a result, and it is a picture another operation can take (only once the task
    has completed: a running task's result does not exist yet)."""
    return picture_result(task) is not None
