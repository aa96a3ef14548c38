"""Masks as COCO run-length encoding, with pycocotools (the COCO authors' own encoder, as detectron2 and
torchvision's references use): compressed counts as the COCO data set's JSON stores them."""

from __future__ import annotations

import numpy as np
from pycocotools import mask as coco_mask


def encode_rle(mask: np.ndarray) -> dict:
    """Return a mask (height x width, nonzero is the object) as COCO's compressed RLE, JSON-ready."""
    rle = coco_mask.encode(np.asfortranarray(mask > 0, dtype=np.uint8))
    return {"size": [int(side) for side in rle["size"]], "counts": rle["counts"].decode("ascii")}


def decode_rle(rle: dict) -> np.ndarray:
    """Return the binary mask (uint8, 0 or 1) of a COCO RLE, compressed (a string) or not (a list of counts)."""
    height, width = rle["size"]
    if isinstance(rle["counts"], list):
        return coco_mask.decode(coco_mask.frPyObjects(rle, height, width))
    return coco_mask.decode({"size": [height, width], "counts": rle["counts"].encode("ascii")})
