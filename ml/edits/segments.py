"""Objects outlined one by one: a subject mask inside each detector box, and a preview colouring each object.

An ObjectMask holds its mask over its box only, so twenty objects on a large photo cost their boxes, not twenty
photo-sized arrays. The subject model comes in as a function (a crop in, its mask out), so nothing here loads one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
from PIL import Image

from ml.models.nanodet.infer import Detection, draw_detections, flatten_alpha

# The box is grown by this share of its width and height on each side before the subject model sees it: without
# context the model takes the box's own edges (a cut-off leg, the frame) for the subject's outline.
CONTEXT_MARGIN = 0.1
# One colour per object (not per class, as detect's boxes have), so two people side by side stay apart.
OBJECT_COLOURS = ((230, 25, 75), (60, 180, 75), (255, 225, 25), (0, 130, 200), (245, 130, 48), (145, 30, 180),
                  (70, 240, 240), (240, 50, 230), (210, 245, 60), (250, 190, 212), (0, 128, 128), (170, 110, 40))
# How much of an object's colour covers its pixels in the preview (the photo shows through).
TINT = 0.5
PixelBox = tuple[int, int, int, int]
Predict = Callable[[Image.Image], Image.Image]
Progress = Callable[[int, "str | None"], None]


@dataclass
class ObjectMask:
    """One object's mask: 8-bit (0-255) over its whole-pixel box (left, top, right, bottom); zero elsewhere."""

    detection: Detection
    box: PixelBox
    mask: np.ndarray  # uint8, (bottom - top, right - left)

    def binary(self, threshold: int) -> np.ndarray:
        """Return the box's pixels at or above threshold (0-255) as a boolean array."""
        return self.mask >= threshold

    def full(self, size: tuple[int, int], threshold: int) -> np.ndarray:
        """Return the mask at the photo's size (width, height) as 0/1, 1 at or above threshold."""
        canvas = np.zeros((size[1], size[0]), dtype=np.uint8)
        left, top, right, bottom = self.box
        canvas[top:bottom, left:right] = self.binary(threshold)
        return canvas


def pixel_box(box: Sequence[float], size: tuple[int, int]) -> PixelBox:
    """Return a detector's box as whole pixels inside the photo, at least one pixel wide and tall."""
    width, height = size
    left = min(max(int(np.floor(box[0])), 0), width - 1)
    top = min(max(int(np.floor(box[1])), 0), height - 1)
    right = min(max(int(np.ceil(box[2])), left + 1), width)
    bottom = min(max(int(np.ceil(box[3])), top + 1), height)
    return left, top, right, bottom


def object_mask(photo: Image.Image, detection: Detection, predict: Predict) -> ObjectMask:
    """Return the object's mask: the subject model on its box with a context margin, cut back to the box."""
    left, top, right, bottom = pixel_box(detection.box, photo.size)
    grow_x, grow_y = round((right - left) * CONTEXT_MARGIN), round((bottom - top) * CONTEXT_MARGIN)
    outer = (max(left - grow_x, 0), max(top - grow_y, 0),
             min(right + grow_x, photo.width), min(bottom + grow_y, photo.height))
    mask = np.asarray(predict(photo.crop(outer)))
    inside = mask[top - outer[1]:bottom - outer[1], left - outer[0]:right - outer[0]]
    return ObjectMask(detection, (left, top, right, bottom), np.array(inside, dtype=np.uint8))


def object_masks(photo: Image.Image, detections: Sequence[Detection], predict: Predict,
                 progress: Progress) -> list[ObjectMask]:
    """Return each object's mask, reporting progress from 0 to 100."""
    masks = []
    for number, detection in enumerate(detections):
        progress(100 * number // max(len(detections), 1), f"outlining object {number + 1} of {len(detections)}")
        masks.append(object_mask(photo, detection, predict))
    return masks


def union_mask(masks: Sequence[ObjectMask], size: tuple[int, int]) -> np.ndarray:
    """Return the pixelwise maximum of the masks (8-bit) at the photo's size (width, height)."""
    union = np.zeros((size[1], size[0]), dtype=np.uint8)
    for item in masks:
        left, top, right, bottom = item.box
        np.maximum(union[top:bottom, left:right], item.mask, out=union[top:bottom, left:right])
    return union


def draw_segments(image: Image.Image, objects: Sequence[ObjectMask], threshold: int) -> Image.Image:
    """Return an RGB copy of the photo with each object's mask tinted in its own colour and its box labelled."""
    pixels = np.array(flatten_alpha(image), dtype=np.uint8)
    # Largest first, so a small object in front of a large one keeps its colour on top.
    order = sorted(range(len(objects)), key=lambda index: -int(objects[index].binary(threshold).sum()))
    for index in order:
        item = objects[index]
        left, top, right, bottom = item.box
        region = pixels[top:bottom, left:right]
        inside = item.binary(threshold)
        colour = np.asarray(OBJECT_COLOURS[index % len(OBJECT_COLOURS)], dtype=np.float32)
        region[inside] = (region[inside] * (1 - TINT) + colour * TINT).round().astype(np.uint8)
    return draw_detections(Image.fromarray(pixels, mode="RGB"), [item.detection for item in objects])
