"""Passport and visa photos: one face, eyes levelled, head scaled and placed as a standard says, on a plain colour.

The caller gives the photo, its one detected face and the subject mask (U2Net); id_photo returns the print-ready
photo with its resolution in `info["dpi"]`. Pillow writes that only when asked, so encode it with
encode_id_photo (PNG pHYs chunk, JPEG JFIF density), not with a bare `save`.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from ml.edits.id_presets import (  # noqa: F401 - re-exported for the callers of this module
    BACKGROUNDS, DEFAULT_DPI, DEFAULT_PRESET, DPI_CHOICES, ID_PRESETS, MM_PER_INCH, SHEET_GAP_MM, SHEET_MM, IdPreset,
)
from ml.models.mtcnn.infer import Face

# Beyond this enlargement the print shows interpolation blur: at 300 dpi it means under 200 real pixels per inch,
# about where print labs start warning.
MAX_UPSCALE = 1.5
# Where the skull lies relative to the eyes, in eye-to-mouth distances (eye line to the mouth corners' midpoint),
# from adult anthropometry (Farkas): pupils to chin and pupils to vertex are each about 1.7 of them. The vertex is
# under the hair, so the subject mask can only lower the estimate (a bald or close-cropped head ends where its
# silhouette ends), never raise it, and never below 1.35 (a skull is not flatter than that).
CROWN_ABOVE_EYES = 1.7
CROWN_ABOVE_EYES_MIN = 1.35
CHIN_BELOW_EYES = 1.7
_ALPHA_FLOOR, _ALPHA_CEILING = 32, 224
_ALPHA_STRETCH = 255 / (_ALPHA_CEILING - _ALPHA_FLOOR)


class IdPhotoError(ValueError):
    """Raised with a readable reason when a photo cannot make an ID photo."""


@dataclass(frozen=True)
class HeadMeasure:
    """A face in its upright frame: eye line angle, eye midpoint, and crown and chin heights relative to it."""

    angle_degrees: float
    eyes: tuple[float, float]
    crown_above_eyes: float
    chin_below_eyes: float

    @property
    def height(self) -> float:
        """Return the head's height, chin to crown, in photo pixels."""
        return self.crown_above_eyes + self.chin_below_eyes


def choose_single_face(faces: Sequence[Face]) -> Face:
    """Return the one face; refuse a photo with none or with several."""
    if not faces:
        raise IdPhotoError("no face was found: use a photo of one person facing the camera")
    if len(faces) > 1:
        raise IdPhotoError(f"{len(faces)} faces were found: an ID photo needs a photo of one person alone")
    return faces[0]


def measure_head(face: Face, mask: Image.Image | None = None) -> HeadMeasure:
    """Estimate the head's crown and chin from the landmarks, the crown lowered to the mask's top where it is lower."""
    left_eye, right_eye, _, mouth_left, mouth_right = (np.asarray(point, dtype=np.float64) for point in face.landmarks)
    eyes = (left_eye + right_eye) / 2
    across = right_eye - left_eye
    angle = math.atan2(across[1], across[0])
    down = np.array([-math.sin(angle), math.cos(angle)])
    # Only the part of the eye-to-mouth distance square to the eye line: a turned head would otherwise look longer.
    eye_to_mouth = float(((mouth_left + mouth_right) / 2 - eyes) @ down)
    if eye_to_mouth <= 0:
        raise IdPhotoError("the face is not upright enough to measure: look straight at the camera")
    crown = CROWN_ABOVE_EYES * eye_to_mouth
    if mask is not None:
        silhouette = _silhouette_above_eyes(mask, eyes, angle, float(np.hypot(*across)), 2.5 * eye_to_mouth)
        if silhouette is not None:
            crown = min(crown, max(silhouette, CROWN_ABOVE_EYES_MIN * eye_to_mouth))
    return HeadMeasure(math.degrees(angle), (float(eyes[0]), float(eyes[1])), crown, CHIN_BELOW_EYES * eye_to_mouth)


