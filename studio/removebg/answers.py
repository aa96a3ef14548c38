"""A finished remove.bg call answered as remove.bg does: the image (or a ZIP of color.jpg and alpha.png) with its
X- headers, or JSON ({"data": {"result_b64", "foreground_*"}}) when the client accepts only JSON."""

from __future__ import annotations

import base64
import io
import zipfile
from dataclasses import dataclass

from flask import jsonify, request
from PIL import Image
from werkzeug.wrappers import Response

from studio.models import Task
from studio.removebg.fields import Call
from studio.storage import get_storage
from studio.tasks.files import output_record

ZIP_MEDIA_TYPE = "application/zip"
# The studio has no credits: a call is one task in the account's usage, whatever its size.
CREDITS_PER_CALL = "1"
JPEG_QUALITY = 95


@dataclass(frozen=True)
class Foreground:
    """The subject's box in the result, in pixels."""

    left: int
    top: int
    width: int
    height: int


def answer(task: Task, call: Call) -> Response:
    """Return the completed task's result as remove.bg sends it."""
    record = output_record(task, "result")
    data = get_storage().get(record["key"])
    with Image.open(io.BytesIO(data)) as image:
        width, height = image.size
        foreground = foreground_box(image)
        body, media_type = (zip_of(image), ZIP_MEDIA_TYPE) if call.zip else (data, record["media_type"])
    headers = {"X-Width": str(width), "X-Height": str(height), "X-Type": call.detected_type,
               "X-Credits-Charged": CREDITS_PER_CALL, "X-Studio-Task-Id": task.id}
    if foreground is not None:
        headers.update({"X-Foreground-Top": str(foreground.top), "X-Foreground-Left": str(foreground.left),
                        "X-Foreground-Width": str(foreground.width), "X-Foreground-Height": str(foreground.height)})
    if wants_json():
        response = jsonify(data={"result_b64": base64.b64encode(body).decode("ascii"),
                                 **({f"foreground_{name}": getattr(foreground, name)
                                     for name in ("top", "left", "width", "height")} if foreground else {})})
    else:
        response = Response(body, mimetype=media_type)
    response.headers.update(headers)
    # A private photo: no shared cache may keep it.
    response.headers["Cache-Control"] = "private, no-store"
    return response


def wants_json() -> bool:
    """Return whether the client prefers JSON to an image (remove.bg's Accept: application/json)."""
    accepted = request.accept_mimetypes
    return accepted["application/json"] > max(accepted["image/png"], accepted["application/zip"])


def foreground_box(image: Image.Image) -> Foreground | None:
    """Return the box of the subject: the non-transparent pixels of a cutout, the white of a mask; None for an
    opaque result (a background colour or picture), where the pixels alone no longer say."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        alpha = image.convert("RGBA").getchannel("A")
    elif image.mode in ("L", "1"):
        alpha = image
    else:
        return None
    box = alpha.getbbox()
    if box is None:
        return Foreground(0, 0, 0, 0)
    return Foreground(box[0], box[1], box[2] - box[0], box[3] - box[1])


def zip_of(image: Image.Image) -> bytes:
    """Return remove.bg's ZIP of a cutout: color.jpg (the colours) and alpha.png (the matte), at its size."""
    rgba = image.convert("RGBA")
    color, alpha = io.BytesIO(), io.BytesIO()
    rgba.convert("RGB").save(color, "JPEG", quality=JPEG_QUALITY)
    rgba.getchannel("A").save(alpha, "PNG")
    archive = io.BytesIO()
    # Stored, not deflated: JPEG and PNG are compressed already.
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_STORED) as bundle:
        bundle.writestr("color.jpg", color.getvalue())
        bundle.writestr("alpha.png", alpha.getvalue())
    return archive.getvalue()
