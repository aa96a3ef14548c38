"""MTCNN face detection (Zhang et al., 2016): the cascade of three small networks run over an image pyramid.

P-Net scans every pyramid level for face-like 12x12 windows, R-Net re-scores the candidates at 24x24 and O-Net at
48x48, where it also places five landmarks. Each stage regresses its boxes and drops overlapping ones (non-maximum
suppression). The constants and box arithmetic follow facenet-pytorch 2.6.0, whose weights we run, so that our
boxes match its boxes (tests/ml/test_mtcnn.py checks that against its own code).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as functional
from PIL import Image

from ml.models.mtcnn.network import PNet, RefineNet
from ml.models.nms import non_maximum_suppression
from ml.sessions import ModelSession

Progress = Callable[[int, str], None]

PYRAMID_FACTOR = 0.709
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
# P-Net reads 12x12 windows with a stride of 2; bands of rows overlap by the window less one stride, so every band's
# output rows are exactly the rows a whole-image pass would give.
_CELL, _STRIDE = 12, 2
_BAND_PIXELS = 1 << 20
_REFINE_BATCH = 256


@dataclass(frozen=True)
class Face:
    """One detected face in photo pixels: box (x1, y1, x2, y2), five landmarks and the detector's confidence.

    Landmarks are, in order: the eye on the image's left, the eye on the image's right, the nose tip, the mouth
    corner on the image's left and the one on its right.
    """

    box: tuple[float, float, float, float]
    landmarks: tuple[tuple[float, float], ...]
    confidence: float

    @property
    def width(self) -> float:
        """Return the box width in pixels."""
        return self.box[2] - self.box[0]

    @property
    def height(self) -> float:
        """Return the box height in pixels."""
        return self.box[3] - self.box[1]

    def to_dict(self) -> dict:
        """Return the face as plain JSON types, coordinates rounded to a tenth of a pixel."""
        return {
            "box": [round(value, 1) for value in self.box],
            "landmarks": {name: [round(x, 1), round(y, 1)] for name, (x, y) in zip(LANDMARK_NAMES, self.landmarks)},
            "confidence": round(self.confidence, 4),
        }


def detect_faces(image: Image.Image, session: ModelSession, *, min_face_size: int = 20,
                 thresholds: Sequence[float] = (0.6, 0.7, 0.7), progress: Progress | None = None) -> list[Face]:
    """Return every face in a photo, the largest first."""
    if min_face_size < 1:
        raise ValueError("min_face_size must be at least 1 pixel")
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    pixels = np.asarray(rgb)
    model = session.model
    with session.inference():
        boxes = _propose(pixels, model.pnet, session, min_face_size, thresholds[0], progress)
        _report(progress, 90, f"refining {len(boxes)} candidates")
        boxes = _refine(pixels, boxes, model.rnet, session, thresholds[1])
        _report(progress, 95, f"placing landmarks on {len(boxes)} candidates")
        boxes, points = _output(pixels, boxes, model.onet, session, thresholds[2])
    _report(progress, 100, f"{len(boxes)} faces")
    faces = [Face(tuple(float(value) for value in box[:4]), tuple((float(x), float(y)) for x, y in landmarks),
                  float(box[4])) for box, landmarks in zip(boxes, points)]
    return sorted(faces, key=lambda face: face.width * face.height, reverse=True)


def _report(progress: Progress | None, percent: int, message: str) -> None:
    if progress is not None:
        progress(percent, message)


def pyramid_scales(height: int, width: int, min_face_size: int) -> list[float]:
    """Return the scales at which P-Net's 12-pixel window sees faces from min_face_size up to the whole photo."""
    scale = _CELL / min_face_size
    side = min(height, width) * scale
    scales = []
    while side >= _CELL:
        scales.append(scale)
        scale *= PYRAMID_FACTOR
        side *= PYRAMID_FACTOR
    return scales


def _normalise(pixels: torch.Tensor) -> torch.Tensor:
    return (pixels - 127.5) * 0.0078125


