"""Run operations the way the worker does on generated photos, in this process; print each run's peak memory.

test_thin_photos.py runs it in a fresh interpreter. Each operation first runs on a small photo (its models load,
its first buffers are made), then the peak resident memory is reset (Linux's clear_refs) and the photo's run is
measured from there: what the photo itself cost.
Usage: python -m tests.support.peak_memory '[["OPERATION", WIDTH, HEIGHT, {"option": "value"}], ...]'
"""

from __future__ import annotations

import ctypes
import io
import json
import re
import sys
from pathlib import Path

from PIL import Image

from ml.operations import Limits, get_operation
from ml.operations.base import InvalidOptions
from ml.runner import OperationFailed, process
from ml.registry import MODELS
from tests.support.services import MODEL_DIR

LIMITS = Limits(50_000_000, 64_000_000, {"upscale": 50_000_000})


def photo(width: int, height: int) -> bytes:
    """Return a grey PNG of this size."""
    canvas = Image.new("RGB", (width, height), (120, 130, 140))
    buffer = io.BytesIO()
    canvas.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def _status_mib(field: str) -> float:
    """Return a memory figure of this process from /proc/self/status, in MiB."""
    text = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{field}:\s+(\d+) kB", text, re.MULTILINE).group(1)) / 1024


def _run(name: str, data: bytes, options: dict) -> str:
    """Run once; return how it ended."""
    operation = get_operation(name)
    try:
        outputs = process(operation, data, operation.parse(options, models=tuple(MODELS)), model_dir=MODEL_DIR,
                          limits=LIMITS)
    except (InvalidOptions, OperationFailed) as error:
        return f"refused: {error}"
    return "completed: " + ", ".join(f"{output.name} {output.pixels}" for output in outputs)


def measure(name: str, width: int, height: int, options: dict) -> dict:
    """Return the peak memory one run on this photo added, and how it ended."""
    data = photo(width, height)
    _run(name, photo(64, 64), options)
    # Freed memory goes back to the system first, so the start is what is really held.
    ctypes.CDLL("libc.so.6").malloc_trim(0)
    Path("/proc/self/clear_refs").write_text("5")
    start = _status_mib("VmRSS")
    ended = _run(name, data, options)
    return {"operation": name, "size": [width, height], "added_mib": round(_status_mib("VmHWM") - start, 1),
            "ended": ended}


if __name__ == "__main__":
    for case in json.loads(sys.argv[1]):
        print(json.dumps(measure(*case)), flush=True)
