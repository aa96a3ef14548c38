"""Process many files with one session, encoding each result while the model works on the next photo."""

from __future__ import annotations

import os
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from ml.imageio import DEFAULT_MAX_PIXELS, EXTENSIONS, ImageDecodeError, decode_image
from ml.options import ProcessingOptions
from ml.pipeline import predict_mask, render
from ml.sessions import get_session

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


@dataclass(frozen=True)
class BatchResult:
    """The outcome for one input: where its output went, or why there is none."""

    source: Path
    target: Path | None
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


def output_paths(sources: list[Path], out: Path, image_format: str) -> list[Path]:
    """Name each output after its input's stem in the out folder (or out itself for a single file target)."""
    extension = EXTENSIONS[image_format]
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


def _render_to_file(image, mask, options: ProcessingOptions, target: Path, png_compress_level: int) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(render(image, mask, options, png_compress_level).data)
    os.replace(partial, target)


def process_files(sources: list[Path], targets: list[Path], options: ProcessingOptions, *,
                  model_dir: str | os.PathLike, max_pixels: int = DEFAULT_MAX_PIXELS, png_compress_level: int = 1) -> Iterator[BatchResult]:
    """Yield a BatchResult per source, in order; bad inputs give an error and do not stop the others."""
    session = get_session(options.model, model_dir)
    pending: deque[tuple[Path, Path, Future]] = deque()

    def finish(source: Path, target: Path, future: Future) -> BatchResult:
        try:
            future.result()
        except (OSError, ValueError) as error:
            return BatchResult(source, None, f"cannot write {target}: {error}")
        return BatchResult(source, target)

    # One encoder thread: Pillow releases the GIL while it resizes and compresses, so encoding the previous photo
    # overlaps the model's forward pass on this one.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="encoder") as encoder:
        for source, target in zip(sources, targets):
            try:
                image = decode_image(source.read_bytes(), max_pixels)
            except (OSError, ImageDecodeError) as error:
                while pending:
                    yield finish(*pending.popleft())
                yield BatchResult(source, None, str(getattr(error, "strerror", None) or error))
                continue
            mask = predict_mask(image, session)
            while pending:
                yield finish(*pending.popleft())
            pending.append((source, target, encoder.submit(_render_to_file, image, mask, options, target,
                                                           png_compress_level)))
        while pending:
            yield finish(*pending.popleft())
