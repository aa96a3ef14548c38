"""Run an operation on many files, several photos at a time, with the same code the worker runs."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from PIL import Image

from ml.imageio import EXTENSIONS, ImageDecodeError, decode_image
from ml.operations.base import Inputs, InvalidOptions, Limits, Operation, Options
from ml.runner import DEFAULT_PNG_COMPRESS_LEVEL, OperationFailed, RunContext, encode, run

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


@dataclass(frozen=True)
class BatchResult:
    """The outcome for one input: where its outputs went, or why there are none."""

    source: Path
    targets: tuple[Path, ...]
    error: str | None = None


def expand_inputs(paths: list[Path]) -> list[Path]:
    """Return the files to process: files as given, folders expanded to their image files (sorted)."""
    files: list[Path] = []
    for path in paths:
        if path.is_dir():
            files.extend(sorted(child for child in path.iterdir()
                                if child.is_file() and child.suffix.lower() in IMAGE_SUFFIXES))
        else:
            files.append(path)
    return files


def main_extension(operation: Operation, options: Options) -> str:
    """Return the file extension of the operation's main output with these options."""
    if operation.result.kind == "json":
        return ".json"
    image_format = getattr(options, "format", "png") if operation.result.image_format == "options" \
        else operation.result.image_format
    return EXTENSIONS[image_format]


def output_paths(sources: list[Path], out: Path, extension: str) -> list[Path]:
    """Name each main output after its input's stem in the out folder (or out itself for a single file target)."""
    if len(sources) == 1 and out.suffix and not out.is_dir():
        return [out]
    taken: set[str] = set()
    targets = []
    for source in sources:
        name, counter = source.stem + extension, 2
        while name in taken:
            name, counter = f"{source.stem}-{counter}{extension}", counter + 1
        taken.add(name)
        targets.append(out / name)
    return targets


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_bytes(data)
    os.replace(partial, path)


def _process_one(operation: Operation, source: Path, target: Path, options: Options, context: RunContext,
                 attachments: dict[str, Image.Image], png_compress_level: int) -> BatchResult:
    try:
        photo = decode_image(source.read_bytes(), context.limits.max_pixels)
        outputs = encode(operation, run(operation, Inputs(photo, attachments), options, context), options,
                         png_compress_level)
    except (OSError, ImageDecodeError, InvalidOptions, OperationFailed) as error:
        return BatchResult(source, (), str(getattr(error, "strerror", None) or error))
    written = []
    try:
        for output in outputs:
            # The main output is the target; extras go beside it: boat.png, boat-preview.jpg.
            path = target if output.name == operation.result.name else \
                target.with_name(f"{target.stem}-{output.name}{output.extension}")
            _write(path, output.data)
            written.append(path)
    except OSError as error:
        return BatchResult(source, tuple(written), f"cannot write {target}: {error}")
    return BatchResult(source, tuple(written))


@contextmanager
def _threads_per_photo(count: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def process_files(operation: Operation, sources: list[Path], targets: list[Path], options: Options, *,
                  model_dir: str | os.PathLike, limits: Limits, attachments: dict[str, Image.Image] | None = None,
                  png_compress_level: int = DEFAULT_PNG_COMPRESS_LEVEL,
                  streams: int | None = None) -> Iterator[BatchResult]:
    """Yield a BatchResult per source, in order; bad inputs give an error and do not stop the others.

    attachments are decoded once and shared (read only) by every photo.
    """
    context = RunContext(model_dir, limits)
    for name in operation.models_for(options):
        context.session(name)  # loaded before the threads start, so they never race to load it
    cores = torch.get_num_threads()
    # One photo per core, each computed single-threaded, beats one photo at a time on all cores for small networks
    # (their convolutions gain little from more threads; docs/quality-and-speed.md), and decoding and encoding
    # overlap the other photo's forward pass. Long runs on big networks (upscaling) go one photo at a time on every
    # core instead.
    # Fewer photos than cores (one photo, say) share the cores out instead of leaving them idle.
    streams = streams or (max(1, min(cores, len(sources))) if operation.photo_parallel else 1)
    threads = max(1, cores // streams) if operation.photo_parallel else cores
    with _threads_per_photo(threads), ThreadPoolExecutor(streams, thread_name_prefix="photo") as pool:
        window: deque[Future] = deque()
        for source, target in zip(sources, targets):
            window.append(pool.submit(_process_one, operation, source, target, options, context,
                                      attachments or {}, png_compress_level))
            # A bounded window keeps memory flat on big folders: at most two photos in flight per stream.
            if len(window) >= 2 * streams:
                yield window.popleft().result()
        while window:
            yield window.popleft().result()
