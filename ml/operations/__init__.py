"""The operations registry: every processing type the studio offers, by name.

A new operation NAME is its declaration here, ml/operations/NAME.py (its options schema and outputs, without torch),
its run, ml/runs/NAME.py (with torch), and its module in OPERATIONS below; studio/ and jobs/ need no change.
"""

from __future__ import annotations

from ml.operations import (anonymize, beautify, detect, faces, id_photo, mask_stats, remove_background, smart_crop,
                           stylize, upscale)
from ml.operations.base import Attachment, InvalidOptions, Limits, ModelNotInstalled, Operation, Options, Output

DEFAULT_OPERATION = "remove_background"

OPERATIONS: dict[str, Operation] = {module.OPERATION.name: module.OPERATION for module in (
    remove_background,
    mask_stats,
    stylize,
    upscale,
    faces,
    anonymize,
    beautify,
    id_photo,
    detect,
    smart_crop,
)}


class UnknownOperation(LookupError):
    """Raised for an operation name that is not in the registry."""


def get_operation(name: object) -> Operation:
    """Return the operation of this name; raise UnknownOperation with the names there are."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in OPERATIONS:
        shown = f"{str(name)[:40]!r}"
        raise UnknownOperation(f"{shown} is not an operation; choose one of {', '.join(OPERATIONS)}")
    return OPERATIONS[key]


__all__ = ["Attachment", "DEFAULT_OPERATION", "InvalidOptions", "Limits", "ModelNotInstalled", "OPERATIONS",
           "Operation", "Options", "Output", "UnknownOperation", "get_operation"]
