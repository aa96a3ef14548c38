"""Crops around a photo's main subject: the detected object, else the subject mask, at an exact aspect ratio."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Iterable

from PIL import Image, ImageStat

from ml.models.nanodet.infer import Box, Detection


@dataclass(frozen=True)
class CropChoice:
    """A crop box in the photo's pixels (it may reach past the photo's edges), and what it was centred on.

    basis is "object" (the main detected object, named by label), "mask" (the subject mask's extent, when nothing
    was detected) or "centre" (neither: the largest centred crop).
    """

    box: tuple[int, int, int, int]
    basis: str
    subject: tuple[int, int, int, int] | None = None
    label: str | None = None

    def to_dict(self) -> dict:
        """Return the JSON form."""
        return {"box": list(self.box), "basis": self.basis,
                "subject": list(self.subject) if self.subject else None, "label": self.label}


def main_object(detections: Iterable[Detection]) -> Detection | None:
    """Return the object with the largest area times score, or None."""
    return max(detections, key=lambda item: item.area * item.score, default=None)


def mask_extent(mask: Image.Image, size: tuple[int, int]) -> tuple[int, int, int, int] | None:
    """Return the bounding box of the mask's pixels above half, or None when it is empty."""
    if mask.size != size:
        raise ValueError(f"the mask is {mask.size[0]}x{mask.size[1]}, the photo {size[0]}x{size[1]}")
    return mask.convert("L").point(lambda value: 255 if value >= 128 else 0).getbbox()


def _covering(box: Box, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Round a box outwards to whole pixels inside the photo."""
    width, height = size
    x1, y1 = max(0, math.floor(box[0])), max(0, math.floor(box[1]))
    return x1, y1, min(width, max(x1 + 1, math.ceil(box[2]))), min(height, max(y1 + 1, math.ceil(box[3])))


def _place(start: int, length: int, crop: int, photo: int) -> int:
    """Return where a crop of the given length starts on one axis: centred on the subject, inside when it fits."""
    if crop > photo:
        # Too long for the photo: centre the photo in it, which also holds the subject.
        return -((crop - photo) // 2)
    return min(max(start - (crop - length) // 2, 0), photo - crop)


def smart_crop_box(size: tuple[int, int], detections: Iterable[Detection], mask: Image.Image | None,
                   aspect: tuple[int, int], margin: float = 0.1) -> CropChoice:
    """Choose a crop of exactly the aspect ratio that holds the main subject with a margin around it.

    The subject is the object with the largest area times score, else the mask's extent, else none (the largest
    centred crop). The margin is a fraction of the subject's width and height on each side, shrunk as far as needed
    for the crop to stay inside the photo; only a subject that no crop of that shape inside the photo can hold gets
    a crop reaching past the edges (smart_crop fills that part).
    """
    width, height = size
    if aspect[0] <= 0 or aspect[1] <= 0:
        raise ValueError(f"aspect ratio {aspect[0]}:{aspect[1]} must be two positive whole numbers")
    if not 0.0 <= margin <= 1.0:
        raise ValueError(f"margin {margin} is not between 0 and 1")
    divisor = math.gcd(*aspect)
    unit_x, unit_y = aspect[0] // divisor, aspect[1] // divisor
    largest_inside = min(width // unit_x, height // unit_y)
    main = main_object(detections)
    if main is not None:
        subject, basis, label = _covering(main.box, size), "object", main.label
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
    units = max(needed, min(wanted, largest_inside))
    crop_width, crop_height = units * unit_x, units * unit_y
    left = _place(x1, subject_width, crop_width, width)
    top = _place(y1, subject_height, crop_height, height)
    return CropChoice((left, top, left + crop_width, top + crop_height), basis, subject, label)


def _edge_colour(image: Image.Image) -> tuple[int, ...]:
    """Return the mean colour of the photo's outermost pixels, a quiet fill for crops that reach past them."""
    rgb = image.convert("RGB")
    edges = [rgb.crop(box) for box in ((0, 0, rgb.width, 1), (0, rgb.height - 1, rgb.width, rgb.height),
                                       (0, 0, 1, rgb.height), (rgb.width - 1, 0, rgb.width, rgb.height))]
    means = [ImageStat.Stat(edge).mean for edge in edges]
    return tuple(round(sum(mean[band] for mean in means) / len(means)) for band in range(3))


def smart_crop(image: Image.Image, box: tuple[int, int, int, int]) -> Image.Image:
    """Cut the box out of the photo; where it reaches past the edges, fill transparent (RGBA) or the edges' colour."""
    left, top, right, bottom = box
    if left >= 0 and top >= 0 and right <= image.width and bottom <= image.height:
        return image.crop(box)
    mode = "RGBA" if "A" in image.getbands() else "RGB"
    fill = (0, 0, 0, 0) if mode == "RGBA" else _edge_colour(image)
    canvas = Image.new(mode, (right - left, bottom - top), fill)
    inside = (max(left, 0), max(top, 0), min(right, image.width), min(bottom, image.height))
    if inside[0] < inside[2] and inside[1] < inside[3]:
        canvas.paste(image.convert(mode).crop(inside), (inside[0] - left, inside[1] - top))
    return canvas