def _propose(pixels: np.ndarray, pnet: PNet, session: ModelSession, min_face_size: int, threshold: float,
             progress: Progress | None) -> np.ndarray:
    """Stage one: candidate boxes (x1, y1, x2, y2, score) from every pyramid level, regressed and squared."""
    height, width = pixels.shape[:2]
    # Straight into contiguous float NCHW: area resampling would otherwise copy a channels-last photo once more.
    photo = torch.empty((1, 3, height, width))
    photo.numpy()[0] = pixels.transpose(2, 0, 1)
    scales = pyramid_scales(height, width, min_face_size)
    work = [scale * scale for scale in scales]
    found = []
    for index, scale in enumerate(scales):
        _report(progress, int(90 * sum(work[:index]) / sum(work)), f"scale {index + 1} of {len(scales)}")
        level = functional.interpolate(photo, size=(int(height * scale + 1), int(width * scale + 1)), mode="area")
        # In place: on a large photo the first level alone is a hundred megabytes.
        offsets, probability = _scan(level.sub_(127.5).mul_(0.0078125), pnet, session)
        candidates = _windows(offsets, probability, scale, threshold)
        found.append(candidates[non_maximum_suppression(candidates[:, :4], candidates[:, 4], 0.5)])
    boxes = np.concatenate(found) if found else np.zeros((0, 9), np.float32)
    boxes = boxes[non_maximum_suppression(boxes[:, :4], boxes[:, 4], 0.7)]
    # P-Net's offsets are relative to the window's size without the +1 the later stages use.
    size = np.stack([boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]] * 2, axis=1)
    boxes = np.concatenate([boxes[:, :4] + boxes[:, 5:9] * size, boxes[:, 4:5]], axis=1)
    return square(boxes)