def _silhouette_above_eyes(mask: Image.Image, eyes: np.ndarray, angle: float, eye_distance: float,
                           reach: float) -> float | None:
    """Return how far above the eye line the subject mask ends over the middle of the face, or None if unseen."""
    # Levelled about the eyes, the silhouette's top can be read column by column straight up.
    upright = mask.convert("L").rotate(math.degrees(angle), Image.BILINEAR, center=tuple(eyes))
    values = np.asarray(upright) >= 128
    x0, x1 = int(eyes[0] - 0.3 * eye_distance), int(eyes[0] + 0.3 * eye_distance) + 1
    y0, y1 = int(eyes[1] - reach), int(eyes[1])
    if x0 < 0 or y0 < 0 or x1 > values.shape[1] or y1 > values.shape[0] or x1 <= x0 or y1 <= y0:
        return None
    window = values[y0:y1, x0:x1]
    if not window.any(axis=0).all():
        return None
    tops = window.argmax(axis=0)
    return float(eyes[1] - (y0 + np.median(tops)))


def _mm_to_pixels(millimetres: float, dpi: int) -> float:
    return millimetres / MM_PER_INCH * dpi


def _middle(bounds: tuple[float, float]) -> float:
    return (bounds[0] + bounds[1]) / 2


def id_photo(image: Image.Image, face: Face, mask: Image.Image, *, preset: str = DEFAULT_PRESET,
             dpi: int = DEFAULT_DPI, background: tuple[int, int, int] = BACKGROUNDS["white"]) -> Image.Image:
    """Return the ID photo (RGB, the preset's size at dpi, info["dpi"] set): levelled, scaled, placed, on a colour."""
    if preset not in ID_PRESETS:
        raise IdPhotoError(f"unknown preset {preset!r}; choose one of {', '.join(ID_PRESETS)}")
    if dpi < 72:
        raise IdPhotoError("the resolution must be at least 72 dpi")
    standard = ID_PRESETS[preset]
    head = measure_head(face, mask)
    target_head = _mm_to_pixels(_middle(standard.head_mm), dpi)
    scale = target_head / head.height
    if scale > MAX_UPSCALE:
        enough = math.floor(dpi * MAX_UPSCALE / scale)
        raise IdPhotoError(
            f"the face is too small for a {dpi}-dpi print: the head is about {head.height:.0f} pixels tall and needs "
            f"{target_head / MAX_UPSCALE:.0f}; use a closer or larger photo (this one allows about {enough} dpi)")
    width, height = standard.pixels(dpi)
    eyes_at = (width / 2, _eye_line(standard, head, scale, dpi, height))
    photo, alpha = _split(image, mask)
    photo, alpha, head, scale = _reduced(photo, alpha, head, scale)
    coefficients = _affine(head, scale, eyes_at)
    size = (width, height)
    moved = photo.transform(size, Image.AFFINE, coefficients, Image.BICUBIC, fillcolor=tuple(background))
    cut = alpha.transform(size, Image.AFFINE, coefficients, Image.BILINEAR, fillcolor=0)
    result = Image.composite(moved, Image.new("RGB", size, tuple(background)), cut)
    result.info["dpi"] = (dpi, dpi)
    return result


def _eye_line(standard: IdPreset, head: HeadMeasure, scale: float, dpi: int, height: int) -> float:
    """Return the eye line's row in the output, from the preset's eye height or its gap above the crown."""
    if standard.eyes_from_bottom_mm is not None:
        return height - _mm_to_pixels(_middle(standard.eyes_from_bottom_mm), dpi)
    margin = standard.crown_margin_mm or (0.0, 0.0)
    return _mm_to_pixels(_middle(margin), dpi) + head.crown_above_eyes * scale


