"""Crops around a photo's main subject: the detected object, else the subject mask, at an exact aspect ratio."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

import numpy as np
from PIL import Image, ImageFilter

from ml.models.nanodet.infer import Box, Detection

# How much each kind of object counts when the crop cannot hold everything: people and animals first.
LIVING = frozenset({"person", "bird", "cat", "dog", "horse", "sheep", "cow", "elephant", "bear", "zebra", "giraffe"})
OBJECT_WEIGHT = 0.5
# The subject mask counts as much as this fraction of the most important object.
MASK_WEIGHT = 0.5
# The longest side of the grid a crop that cannot hold the whole subject is placed on (within 1/256 of the photo).
MAP_SIDE = 256
# The longest side a blurred backdrop is made at before it is scaled to the crop.
BACKDROP_SIDE = 512


@dataclass(frozen=True)
class CropChoice:
    """A crop box in the photo's pixels (it reaches past the photo's edges only when asked to fit the subject).

    basis is "object" (the main detected objects, named by the main one's label), "mask" (the subject mask's
    extent, when nothing was detected) or "centre" (neither: the largest centred crop); whole says whether the
    crop holds all of the subject.
    """

    box: tuple[int, int, int, int]
    basis: str
    subject: tuple[int, int, int, int] | None = None
    label: str | None = None
    whole: bool = True

    def to_dict(self) -> dict:
        """Return the JSON form."""
        return {"box": list(self.box), "basis": self.basis,
                "subject": list(self.subject) if self.subject else None, "label": self.label, "whole": self.whole}


def main_object(detections: Iterable[Detection]) -> Detection | None:
    """Return the object with the largest area times score, or None."""
    return max(detections, key=lambda item: item.area * item.score, default=None)


def mask_extent(mask: Image.Image, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Return the bounding box of the mask's pixels above half, or None when it is empty."""
    if mask.size != size:
        raise ValueError(f"the mask is {mask.size[0]}x{mask.size[1]}, the photo {size[0]}x{size[1]}")
    return mask.convert("L").point(lambda value: 255 if value >= 128 else 0).getbbox()


def mask_centroid(mask: Image.Image) -> tuple[float, float]:
    """Return the mean position of the mask's pixels above half (the mask must have some)."""
    inside = np.asarray(mask.convert("L")) >= 128
    per_column, per_row = inside.sum(0), inside.sum(1)
    total = max(1, int(per_row.sum()))
    return float(per_column @ np.arange(len(per_column))) / total, float(per_row @ np.arange(len(per_row))) / total


