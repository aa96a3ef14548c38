"""Greedy non-maximum suppression, as the detectors (MTCNN's cascade, NanoDet's decoding) apply it to their boxes."""

from __future__ import annotations

import numpy as np


def non_maximum_suppression(boxes: np.ndarray, scores: np.ndarray, threshold: float, *,
                            minimum: bool = False) -> np.ndarray:
    """Return the indices of the boxes kept by greedy non-maximum suppression, best score first.

    A box is dropped when its overlap with a better box kept before it exceeds the threshold. By default overlap is
    intersection over union of the boxes' areas; with minimum=True it is intersection over the smaller area with
    inclusive pixel extents, as MTCNN's original cascade measures its final boxes.
    """
    order = np.argsort(-scores, kind="stable")
    extra = 1.0 if minimum else 0.0
    x1, y1, x2, y2 = (boxes[:, index].astype(np.float64) for index in range(4))
    area = (x2 - x1 + extra) * (y2 - y1 + extra)
    kept = []
    while order.size:
        best, rest = order[0], order[1:]
        kept.append(best)
        overlap_width = np.maximum(0.0, np.minimum(x2[best], x2[rest]) - np.maximum(x1[best], x1[rest]) + extra)
        overlap_height = np.maximum(0.0, np.minimum(y2[best], y2[rest]) - np.maximum(y1[best], y1[rest]) + extra)
        overlap = overlap_width * overlap_height
        union = np.minimum(area[best], area[rest]) if minimum else area[best] + area[rest] - overlap
        ratio = overlap / np.maximum(union, 1e-12)
        order = rest[ratio <= threshold]
    return np.asarray(kept, dtype=np.int64)
