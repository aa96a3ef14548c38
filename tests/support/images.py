"""Image helpers: encode a PIL image in a format."""

from __future__ import annotations

import io

from PIL import Image


def encoded(image: Image.Image, image_format: str = "PNG", **params) -> bytes:
    """Return an image encoded in memory."""
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()
