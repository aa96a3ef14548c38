"""The operations registry: every processing type the studio offers, by name.

A new operation NAME is its declaration, ml/operations/NAME.py (its options schema and outputs, without torch), its
run, ml/runs/NAME.py (with torch), and its line in DECLARATIONS below; studio/ and jobs/ need no change. A
declaration is imported when its operation is first looked up, so a process that runs one operation (the CLI) never
imports the others'; listing them all (the web app, `studio operations`) imports every one.
"""

from __future__ import annotations

from typing import Iterator, Mapping

from ml.operations.base import (COST_CLASSES, Attachment, CostClass, InvalidOptions, Limits, ModelNotInstalled,
                                Operation, Options, Output)
from ml.registry import import_string

DEFAULT_OPERATION = "remove_background"

# Each operation's name and its declaration's module (which holds OPERATION), in the order the pages and documents
# list them.
DECLARATIONS: dict[str, str] = {name: f"ml.operations.{name}:OPERATION" for name in (
    "remove_background",
    "mask_stats",
    "stylize",
    "upscale",
    "faces",
    "anonymize",
    "beautify",
    "id_photo",
    "detect",
    "segment",
    "smart_crop",
)}


class Registry(Mapping[str, Operation]):
    """The operations by name, each declaration imported on first access."""

    def __init__(self, declarations: Mapping[str, str]) -> None:
        self._declarations = dict(declarations)
        self._loaded: dict[str, Operation] = {}

    def __getitem__(self, name: str) -> Operation:
        operation = self._loaded.get(name)
        if operation is None:
            # KeyError for a name that is not an operation; imports are thread-safe, and so is setdefault.
            operation = self._loaded.setdefault(name, import_string(self._declarations[name]))
        return operation

    def __iter__(self) -> Iterator[str]:
        return iter(self._declarations)

    def __len__(self) -> int:
        return len(self._declarations)

    def __contains__(self, name: object) -> bool:
        return name in self._declarations


OPERATIONS: Mapping[str, Operation] = Registry(DECLARATIONS)


class UnknownOperation(LookupError):
    """Raised for an operation name that is not in the registry."""


def get_operation(name: object) -> Operation:
    """Return the operation of this name; raise UnknownOperation with the names there are."""
    key = name.strip().lower() if isinstance(name, str) else name
    if key not in OPERATIONS:
        shown = f"{str(name)[:40]!r}"
        raise UnknownOperation(f"{shown} is not an operation; choose one of {', '.join(OPERATIONS)}")
    return OPERATIONS[key]


__all__ = ["COST_CLASSES", "Attachment", "CostClass", "DEFAULT_OPERATION", "DECLARATIONS", "InvalidOptions", "Limits",
           "ModelNotInstalled", "OPERATIONS", "Operation", "Options", "Output", "UnknownOperation", "get_operation"]
