"""Run an operation on encoded bytes: decode safely, check, run with progress, encode every output.

The job (jobs/process_image.py) and the CLI (ml/batch.py) both come through here, so an operation behaves the same
wherever it runs. Imports torch through the sessions; the web app never imports this module.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from PIL import Image

from ml.imageio import DEFAULT_MAX_PIXELS, EXTENSIONS, OUTPUT_MEDIA_TYPES, decode_image, encode_image
from ml.operations.base import Inputs, Limits, Operation, Options, Output, Result
from ml.registry import import_string
from ml.sessions import ModelSession, cache, get_session

Progress = Callable[[int, "str | None"], None]
DEFAULT_PNG_COMPRESS_LEVEL = 4


class OperationFailed(Exception):
    """A run that cannot succeed with this photo and these options (no face found, say): no retry helps."""


@dataclass
class RunContext:
    """What an operation's run may use besides its inputs and options."""

    model_dir: str | os.PathLike
    limits: Limits
    report: Progress = field(default=lambda percent, stage: None)
    percent: int = 0  # the last percent reported

    def session(self, name: str) -> ModelSession:
        """Return the cached session of a model (loaded once per process), saying so when it must be loaded."""
        if not cache.holds(name, self.model_dir):
            # Seconds for a large model on a worker that evicted it: the page says why nothing moves meanwhile.
            self.progress(self.percent, "loading the model")
        return get_session(name, self.model_dir)

    def progress(self, percent: int, stage: str | None = None) -> None:
        """Report how far the run is (0-100) and what it is doing; may raise to stop the run (cancelled)."""
        self.percent = max(0, min(int(percent), 100))
        self.report(self.percent, stage)

    def part(self, start: int, end: int) -> Callable[[int, str | None], None]:
        """Return a progress callback for one step of the run, its 0-100 mapped onto start-end of the whole."""
        return lambda percent, stage=None: self.progress(start + (end - start) * percent / 100, stage)


@dataclass(frozen=True)
class EncodedOutput:
    """One output, ready to store: its bytes and what they are."""

    name: str
    data: bytes
    media_type: str
    extension: str
    pixels: int = 0  # width x height of an image output (usage counts megapixels out); 0 for JSON


def decode_inputs(photo: bytes, attachments: dict[str, bytes], max_pixels: int = DEFAULT_MAX_PIXELS) -> Inputs:
    """Decode the photo and the attachments; raise ImageDecodeError for a bad one."""
    return Inputs(decode_image(photo, max_pixels),
                  {name: decode_image(data, max_pixels) for name, data in attachments.items()})


def run(operation: Operation, inputs: Inputs, options: Options, context: RunContext) -> Result:
    """Check the options against the photo, then run the operation."""
    operation.check_photo(options, *inputs.photo.size, context.limits)
    function: Callable[[Inputs, Options, RunContext], Result] = import_string(operation.run)
    return function(inputs, options, context)


def encode(operation: Operation, result: Result, options: Options,
           png_compress_level: int = DEFAULT_PNG_COMPRESS_LEVEL) -> list[EncodedOutput]:
    """Encode the main output and every extra the run returned, in the operation's declared order."""
    values = {operation.result.name: result.main, **result.extras}
    encoded = []
    for output in operation.outputs:
        if output.name in values and values[output.name] is not None:
            encoded.append(_encode_one(output, values[output.name], options, png_compress_level))
    return encoded


def _encode_one(output: Output, value: Any, options: Options, png_compress_level: int) -> EncodedOutput:
    if output.kind == "json":
        data = json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode()
        return EncodedOutput(output.name, data, "application/json", ".json")
    if not isinstance(value, Image.Image):
        raise TypeError(f"output {output.name} must be an image, got {type(value).__name__}")
    image_format = getattr(options, "format", "png") if output.image_format == "options" else output.image_format
    data = encode_image(value, image_format, png_compress_level=png_compress_level)
    return EncodedOutput(output.name, data, OUTPUT_MEDIA_TYPES[image_format], EXTENSIONS[image_format],
                         value.width * value.height)


def process(operation: Operation, photo: bytes, options: Options, *, model_dir: str | Path, limits: Limits,
            attachments: dict[str, bytes] | None = None, progress: Progress | None = None,
            png_compress_level: int = DEFAULT_PNG_COMPRESS_LEVEL) -> list[EncodedOutput]:
    """Decode, run and encode one photo; raise ImageDecodeError, InvalidOptions or OperationFailed for bad input."""
    context = RunContext(model_dir, limits, progress or (lambda percent, stage: None))
    context.progress(0, "reading the photo")
    inputs = decode_inputs(photo, attachments or {}, limits.max_pixels)
    context.progress(5, "photo decoded")
    result = run(operation, inputs, options, context)
    # Let the photo go before encoding: the peak is then the outputs plus the encoder's buffers.
    del inputs
    context.progress(95, "encoding")
    return encode(operation, result, options, png_compress_level)
