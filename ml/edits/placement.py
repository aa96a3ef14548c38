"""Put a cutout on a canvas: its size or aspect ratio, padding, the subject's position and scale; and the region
of interest a subject is looked for in.

The option texts are parsed here (no torch: the declarations use these parsers to validate) and applied to images
by `place`. Positions follow remove.bg's: `original` keeps the subject where it was in the frame, `center` centres
it, `X,Y` percentages put its box at that fraction of the free space (0,0 top left, 100,100 bottom right).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from PIL import Image

# Pixels at or below this alpha do not count as subject when measuring it (anti-aliasing noise on the background).
SUBJECT_THRESHOLD = 16
MAX_CANVAS_SIDE = 65_500
_SIZE = re.compile(r"^\s*(\d{1,6})\s*[x×]\s*(\d{1,6})\s*$", re.IGNORECASE)
_RATIO = re.compile(r"^\s*(\d{1,3}(?:\.\d{1,3})?)\s*:\s*(\d{1,3}(?:\.\d{1,3})?)\s*$")
_NUMBER = re.compile(r"^\s*(\d{1,6}(?:\.\d{1,4})?)\s*(%?)\s*$")


@dataclass(frozen=True)
class CanvasSpec:
    """A canvas of a fixed size in pixels, or of an aspect ratio (covering the photo)."""

    width: float
    height: float
    is_ratio: bool

    def size(self, photo_width: int, photo_height: int) -> tuple[int, int]:
        """Return the canvas's size in pixels for a photo of this size (a ratio covers the photo)."""
        if not self.is_ratio:
            return int(self.width), int(self.height)
        if photo_width / photo_height >= self.width / self.height:
            return photo_width, max(1, round(photo_width * self.height / self.width))
        return max(1, round(photo_height * self.width / self.height)), photo_height


def parse_canvas(text: str) -> CanvasSpec:
    """Parse `WIDTHxHEIGHT` (pixels) or `W:H` (an aspect ratio); raise ValueError."""
    size, ratio = _SIZE.match(text), _RATIO.match(text)
    if size:
        width, height = int(size.group(1)), int(size.group(2))
        if not (1 <= width <= MAX_CANVAS_SIDE and 1 <= height <= MAX_CANVAS_SIDE):
            raise ValueError(f"each side must be from 1 to {MAX_CANVAS_SIDE} pixels")
        return CanvasSpec(width, height, False)
    if ratio:
        width, height = float(ratio.group(1)), float(ratio.group(2))
        if not (width > 0 and height > 0 and 1 / 20 <= width / height <= 20):
            raise ValueError("an aspect ratio must have both sides above 0 and be at most 20:1")
        return CanvasSpec(width, height, True)
    raise ValueError(f"{text[:40]!r} is not a size like 1200x800 or an aspect ratio like 1:1")


def parse_position(text: str) -> tuple[float, float] | None:
    """Parse `original` (None), `center` or `X,Y` percentages into fractions of the free space; raise ValueError."""
    value = text.strip().lower()
    if value == "original":
        return None
    if value in ("center", "centre"):
        return 0.5, 0.5
    parts = [part.strip().rstrip("%") for part in value.split(",")]
    try:
        numbers = [float(part) for part in parts]
    except ValueError:
        numbers = []
    if len(numbers) != 2 or not all(0 <= number <= 100 for number in numbers):
        raise ValueError(f"{text[:40]!r} is not original, center or two percentages X,Y from 0 to 100")
    return numbers[0] / 100, numbers[1] / 100


def parse_roi(text: str) -> tuple[tuple[float, bool], ...]:
    """Parse `x1,y1,x2,y2`, each in pixels or a percentage (`10%`), into (value, is_percent); raise ValueError."""
    parts = [_NUMBER.match(part) for part in text.split(",")]
    if len(parts) != 4 or not all(parts):
        raise ValueError(f"{text[:40]!r} is not a region x1,y1,x2,y2 in pixels or percentages (10%,10%,90%,90%)")
    values = tuple((float(match.group(1)), match.group(2) == "%") for match in parts if match)
    if any(percent and value > 100 for value, percent in values):
        raise ValueError("a percentage must be from 0 to 100")
    return values


