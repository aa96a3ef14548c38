"""The operations registry: every processing type the studio offers, by name.

A new operation is one module in ml/ (its run function, with torch) and one declaration module here (its options
schema and outputs, without torch), added to OPERATIONS below; studio/ and jobs/ need no change.
"""

from __future__ import annotations

from ml.operations import faces, mask_stats, objects, remove_background, stylize, upscale
from ml.operations.base import Attachment, InvalidOptions, Limits, ModelNotInstalled, Operation, Options, Output

DEFAULT_OPERATION = "remove_background"

OPERATIONS: dict[str, Operation] = {operation.name: operation for operation in (
    remove_background.OPERATION,
    mask_stats.OPERATION,
    stylize.OPERATION,
    upscale.OPERATION,
    faces.FIND_FACES,
    faces.ANONYMIZE,
    faces.BEAUTIFY,
    faces.ID_PHOTO,
    objects.DETECT,
    objects.SMART_CROP,
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