def _split(image: Image.Image, mask: Image.Image) -> tuple[Image.Image, Image.Image]:
    """Return the photo's RGB and the subject's alpha: the mask, within the photo's own transparency if any."""
    if mask.size != image.size:
        raise ValueError("the mask must have the photo's size")
    # U2Net leaves faint values over the background; a passport photo's background must be plain, so they go to
    # zero (and the near-certain subject to fully opaque), keeping the soft edge between.
    alpha = mask.convert("L").point(lambda value: min(255, max(0, round((value - _ALPHA_FLOOR) * _ALPHA_STRETCH))))
    if image.mode == "RGBA":
        alpha = Image.fromarray(np.minimum(np.asarray(alpha), np.asarray(image.getchannel("A"))), "L")
    return image.convert("RGB"), alpha


def _reduced(photo: Image.Image, alpha: Image.Image, head: HeadMeasure,
             scale: float) -> tuple[Image.Image, Image.Image, HeadMeasure, float]:
    """Shrink a much larger photo first with an area filter: the affine resampling alone would alias."""
    factor = math.floor(1 / (2 * scale))
    if factor < 2:
        return photo, alpha, head, scale
    eyes = (head.eyes[0] / factor, head.eyes[1] / factor)
    smaller = HeadMeasure(head.angle_degrees, eyes, head.crown_above_eyes / factor, head.chin_below_eyes / factor)
    return photo.reduce(factor), alpha.reduce(factor), smaller, scale * factor


def _affine(head: HeadMeasure, scale: float, eyes_at: tuple[float, float]) -> tuple[float, ...]:
    """Return Pillow's output-to-photo affine: about the eyes, undo the tilt and the scale, then move to eyes_at."""
    angle = math.radians(head.angle_degrees)
    cosine, sine = math.cos(angle) / scale, math.sin(angle) / scale
    u, v = eyes_at
    x, y = head.eyes
    return (cosine, -sine, x - cosine * u + sine * v,
            sine, cosine, y - sine * u - cosine * v)


def encode_id_photo(photo: Image.Image, image_format: str = "jpeg") -> bytes:
    """Encode the photo as JPEG or PNG with its resolution written in (JFIF density, PNG pHYs), no other metadata."""
    dpi = photo.info.get("dpi", (DEFAULT_DPI, DEFAULT_DPI))
    buffer = io.BytesIO()
    if image_format == "jpeg":
        photo.convert("RGB").save(buffer, "JPEG", quality=95, subsampling=0, dpi=dpi)
    elif image_format == "png":
        photo.save(buffer, "PNG", dpi=dpi)
    else:
        raise ValueError("an ID photo is saved as jpeg or png")
    return buffer.getvalue()


def print_sheet(photo: Image.Image, dpi: int | None = None) -> Image.Image:
    """Return a 10x15 cm page (landscape) at the photo's dpi with as many copies as fit and grey cutting lines."""
    dpi = dpi or round(photo.info.get("dpi", (DEFAULT_DPI,))[0])
    width, height = (round(_mm_to_pixels(side, dpi)) for side in SHEET_MM)
    gap = round(_mm_to_pixels(SHEET_GAP_MM, dpi))
    columns = max(1, (width + gap) // (photo.width + gap))
    rows = max(1, (height + gap) // (photo.height + gap))
    page = Image.new("RGB", (width, height), (255, 255, 255))
    left = (width - columns * photo.width - (columns - 1) * gap) // 2
    top = (height - rows * photo.height - (rows - 1) * gap) // 2
    draw = ImageDraw.Draw(page)
    for row in range(rows):
        for column in range(columns):
            x, y = left + column * (photo.width + gap), top + row * (photo.height + gap)
            page.paste(photo.convert("RGB"), (x, y))
            draw.rectangle((x - 1, y - 1, x + photo.width, y + photo.height), outline=(190, 190, 190))
    page.info["dpi"] = (dpi, dpi)
    return page