def roi_box(text: str, width: int, height: int) -> tuple[int, int, int, int]:
    """Return the region in the photo's pixels; raise ValueError when it is empty or past the photo."""
    (x1, p1), (y1, q1), (x2, p2), (y2, q2) = parse_roi(text)
    box = tuple(round(value * side / 100) if percent else round(value) for value, percent, side in
                ((x1, p1, width), (y1, q1, height), (x2, p2, width), (y2, q2, height)))
    left, top, right, bottom = box
    if right > width or bottom > height:
        raise ValueError(f"the region {left},{top},{right},{bottom} reaches past the photo ({width}x{height})")
    if right - left < 8 or bottom - top < 8:
        raise ValueError("the region must be x1,y1,x2,y2 with x2 above x1 and y2 above y1, at least 8 pixels each")
    return left, top, right, bottom


def subject_box(alpha: Image.Image) -> tuple[int, int, int, int] | None:
    """Return the subject's bounding box in the alpha (None when there is no subject)."""
    return alpha.point(lambda value: 255 if value > SUBJECT_THRESHOLD else 0).getbbox()


def target_box(box: tuple[int, int, int, int], photo_size: tuple[int, int], canvas: tuple[int, int], *,
               position: tuple[float, float] | None, scale: int, padding: int) -> tuple[int, int, int, int]:
    """Return where the subject's box goes on the canvas (left, top, width, height)."""
    box_width, box_height = box[2] - box[0], box[3] - box[1]
    if position is None:
        # The photo covers the canvas, centred, as a background picture does; the subject keeps its place in it.
        cover = max(canvas[0] / photo_size[0], canvas[1] / photo_size[1])
        centre_x = (box[0] + box[2]) / 2 * cover + (canvas[0] - photo_size[0] * cover) / 2
        centre_y = (box[1] + box[3]) / 2 * cover + (canvas[1] - photo_size[1] * cover) / 2
        width = max(1, round(box_width * cover * scale / 100))
        height = max(1, round(box_height * cover * scale / 100))
        return round(centre_x - width / 2), round(centre_y - height / 2), width, height
    pad_x, pad_y = canvas[0] * padding / 100, canvas[1] * padding / 100
    free_width, free_height = max(1.0, canvas[0] - 2 * pad_x), max(1.0, canvas[1] - 2 * pad_y)
    factor = min(free_width / box_width, free_height / box_height) * scale / 100
    width, height = max(1, round(box_width * factor)), max(1, round(box_height * factor))
    left = pad_x + (free_width - width) * position[0]
    top = pad_y + (free_height - height) * position[1]
    return round(left), round(top), width, height


def place(image: Image.Image, alpha: Image.Image, canvas: tuple[int, int], *, position: tuple[float, float] | None,
          scale: int, padding: int) -> tuple[Image.Image, Image.Image]:
    """Return the image and its alpha moved onto a transparent canvas of this size, the subject where asked."""
    box = subject_box(alpha)
    empty = Image.new(image.mode, canvas, 0 if image.mode == "L" else (0,) * len(image.mode))
    if box is None:
        return empty, Image.new("L", canvas, 0)
    left, top, width, height = target_box(box, image.size, canvas, position=position, scale=scale, padding=padding)
    # Pillow resizes RGBA premultiplied, so no dark fringe comes from the transparent pixels around the subject.
    subject = image.crop(box).resize((width, height), Image.LANCZOS)
    subject_alpha = alpha.crop(box).resize((width, height), Image.LANCZOS)
    empty.paste(subject, (left, top))
    placed_alpha = Image.new("L", canvas, 0)
    placed_alpha.paste(subject_alpha, (left, top))
    return empty, placed_alpha