def _covering(box: Box, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Round a box outwards to whole pixels inside the photo."""
    width, height = size
    x1, y1 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    return x1, y1, min(width, max(x1 + 1, math.ceil(box[2]))), min(height, max(y1 + 1, math.ceil(box[3])))


def importance(detection: Detection) -> float:
    """Return how much an object counts: its score, halved for things that are neither people nor animals."""
    return detection.score * (1.0 if detection.label in LIVING else OBJECT_WEIGHT)


def _place(start: int, length: int, crop: int, photo: int) -> int:
    """Return where a crop of the given length starts on one axis: centred on the subject, inside when it fits."""
    if crop > photo:
        # Too long for the photo: centre the photo in it, which also holds the subject.
        return -((crop - photo) // 2)
    return min(max(start - (crop - length) // 2, 0), photo - crop)


def _subject(main: Detection, detections: list[Detection], size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Return the box around the main object and the people and animals that count at least half as much."""
    boxes = [main.box] + [item.box for item in detections
                          if item.label in LIVING and importance(item) >= importance(main) / 2]
    union = (min(box[0] for box in boxes), min(box[1] for box in boxes),
             max(box[2] for box in boxes), max(box[3] for box in boxes))
    return _covering(union, size)


def _head_first(rows: int) -> np.ndarray:
    """Return a person's weight down the rows of their box: most at the head, a tenth at the feet."""
    return 0.1 + 0.9 * np.linspace(1.0, 0.0, rows) ** 2


def _core_first(length: int) -> np.ndarray:
    """Return an object's weight across its box: most in the middle, a quarter at the sides."""
    return 1.0 - 0.75 * np.abs(np.linspace(-1.0, 1.0, length))


def _kept(weights: np.ndarray, window: tuple[int, int]) -> np.ndarray:
    """Return the weight inside a window of (columns, rows) at each of its positions, rows by columns."""
    table = np.pad(weights.cumsum(0).cumsum(1), ((1, 0), (1, 0)))
    columns, rows = window
    return table[rows:, columns:] - table[:-rows, columns:] - table[rows:, :-columns] + table[:-rows, :-columns]


def window_scores(size: tuple[int, int], detections: Iterable[Detection], mask: Image.Image | None,
                  crop: tuple[int, int]) -> tuple[np.ndarray, float]:
    """Return what a crop of this size keeps at each position on a grid of MAP_SIDE, and the grid's scale.

    An object counts its importance whatever its size (a child beside a horse counts nearly as much as the horse),
    a tenth of it when it counts less than half as much as the most important object (a hand or a bag found apart
    from its person), times the square of the share of it the crop keeps: half of two people is worth less than
    one whole. The share is weighted, most in the middle of its box, so a crop that must cut an object cuts its
    sides first, and down a person from the head to the feet, so it keeps the face. The subject mask adds
    MASK_WEIGHT of the top importance times the share of the mask kept.
    """
    detections = list(detections)
    scale = min(1.0, MAP_SIDE / max(size))
    columns, rows = max(1, round(size[0] * scale)), max(1, round(size[1] * scale))
    window = min(columns, max(1, round(crop[0] * scale))), min(rows, max(1, round(crop[1] * scale)))
    scores = np.zeros((rows - window[1] + 1, columns - window[0] + 1))
    top = max((importance(item) for item in detections), default=0.0)
    for item in detections:
        x1, y1 = min(columns - 1, int(item.box[0] * scale)), min(rows - 1, int(item.box[1] * scale))
        x2, y2 = max(x1 + 1, math.ceil(item.box[2] * scale)), max(y1 + 1, math.ceil(item.box[3] * scale))
        down = _head_first(y2 - y1) if item.label == "person" else _core_first(y2 - y1)
        share = np.zeros((rows, columns))
        share[y1:y2, x1:x2] = np.outer(down, _core_first(x2 - x1))
        weight = importance(item) * (1.0 if importance(item) >= top / 2 else 0.1)
        scores += weight * (_kept(share, window) / share.sum()) ** 2
    if mask is not None:
        values = np.asarray(mask.convert("L").resize((columns, rows), Image.Resampling.BILINEAR), dtype=float)
        if values.sum() > 0:
            scores += MASK_WEIGHT * (top or 1.0) * _kept(values, window) / values.sum()
    return scores, scale


def _span(centre: float, crop: int, photo: int) -> tuple[int, int]:
    """Return the first and last start of a crop inside the photo that holds the centre (the nearest if none does)."""
    first = min(max(0, math.floor(centre) + 1 - crop), photo - crop)
    return first, max(first, min(math.floor(centre), photo - crop))


def _best_window(scores: np.ndarray, scale: float, crop: tuple[int, int], size: tuple[int, int],
                 centre: tuple[float, float]) -> tuple[int, int]:
    """Return the left and top of the crop inside the photo that holds the centre and keeps the most.

    Of positions that keep as much, the one whose middle is nearest the centre wins.
    """
    ys, xs = np.indices(scores.shape)
    distance = np.hypot(xs + crop[0] * scale / 2 - centre[0] * scale, ys + crop[1] * scale / 2 - centre[1] * scale)
    ranked = np.round(scores, 4) - 1e-6 * distance / max(scores.shape)
    spans = _span(centre[0], crop[0], size[0]), _span(centre[1], crop[1], size[1])
    allowed = np.zeros(scores.shape, dtype=bool)
    allowed[min(scores.shape[0] - 1, math.ceil(spans[1][0] * scale)):math.floor(spans[1][1] * scale) + 1,
            min(scores.shape[1] - 1, math.ceil(spans[0][0] * scale)):math.floor(spans[0][1] * scale) + 1] = True
    row, column = np.unravel_index(np.argmax(np.where(allowed, ranked, -np.inf)), scores.shape)
    left = min(max(spans[0][0], round(column / scale)), spans[0][1])
    top = min(max(spans[1][0], round(row / scale)), spans[1][1])
    return left, top


def smart_crop_box(size: tuple[int, int], detections: Iterable[Detection], mask: Image.Image | None,
                   aspect: tuple[int, int], margin: float = 0.1, fit_subject: bool = False) -> CropChoice:
    """Choose a crop of exactly the aspect ratio around the main subject with a margin around it.

    The subject is the object with the largest area times score together with the people and animals that count
    at least half as much as it, else the mask's extent, else none (the largest centred crop). The margin is a
    fraction of the subject's width and height on each side, shrunk as far as needed for the crop to stay inside
    the photo. When no crop of that shape inside the photo holds the whole subject, the crop is the largest one
    inside the photo that holds the main object's centre (the mask's centroid without one) and keeps the most
    (window_scores), unless fit_subject asks for a crop reaching past the edges that holds all of the subject (the
    caller fills that part).
    """
    width, height = size
    if aspect[0] <= 0 or aspect[1] <= 0:
        raise ValueError(f"aspect ratio {aspect[0]}:{aspect[1]} must be two positive whole numbers")
    if not 0.0 <= margin <= 1.0:
        raise ValueError(f"margin {margin} is not between 0 and 1")
    if mask is not None and mask.size != size:
        raise ValueError(f"the mask is {mask.size[0]}x{mask.size[1]}, the photo {size[0]}x{size[1]}")
    detections = list(detections)
    divisor = math.gcd(*aspect)
    unit_x, unit_y = aspect[0] // divisor, aspect[1] // divisor
    largest_inside = min(width // unit_x, height // unit_y)
    main = main_object(detections)
    if main is not None:
        subject, basis, label = _subject(main, detections, size), "object", main.label
    else:
        subject, basis, label = (mask_extent(mask, size) if mask is not None else None), "mask", None
    if subject is None:
        units = max(1, largest_inside)
        crop_width, crop_height = units * unit_x, units * unit_y
        left, top = (width - crop_width) // 2, (height - crop_height) // 2
        return CropChoice((left, top, left + crop_width, top + crop_height), "centre")
    x1, y1, x2, y2 = subject
    subject_width, subject_height = x2 - x1, y2 - y1
    needed = max(math.ceil(subject_width / unit_x), math.ceil(subject_height / unit_y), 1)
    wanted = max(math.ceil(subject_width * (1 + 2 * margin) / unit_x),
                 math.ceil(subject_height * (1 + 2 * margin) / unit_y), 1)
    if largest_inside < needed and largest_inside > 0 and not fit_subject:
        units = largest_inside
        crop_width, crop_height = units * unit_x, units * unit_y
        centre = mask_centroid(mask) if main is None else (
            (main.box[0] + main.box[2]) / 2, (main.box[1] + main.box[3]) / 2)
        scores, scale = window_scores(size, detections, mask, (crop_width, crop_height))
        left, top = _best_window(scores, scale, (crop_width, crop_height), size, centre)
        return CropChoice((left, top, left + crop_width, top + crop_height), basis, subject, label, whole=False)
    units = max(needed, min(wanted, largest_inside))
    crop_width, crop_height = units * unit_x, units * unit_y
    left = _place(x1, subject_width, crop_width, width)
    top = _place(y1, subject_height, crop_height, height)
    return CropChoice((left, top, left + crop_width, top + crop_height), basis, subject, label)


def _blurred_extension(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """Return the box's canvas filled with the photo scaled to cover it and blurred, a backdrop for its edges.

    The blur is made at most BACKDROP_SIDE pixels long and scaled up: a blur this wide loses nothing by it.
    """
    width, height = box[2] - box[0], box[3] - box[1]
    shrink = min(1.0, BACKDROP_SIDE / max(width, height))
    small = max(1, round(width * shrink)), max(1, round(height * shrink))
    scale = max(small[0] / image.width, small[1] / image.height)
    covering = max(small[0], math.ceil(image.width * scale)), max(small[1], math.ceil(image.height * scale))
    cover = image.resize(covering, Image.Resampling.BILINEAR, reducing_gap=2.0)
    left, top = (cover.width - small[0]) // 2, (cover.height - small[1]) // 2
    backdrop = cover.crop((left, top, left + small[0], top + small[1]))
    blurred = backdrop.filter(ImageFilter.GaussianBlur(max(2.0, max(small) / 40)))
    return blurred.resize((width, height), Image.Resampling.BILINEAR)


def smart_crop(image: Image.Image, box: tuple[int, int, int, int],
               fill: tuple[int, int, int, int] | None = None) -> Image.Image:
    """Cut the box out of the photo; where it reaches past the edges, fill the colour given, else a blurred backdrop.

    The colour is RGBA; the result is RGBA when the photo or the colour has transparency, else RGB.
    """
    left, top, right, bottom = box
    if left >= 0 and top >= 0 and right <= image.width and bottom <= image.height:
        return image.crop(box)
    transparent = "A" in image.getbands() or (fill is not None and fill[3] < 255)
    mode = "RGBA" if transparent else "RGB"
    photo = image.convert(mode)
    if fill is None:
        canvas = _blurred_extension(photo, box)
    else:
        canvas = Image.new(mode, (right - left, bottom - top), fill if transparent else fill[:3])
    inside = (max(left, 0), max(top, 0), min(right, image.width), min(bottom, image.height))
    if inside[0] < inside[2] and inside[1] < inside[3]:
        piece, where = photo.crop(inside), (inside[0] - left, inside[1] - top)
        if transparent:
            canvas.alpha_composite(piece, where)
        else:
            canvas.paste(piece, where)
    return canvas