def _scan(level: torch.Tensor, pnet: PNet, session: ModelSession) -> tuple[torch.Tensor, torch.Tensor]:
    """Run P-Net over one pyramid level in bands of rows, so memory stays bounded on large photos."""
    height, width = level.shape[2:]
    band = max(_CELL + _STRIDE, (_BAND_PIXELS // max(width, 1)) // 2 * 2)
    if height <= band:
        offsets, probability = pnet(session.to_device(level))
        return offsets.float().cpu(), probability.float().cpu()
    step = band - (_CELL - _STRIDE)
    offset_rows, probability_rows = [], []
    for top in range(0, height, step):
        last = top + band >= height
        offsets, probability = pnet(session.to_device(level[:, :, top:top + band]))
        # An even band's rows are all complete windows; the last band keeps its partial row as a whole pass does.
        keep = offsets.shape[2] if last else step // _STRIDE
        offset_rows.append(offsets[:, :, :keep].float().cpu())
        probability_rows.append(probability[:, :keep].float().cpu())
        if last:
            break
    return torch.cat(offset_rows, dim=2), torch.cat(probability_rows, dim=1)


def _windows(offsets: torch.Tensor, probability: torch.Tensor, scale: float, threshold: float) -> np.ndarray:
    """Return the windows scoring at least threshold as rows (x1, y1, x2, y2, score, dx1, dy1, dx2, dy2)."""
    rows, columns = np.nonzero(probability[0].numpy() >= threshold)
    cells = np.stack([columns, rows], axis=1).astype(np.float32)
    # Window corners in the photo, in the 1-based convention of the original MATLAB code.
    top_left = np.floor((_STRIDE * cells + 1) / scale)
    bottom_right = np.floor((_STRIDE * cells + _CELL) / scale)
    score = probability[0].numpy()[rows, columns][:, None]
    regression = offsets[0].numpy()[:, rows, columns].T
    return np.concatenate([top_left, bottom_right, score, regression], axis=1).astype(np.float32)


def _refine(pixels: np.ndarray, boxes: np.ndarray, rnet: RefineNet, session: ModelSession,
            threshold: float) -> np.ndarray:
    """Stage two: re-score the candidates at 24x24, keep the likely faces, regress and square them."""
    if len(boxes) == 0:
        return boxes
    boxes, crops = _crops(pixels, boxes, 24)
    offsets, probability = _batched(rnet, crops, session)[:2]
    keep = probability > threshold
    boxes = np.concatenate([boxes[keep, :4], probability[keep, None]], axis=1)
    offsets = offsets[keep]
    pick = non_maximum_suppression(boxes[:, :4], boxes[:, 4], 0.7)
    return square(regress(boxes[pick], offsets[pick]))


def _output(pixels: np.ndarray, boxes: np.ndarray, onet: RefineNet, session: ModelSession,
            threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """Stage three: final scores, boxes and five landmarks per face at 48x48."""
    if len(boxes) == 0:
        return boxes, np.zeros((0, 5, 2), np.float32)
    boxes, crops = _crops(pixels, boxes, 48)
    offsets, probability, marks = _batched(onet, crops, session)
    keep = probability > threshold
    boxes = np.concatenate([boxes[keep, :4], probability[keep, None]], axis=1)
    offsets, marks = offsets[keep], marks[keep]
    # Landmarks are fractions of the box O-Net saw, before its own regression moves the box.
    size = boxes[:, 2:4] - boxes[:, 0:2] + 1
    points = np.stack([marks[:, :5], marks[:, 5:]], axis=2) * size[:, None, :] + boxes[:, None, 0:2] - 1
    boxes = regress(boxes, offsets)
    pick = non_maximum_suppression(boxes[:, :4], boxes[:, 4], 0.7, minimum=True)
    return boxes[pick], points[pick]


def _crops(pixels: np.ndarray, boxes: np.ndarray, side: int) -> tuple[np.ndarray, torch.Tensor]:
    """Cut each box out of the photo (clipped to it) and resample it to side x side; drop boxes outside the photo."""
    height, width = pixels.shape[:2]
    corners = np.trunc(boxes[:, :4]).astype(np.int64)
    left, top = np.maximum(corners[:, 0], 1) - 1, np.maximum(corners[:, 1], 1) - 1
    right, bottom = np.minimum(corners[:, 2], width), np.minimum(corners[:, 3], height)
    inside = (right > left) & (bottom > top)
    crops = [area_resize(pixels[y0:y1, x0:x1], side)
             for x0, y0, x1, y1 in zip(left[inside], top[inside], right[inside], bottom[inside])]
    if not crops:
        return boxes[inside], torch.zeros(0, 3, side, side)
    batch = torch.from_numpy(np.stack(crops).transpose(0, 3, 1, 2).copy())
    return boxes[inside], _normalise(batch)


def area_resize(pixels: np.ndarray, side: int) -> np.ndarray:
    """Resample an (h, w, channels) array to side x side by averaging each output pixel's area, as torch's 'area'.

    Done with running sums in numpy rather than one torch call per crop: hundreds of tiny calls spend more time
    waking torch's thread pool than computing.
    """
    return _bin_means(_bin_means(pixels, side, axis=0), side, axis=1).astype(np.float32)


def _bin_means(values: np.ndarray, side: int, axis: int) -> np.ndarray:
    length = values.shape[axis]
    index = np.arange(side)
    # Output i averages inputs floor(i * L / side) up to ceil((i + 1) * L / side), as adaptive average pooling does.
    start = index * length // side
    end = -(-(index + 1) * length // side)
    sums = np.cumsum(values, axis=axis, dtype=np.float64)
    sums = np.concatenate([np.zeros_like(np.take(sums, [0], axis=axis)), sums], axis=axis)
    counts = (end - start).reshape([-1 if dimension == axis else 1 for dimension in range(values.ndim)])
    return (np.take(sums, end, axis=axis) - np.take(sums, start, axis=axis)) / counts


def _batched(network: RefineNet, crops: torch.Tensor, session: ModelSession) -> list[np.ndarray]:
    """Run a refinement network over the crops in batches; return its outputs as float32 arrays."""
    outputs = [network(session.to_device(crops[start:start + _REFINE_BATCH]))
               for start in range(0, len(crops), _REFINE_BATCH)]
    return [torch.cat([output[index] for output in outputs]).float().cpu().numpy()
            for index in range(len(outputs[0]))]


def regress(boxes: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Move each box's corners by its offsets, as fractions of its inclusive width and height."""
    size = boxes[:, 2:4] - boxes[:, 0:2] + 1
    moved = boxes.copy()
    moved[:, :4] = boxes[:, :4] + offsets[:, :4] * np.concatenate([size, size], axis=1)
    return moved


def square(boxes: np.ndarray) -> np.ndarray:
    """Grow each box to a square on its longer side, about the same centre."""
    squared = boxes.copy()
    width, height = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    side = np.maximum(width, height)
    squared[:, 0] = boxes[:, 0] + width * 0.5 - side * 0.5
    squared[:, 1] = boxes[:, 1] + height * 0.5 - side * 0.5
    squared[:, 2] = squared[:, 0] + side
    squared[:, 3] = squared[:, 1] + side
    return squared
