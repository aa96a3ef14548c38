"""Thumbnails for the history: small WebP pictures of a task's photo and result, made once by the worker.

The job makes them when the task completes and records them with the completion (lifecycle.completed); a task
finished before thumbnails existed, or one that failed, gets them from a job of its own the first time the history
shows it (jobs/thumbnails.py). A thumbnail that cannot be made is recorded as None: the page shows a placeholder
and no job is queued for it again. They are stored beside the outputs and deleted with the task (Task.stored_keys).
"""

from __future__ import annotations

import io
import logging
from typing import Any, Mapping

from PIL import Image

from studio.storage import get_storage, thumbnail_key

logger = logging.getLogger(__name__)

# The long side in pixels: two rows of the history at twice the pixel density of a phone's 80 px cell.
LONG_SIDE = 160
MEDIA_TYPE = "image/webp"
WEBP_QUALITY = 75
# Past this many pixels a picture is not decoded for a thumbnail (Pillow's own bomb guard is at 179 MP).
MAX_PIXELS = 120_000_000
NAMES = ("input", "result")


def make_thumbnail(data: bytes) -> bytes:
    """Return a WebP thumbnail (long side LONG_SIDE) of an encoded picture; raise ValueError when it cannot."""
    try:
        with Image.open(io.BytesIO(data)) as image:
            if image.width * image.height > MAX_PIXELS:
                raise ValueError("too many pixels for a thumbnail")
            transparent = "A" in image.getbands() or "transparency" in image.info
            # JPEG decodes at 1/2, 1/4 or 1/8 scale directly: a large photo costs a fraction of a full decode.
            image.draft("RGB", (LONG_SIDE * 2, LONG_SIDE * 2))
            # Shrunk first, converted after: the conversion then copies a few thousand pixels, not megapixels.
            # No EXIF turn: the photo is a clean upright copy and the results are the studio's own.
            image.thumbnail((LONG_SIDE, LONG_SIDE), Image.Resampling.LANCZOS)
            picture = image.convert("RGBA" if transparent else "RGB")
            buffer = io.BytesIO()
            picture.save(buffer, "WEBP", quality=WEBP_QUALITY, method=4)
            return buffer.getvalue()
    except (OSError, Image.DecompressionBombError, SyntaxError) as error:
        raise ValueError(f"not a picture Pillow reads: {error}") from None


def result_source(outputs: Mapping[str, Mapping[str, Any]]) -> str | None:
    """Return the name of the output a result thumbnail shows: the main one if it is an image, else the first
    image among the others (a data result's preview); None when there is no picture."""
    for name, record in outputs.items():
        if str(record.get("media_type", "")).startswith("image/"):
            return name
    return None


def store(user_id: int, task_id: str, pictures: Mapping[str, bytes | None]) -> dict[str, Any]:
    """Make and store a thumbnail of each picture by name; return their records (None for one that failed)."""
    storage, records = get_storage(), {}
    for name, data in pictures.items():
        records[name] = None
        if data is None:
            continue
        try:
            thumbnail = make_thumbnail(data)
            key = thumbnail_key(user_id, task_id, name)
            storage.put(key, thumbnail, MEDIA_TYPE)
        except Exception:  # noqa: BLE001 - a thumbnail is a convenience: never worth failing the task for
            logger.warning("task %s: could not make the %s thumbnail", task_id, name, exc_info=True)
            continue
        records[name] = {"key": key, "media_type": MEDIA_TYPE, "size": len(thumbnail)}
    return records


def shown(thumbnails: Mapping[str, Any] | None) -> tuple[str, Mapping[str, Any]] | None:
    """Return the thumbnail the history shows (the result's, else the photo's) with its name, or None."""
    for name in ("result", "input"):
        record = (thumbnails or {}).get(name)
        if record:
            return name, record
    return None
