"""facenet-pytorch 2.6.0's own MTCNN, run on our torch from the files the installer keeps under sources/.

The package is never installed (it pins an old torch). Its detection code needs only two torchvision functions, and
torchvision's PyPI builds do not import beside our torch, so plain stand-ins are put in their place here. Only the
package's detection modules are kept, so it imports as a namespace package without its __init__ (which would pull
in its training helpers and tqdm). Used by tests/ml/test_mtcnn.py and bench/faces.py.
"""

from __future__ import annotations

import contextlib
import sys
import types
from pathlib import Path
from typing import Iterator

import numpy as np
import torch


def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, groups: torch.Tensor, threshold: float) -> torch.Tensor:
    """Stand in for torchvision.ops.boxes.batched_nms: per group, greedy IoU suppression, best scores first."""
    kept = []
    area = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
    for group in torch.unique(groups):
        order = torch.nonzero(groups == group).flatten()
        order = order[torch.argsort(scores[order], descending=True)]
        while order.numel():
            best, order = order[0], order[1:]
            kept.append(int(best))
            top_left = torch.maximum(boxes[best, :2], boxes[order, :2])
            bottom_right = torch.minimum(boxes[best, 2:], boxes[order, 2:])
            overlap = (bottom_right - top_left).clamp(min=0).prod(dim=1)
            order = order[overlap / (area[best] + area[order] - overlap) <= threshold]
    indices = torch.tensor(kept, dtype=torch.long)
    return indices[torch.argsort(scores[indices], descending=True)]


def to_tensor(picture) -> torch.Tensor:
    """Stand in for torchvision.transforms.functional.to_tensor on an HWC array: bytes scaled to 0-1, floats kept."""
    array = np.asarray(picture)
    tensor = torch.from_numpy(array.transpose(2, 0, 1).copy())
    return tensor.float() / 255 if array.dtype == np.uint8 else tensor


def _stand_ins() -> dict[str, types.ModuleType]:
    boxes = types.ModuleType("torchvision.ops.boxes")
    boxes.batched_nms = batched_nms
    functional = types.ModuleType("torchvision.transforms.functional")
    functional.to_tensor = to_tensor
    return {"torchvision": types.ModuleType("torchvision"), "torchvision.ops": types.ModuleType("torchvision.ops"),
            "torchvision.ops.boxes": boxes, "torchvision.transforms": types.ModuleType("torchvision.transforms"),
            "torchvision.transforms.functional": functional}


@contextlib.contextmanager
def reference_mtcnn(sources: Path) -> Iterator[type]:
    """Yield facenet-pytorch's MTCNN class imported from its kept sources; undo every import afterwards."""
    saved = {name: sys.modules.get(name) for name in _stand_ins()}
    sys.modules.update(_stand_ins())
    sys.path.insert(0, str(sources))
    try:
        from facenet_pytorch.models.mtcnn import MTCNN

        yield MTCNN
    finally:
        sys.path.remove(str(sources))
        for name, module in saved.items():
            if module is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = module
        for name in [name for name in sys.modules if name.startswith("facenet_pytorch")]:
            del sys.modules[name]
