"""Object detection on photos (NanoDet-g, COCO's 80 classes) and a preview with the labelled boxes.

Detection follows the NanoDet authors' evaluation pipeline: the photo is scaled to fit 416x416 keeping its aspect
ratio, centred on black, normalised in BGR order, and the decoded boxes are mapped back to the photo's pixels.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ml.models.nanodet.network import COCO_CLASSES, decode
from ml.sessions import ModelSession

DETECTION_MODEL = "nanodet"
Box = tuple[float, float, float, float]
Progress = Callable[[int, str], None]

# Distinct, saturated colours for box outlines, picked by class so one class keeps its colour across photos.
_PALETTE = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
            (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40))


@dataclass(frozen=True)
class Detection:
    """One object: its COCO class name, its box (x1, y1, x2, y2) in the photo's pixels and the model's score."""

    label: str
    box: Box
    score: float

    @property
    def area(self) -> float:
        """Return the box's area in square pixels."""
        return max(0.0, self.box[2] - self.box[0]) * max(0.0, self.box[3] - self.box[1])

    def to_dict(self) -> dict:
        """Return the JSON form: label, box as whole pixels [x1, y1, x2, y2], score to four decimals."""
        return {"label": self.label, "box": [round(value) for value in self.box], "score": round(self.score, 4)}


@dataclass(frozen=True)
class Letterbox:
    """Where the photo lies in the network's square input: its scale on each axis and its top-left offset."""

    scale_x: float
    scale_y: float
    left: int
    top: int

    def to_photo(self, box: Box, size: tuple[int, int]) -> Box:
        """Map a box from input pixels back to the photo's pixels, clipped to the photo."""
        width, height = size
        x1, y1, x2, y2 = box
        return (min(max((x1 - self.left) / self.scale_x, 0.0), width),
                min(max((y1 - self.top) / self.scale_y, 0.0), height),
                min(max((x2 - self.left) / self.scale_x, 0.0), width),
                min(max((y2 - self.top) / self.scale_y, 0.0), height))


def letterbox(image: Image.Image, input_size: int) -> tuple[Image.Image, Letterbox]:
    """Scale an RGB photo to fit a black square of input_size, centred; return it and where the photo lies."""
    ratio = min(input_size / image.width, input_size / image.height)
    width, height = max(1, round(image.width * ratio)), max(1, round(image.height * ratio))
    canvas = Image.new("RGB", (input_size, input_size))
    left, top = (input_size - width) // 2, (input_size - height) // 2
    canvas.paste(image.resize((width, height), Image.BILINEAR, reducing_gap=3.0), (left, top))
    return canvas, Letterbox(width / image.width, height / image.height, left, top)


def flatten_alpha(image: Image.Image) -> Image.Image:
    """Return the photo as RGB, transparent parts black like the letterbox around them."""
    if image.mode == "RGB":
        return image
    if "A" in image.getbands() or image.mode == "P" and "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGB", rgba.size)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return image.convert("RGB")


def preprocess(image: Image.Image, session: ModelSession) -> tuple[torch.Tensor, Letterbox]:
    """Letterbox the photo, reorder the channels as the model wants and normalise (NCHW float32)."""
    settings = session.settings
    square, placement = letterbox(flatten_alpha(image), settings["input_size"])
    pixels = np.asarray(square, dtype=np.float32)
    if settings.get("channels") == "BGR":
        pixels = pixels[..., ::-1]
    pixels = (pixels - np.asarray(settings["mean"], np.float32)) / np.asarray(settings["std"], np.float32)
    return torch.from_numpy(np.ascontiguousarray(pixels.transpose(2, 0, 1))).unsqueeze(0), placement


def class_indices(classes: Iterable[str]) -> list[int]:
    """Return the model's indices of COCO class names; raise ValueError naming any unknown one."""
    wanted = [name.strip().lower() for name in classes]
    unknown = sorted(set(wanted) - set(COCO_CLASSES))
    if unknown:
        raise ValueError(f"unknown class {', '.join(map(repr, unknown))}; classes are COCO's: "
                         f"{', '.join(COCO_CLASSES)}")
    return sorted({COCO_CLASSES.index(name) for name in wanted})


def detect_objects(image: Image.Image, session: ModelSession, *, score_threshold: float = 0.3,
                   classes: set[str] | None = None, progress: Progress | None = None) -> list[Detection]:
    """Return every object found in the photo, best score first; only the named COCO classes when some are given."""
    if not 0.0 <= score_threshold <= 1.0:
        raise ValueError(f"score threshold {score_threshold} is not between 0 and 1")
    keep = class_indices(classes) if classes else None
    if progress:
        progress(0, "detecting objects")
    batch, placement = preprocess(image, session)
    with session.inference():
        scores, distributions = session.model(session.to_device(batch))
    scores, distributions = scores[0].float().cpu(), distributions[0].float().cpu()
    if keep is not None:
        # Other classes' scores are dropped before suppression, so they never take a wanted object's place.
        mask = torch.zeros(scores.shape[1], dtype=torch.bool)
        mask[keep] = True
        scores = scores * mask
    size = session.settings["input_size"]
    found = decode(scores, distributions, (size, size), score_threshold=score_threshold)
    detections = [Detection(COCO_CLASSES[raw.class_index], placement.to_photo(raw.box, image.size), raw.score)
                  for raw in found]
    if progress:
        progress(100, f"found {len(detections)} object{'s' if len(detections) != 1 else ''}")
    return detections


def _colour(label: str) -> tuple[int, int, int]:
    return _PALETTE[COCO_CLASSES.index(label) % len(_PALETTE)] if label in COCO_CLASSES else _PALETTE[0]


def _text_colour(background: tuple[int, int, int]) -> tuple[int, int, int]:
    luminance = 0.299 * background[0] + 0.587 * background[1] + 0.114 * background[2]
    return (0, 0, 0) if luminance > 150 else (255, 255, 255)


def draw_detections(image: Image.Image, detections: Iterable[Detection]) -> Image.Image:
    """Return an RGB copy of the photo, its size, with each object's box and a "label 87%" tag drawn on it."""
    preview = flatten_alpha(image).copy()
    draw = ImageDraw.Draw(preview)
    short_side = min(preview.size)
    line = max(2, round(short_side / 250))
    font = ImageFont.load_default(size=max(12, round(short_side / 40)))
    # Lowest scores first, so the best objects' boxes and tags end on top.
    for detection in sorted(detections, key=lambda item: item.score):
        colour = _colour(detection.label)
        x1, y1, x2, y2 = detection.box
        # A dark halo around the coloured outline keeps it visible on light and dark photos alike.
        draw.rectangle((x1 - line, y1 - line, x2 + line, y2 + line), outline=(0, 0, 0), width=line)
        draw.rectangle((x1, y1, x2, y2), outline=colour, width=line)
        text = f"{detection.label} {detection.score:.0%}"
        left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
        pad = max(2, line)
        tag_width, tag_height = right - left + 2 * pad, bottom - top + 2 * pad
        tag_x = min(max(x1 - line, 0), max(preview.width - tag_width, 0))
        # Above the box when there is room, inside its top edge otherwise.
        tag_y = y1 - line - tag_height if y1 - line - tag_height >= 0 else y1
        draw.rectangle((tag_x, tag_y, tag_x + tag_width, tag_y + tag_height), fill=colour)
        draw.text((tag_x + pad - left, tag_y + pad - top), text, fill=_text_colour(colour), font=font)
    return preview
