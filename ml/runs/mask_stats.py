"""mask_stats' run: the subject mask reduced to numbers (box, area, centroid) and drawn on a preview."""

from __future__ import annotations

from typing import Any

import numpy as np
from PIL import Image, ImageDraw

from ml.models.u2net.infer import predict_mask
from ml.operations.base import Inputs, Result
from ml.operations.mask_stats import PREVIEW_MAX_SIDE, MaskStatsOptions
from ml.runner import RunContext


def measure(mask: Image.Image, threshold: int) -> dict[str, Any]:
    """Return the subject's box (x1, y1, x2, y2, exclusive ends), area, share of the photo and centroid."""
    subject = np.asarray(mask) >= threshold
    height, width = subject.shape
    area = int(subject.sum())
    if area == 0:
        return {"width": width, "height": height,
                "subject": {"found": False, "box": None, "area": 0, "area_fraction": 0.0, "centroid": None}}
    rows, columns = np.nonzero(subject)
    box = [int(columns.min()), int(rows.min()), int(columns.max()) + 1, int(rows.max()) + 1]
    centroid = [round(float(columns.mean()), 2), round(float(rows.mean()), 2)]
    return {"width": width, "height": height,
            "subject": {"found": True, "box": box, "area": area, "area_fraction": round(area / (width * height), 6),
                        "centroid": centroid}}


def preview(photo: Image.Image, mask: Image.Image, stats: dict[str, Any], threshold: int) -> Image.Image:
    """Return the photo with the background dimmed, the subject's box and its centroid drawn."""
    scale = min(1.0, PREVIEW_MAX_SIDE / max(photo.size))
    size = (max(1, round(photo.width * scale)), max(1, round(photo.height * scale)))
    base = photo.convert("RGB").resize(size, Image.LANCZOS)
    inside = mask.resize(size, Image.BILINEAR).point(lambda value: 255 if value >= threshold else 90)
    dimmed = Image.composite(base, Image.new("RGB", size, (0, 0, 0)), inside)
    subject = stats["subject"]
    if subject["found"]:
        draw = ImageDraw.Draw(dimmed)
        x1, y1, x2, y2 = (coordinate * scale for coordinate in subject["box"])
        line = max(2, round(max(size) / 300))
        draw.rectangle((x1, y1, x2 - 1, y2 - 1), outline=(255, 196, 0), width=line)
        cx, cy = (coordinate * scale for coordinate in subject["centroid"])
        radius = 3 * line
        draw.ellipse((cx - radius, cy - radius, cx + radius, cy + radius), outline=(255, 196, 0), width=line)
    return dimmed


def run(inputs: Inputs, options: MaskStatsOptions, context: RunContext) -> Result:
    """Find the subject and report where it is."""
    session = context.session(options.model)
    context.progress(10, "finding the subject")
    mask = predict_mask(inputs.photo, session)
    context.progress(80, "measuring")
    stats = measure(mask, options.threshold)
    return Result(stats, {"preview": preview(inputs.photo, mask, stats, options.threshold)})
