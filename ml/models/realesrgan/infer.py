"""Super-resolution of a photo with Real-ESRGAN x4plus, tile by tile, in bounded memory, with progress per tile.

The photo is cut into tiles; each is run with `overlap` pixels of its neighbours around it as context, and only
its own part of the result is kept, so no seam shows (the result matches one untiled pass within 1/255). The 4x
end of the network runs in bands of rows, and the result is assembled as 8-bit pixels: the whole image never exists
as float32, and memory depends on the tile size, not on the photo's. x2 is the x4 result resized down with Lanczos,
tile by tile, each tile resized with its context so that the result equals resizing the whole x4 image (which is
never held). A transparent photo keeps its alpha, upscaled with bicubic filtering (clean edges: docs/upscaling.md
compares the ways).
"""

from __future__ import annotations

import contextlib
import math
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
from PIL import Image
from torch.nn import functional

from ml.models.realesrgan.network import UPSAMPLE_REACH
from ml.sessions import ModelSession

Progress = Callable[[int, str], None]

MODEL_SCALE = 4
SCALES = (2, 4)
# The largest side of what the network sees at once (a tile and its context), which bounds a pass's memory
# (docs/upscaling.md gives it per pixel). A photo that fits runs in one pass.
DEFAULT_TILE = 512
# Pixels of context around each tile. This deep network (351 convolutions) feels a tile's edge from far: 80 pixels
# keep the seams within 1/255 of one untiled pass, fewer leave visible differences (docs/upscaling.md, "Why 80
# pixels of overlap"). The price is work: with 512-pixel tiles, about 1.8 times the photo's pixels run through the
# network.
DEFAULT_OVERLAP = 80
# Lanczos reaching 3 lobes into a 2x reduction reads 6 x4-pixels past a tile's edge: 2 input pixels of context.
MIN_OVERLAP_FOR_X2 = 2
# Rows of features upsampled at once: the 4x part's 64-channel maps are 16 times the tile's area, by far the
# biggest memory of a pass; in bands they stay at a few tens of MB.
BAND_ROWS = 16
# The share of a pass that the trunk takes (its 23 blocks against the upsampling's five convolutions, in
# multiply-adds): what a tile's progress within its pass goes up to.
TRUNK_SHARE = 0.9
# CPU seconds the network takes per megapixel it runs on (tile contexts included), on one AMD EPYC (Zen 4) core:
# the estimate behind a job's timeout (bench/upscale.py measures it; docs/upscaling.md).
CPU_SECONDS_PER_MEGAPIXEL = 400.0
# A job's timeout allows this many times the estimate, for a busy machine or a slower CPU (docs/upscaling.md).
TIMEOUT_MARGIN = 3.0


class UpscaleError(ValueError):
    """Raised when an upscale is refused before any work (bad scale, or a result above the size limit)."""


@dataclass(frozen=True)
class Tile:
    """One piece of the work: the part of the photo whose result it gives, and what the network sees for it."""

    index: int
    core: tuple[int, int, int, int]  # left, top, right, bottom in the photo
    context: tuple[int, int, int, int]  # the core grown by the overlap, clipped to the photo

    @property
    def context_pixels(self) -> int:
        """Return how many input pixels the network runs on for this tile."""
        left, top, right, bottom = self.context
        return (right - left) * (bottom - top)


def output_size(width: int, height: int, scale: int) -> tuple[int, int]:
    """Return the size of the upscaled image."""
    if scale not in SCALES:
        raise UpscaleError(f"scale must be one of {', '.join(map(str, SCALES))}, not {scale}")
    return width * scale, height * scale


def check_output_size(width: int, height: int, scale: int, max_output_pixels: int | None) -> tuple[int, int]:
    """Return the output size, or refuse one above the limit before anything runs."""
    out_width, out_height = output_size(width, height, scale)
    if max_output_pixels is not None and out_width * out_height > max_output_pixels:
        raise UpscaleError(
            f"a {scale}x upscale of {width}x{height} would be {out_width}x{out_height} "
            f"({out_width * out_height / 1e6:.1f} MP), above the limit of {max_output_pixels / 1e6:.1f} MP; "
            f"use a smaller photo or scale")
    return out_width, out_height


def _even_spans(length: int, size: int) -> list[tuple[int, int]]:
    """Split 0..length into equal-as-possible spans of at most `size`."""
    count = max(1, math.ceil(length / size))
    edges = [length * index // count for index in range(count + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _tile_spans(length: int, tile: int, overlap: int) -> list[tuple[int, int]]:
    """Split 0..length into cores whose contexts (core plus overlap, within 0..length) are at most `tile` long."""
    if length <= tile:
        return [(0, length)]
    # The first and last cores are `overlap` longer than the others, having context on one side only, so every
    # tile's context is as long as the limit allows: the fewest tiles, the least work.
    inner = length - 2 * overlap
    count = max(2, math.ceil(inner / (tile - 2 * overlap)))
    edges = [0, *(overlap + inner * index // count for index in range(1, count)), length]
    return list(zip(edges[:-1], edges[1:]))


def tile_plan(width: int, height: int, tile: int = DEFAULT_TILE, overlap: int = DEFAULT_OVERLAP) -> list[Tile]:
    """Return the tiles, in the order they run (rows top to bottom), so a caller can say "tile 7 of 24".

    `tile` bounds the side of what the network sees at once (a tile's core and its context): memory depends on it.
    """
    if overlap < 0 or tile < 2 * overlap + 8:
        raise UpscaleError(f"tile must exceed twice the overlap by 8 or more (got tile {tile}, overlap {overlap})")
    plan = []
    for top, bottom in _tile_spans(height, tile, overlap):
        for left, right in _tile_spans(width, tile, overlap):
            context = (max(0, left - overlap), max(0, top - overlap),
                       min(width, right + overlap), min(height, bottom + overlap))
            plan.append(Tile(len(plan), (left, top, right, bottom), context))
    return plan


def estimated_seconds(width: int, height: int, *, threads: int = 1, tile: int = DEFAULT_TILE,
                      overlap: int = DEFAULT_OVERLAP) -> float:
    """Return the expected seconds of a photo's upscale (2x or 4x alike) on this many free cores."""
    pixels = sum(piece.context_pixels for piece in tile_plan(width, height, tile, overlap))
    return CPU_SECONDS_PER_MEGAPIXEL * pixels / 1e6 / max(1, threads)


def timeout_seconds(width: int, height: int, *, threads: int = 1, tile: int = DEFAULT_TILE,
                    overlap: int = DEFAULT_OVERLAP) -> float:
    """Return a job timeout for the largest photo allowed: the estimate with a margin for a busy machine."""
    return TIMEOUT_MARGIN * estimated_seconds(width, height, threads=threads, tile=tile, overlap=overlap)


def run_network(rgb: np.ndarray, session: ModelSession, band_rows: int = BAND_ROWS,
                progress: Callable[[float], None] | None = None) -> np.ndarray:
    """Upscale an HxWx3 uint8 array 4x through the network in one pass; return 8-bit pixels.

    progress: called with the share of the trunk done (0-1) as it runs (a pass may take minutes).
    """
    height, width = rgb.shape[:2]
    model = session.model
    batch = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1))).unsqueeze(0).float().div_(255)
    result = np.empty((height * MODEL_SCALE, width * MODEL_SCALE, 3), dtype=np.uint8)
    with session.inference():
        batch = session.to_device(batch)
        features = model.trunk(batch) if progress is None else model.trunk(batch, progress=progress)
        for top, bottom in _even_spans(height, band_rows):
            start, stop = max(0, top - UPSAMPLE_REACH), min(height, bottom + UPSAMPLE_REACH)
            band = model.upsample(features[:, :, start:stop])[0]
            band = band[:, (top - start) * MODEL_SCALE:(bottom - start) * MODEL_SCALE]
            pixels = band.float().clamp_(0, 1).mul_(255).round_().to(torch.uint8)
            result[top * MODEL_SCALE:bottom * MODEL_SCALE] = pixels.permute(1, 2, 0).cpu().numpy()
    return result


def _tile_result(rgb: np.ndarray, piece: Tile, scale: int, session: ModelSession,
                 progress: Callable[[float], None] | None = None) -> Image.Image:
    """Return the tile's core, upscaled."""
    left, top, right, bottom = piece.context
    upscaled = Image.fromarray(run_network(rgb[top:bottom, left:right], session, progress=progress))
    core_left, core_top, core_right, core_bottom = piece.core
    box = ((core_left - left) * MODEL_SCALE, (core_top - top) * MODEL_SCALE,
           (core_right - left) * MODEL_SCALE, (core_bottom - top) * MODEL_SCALE)
    if scale == MODEL_SCALE:
        return upscaled.crop(box)
    # Resizing with the context around the box reads the same pixels as resizing the whole x4 image would.
    size = ((core_right - core_left) * scale, (core_bottom - core_top) * scale)
    return upscaled.resize(size, Image.LANCZOS, box=box)


@contextlib.contextmanager
def _tile_runner(workers: int) -> Iterator[Callable[..., Future]]:
    """Yield a submit function running tiles in the calling thread (1 worker) or on a pool of one-thread workers."""
    if workers == 1:
        def run_here(function: Callable, *args) -> Future:
            future: Future = Future()
            future.set_result(function(*args))
            return future
        yield run_here
        return
    previous = torch.get_num_threads()
    # Each worker computes its tile on one thread: no barrier between cores at every layer, which on an
    # oversubscribed machine can cost more than the extra tiles' overlap (docs/upscaling.md).
    pool = ThreadPoolExecutor(workers, thread_name_prefix="upscale-tile", initializer=torch.set_num_threads,
                              initargs=(1,))
    try:
        yield pool.submit
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        torch.set_num_threads(previous)


def upscale_rgb(rgb: np.ndarray, session: ModelSession, *, scale: int, tile: int = DEFAULT_TILE,
                overlap: int = DEFAULT_OVERLAP, progress: Progress | None = None, mode: str = "RGB",
                workers: int = 1) -> Image.Image:
    """Upscale an HxWx3 uint8 array tile by tile into an image of the given mode (RGB, or RGBA left opaque).

    With one worker the tiles run one after the other, each on all of torch's threads. With more, that many tiles
    run at once, each on one thread: no barrier between threads at every layer, which pays on a machine whose
    cores are oversubscribed, at the price of that many tiles' memory.
    """
    height, width = rgb.shape[:2]
    size = output_size(width, height, scale)
    if scale != MODEL_SCALE and overlap < MIN_OVERLAP_FOR_X2:
        raise UpscaleError(f"x{scale} needs an overlap of at least {MIN_OVERLAP_FOR_X2}")
    plan = tile_plan(width, height, tile, overlap)
    workers = max(1, min(workers, len(plan)))
    # Tiles are pasted straight into the 8-bit result: the whole image never exists as float32.
    result = Image.new(mode, size)
    running: deque[tuple[Tile, Future]] = deque()
    with _tile_runner(workers) as submit:
        for piece in plan:
            within = None
            if progress is not None:
                # Reported as each tile starts: the caller's page says which tile is running.
                progress(100 * piece.index // len(plan), f"tile {piece.index + 1} of {len(plan)}")
                if workers == 1:
                    within = _within_tile(progress, piece, len(plan))
            running.append((piece, submit(_tile_result, rgb, piece, scale, session, within)))
            while len(running) >= workers or (running and piece is plan[-1]):
                done, future = running.popleft()
                result.paste(future.result(), (done.core[0] * scale, done.core[1] * scale))
    return result


def _within_tile(progress: Progress, piece: Tile, count: int) -> Callable[[float], None]:
    """Return the callback that reports a tile's trunk as it runs, as a share of the whole plan.

    Called in the caller's thread only (one worker): a photo that fits one tile moves its bar all the same.
    """
    message = f"tile {piece.index + 1} of {count}"
    return lambda done: progress(int(100 * (piece.index + TRUNK_SHARE * done) / count), message)


def bleed_colours(rgb: np.ndarray, alpha: np.ndarray) -> np.ndarray:
    """Give fully transparent pixels the colours of their nearest visible neighbours (push-pull).

    Cutouts store black under transparent pixels; the network would pull the subject's edges towards it.
    """
    visible = torch.tensor(alpha, dtype=torch.float32).div_(255)[None, None]
    colours = torch.tensor(rgb, dtype=torch.float32).permute(2, 0, 1)[None] * visible
    filled = _push_pull(colours, visible)[0].permute(1, 2, 0).round_().clamp_(0, 255).to(torch.uint8).numpy()
    hidden = alpha == 0
    out = rgb.copy()
    out[hidden] = filled[hidden]
    return out


def _push_pull(premultiplied: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Return straight colours everywhere: where weight is zero, taken from coarser and coarser averages."""
    colours = premultiplied / weight.clamp(min=1e-6)
    if min(weight.shape[-2:]) <= 1 or bool((weight > 0).all()):
        return colours
    coarse = _push_pull(functional.avg_pool2d(premultiplied, 2, ceil_mode=True),
                        functional.avg_pool2d(weight, 2, ceil_mode=True))
    upsampled = functional.interpolate(coarse, scale_factor=2, mode="nearest")[..., :weight.shape[-2],
                                                                               :weight.shape[-1]]
    return torch.where(weight > 0, colours, upsampled)


def upscale_alpha(alpha: Image.Image, size: tuple[int, int]) -> Image.Image:
    """Upscale an alpha channel with bicubic filtering: no stray alpha in flat areas, overshoot clipped."""
    return alpha.resize(size, Image.BICUBIC)


def upscale(image: Image.Image, session: ModelSession, *, scale: int, tile: int = DEFAULT_TILE,
            overlap: int = DEFAULT_OVERLAP, progress: Progress | None = None, max_output_pixels: int | None = None,
            workers: int = 1) -> Image.Image:
    """Return the photo upscaled 2x or 4x (RGB, or RGBA with its alpha upscaled and transparent pixels zeroed)."""
    size = check_output_size(*image.size, scale, max_output_pixels)
    has_alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    source = image.convert("RGBA" if has_alpha else "RGB")
    rgb = np.asarray(source.convert("RGB"))
    if not has_alpha:
        return upscale_rgb(rgb, session, scale=scale, tile=tile, overlap=overlap, progress=progress,
                           workers=workers)
    alpha = source.getchannel("A")
    if alpha.getextrema()[0] == 0:
        rgb = bleed_colours(rgb, np.asarray(alpha))
    result = upscale_rgb(rgb, session, scale=scale, tile=tile, overlap=overlap, progress=progress, mode="RGBA",
                         workers=workers)
    big_alpha = upscale_alpha(alpha, size)
    result.putalpha(big_alpha)
    # As our cutouts do: straight colours, fully transparent pixels zeroed (they compress to almost nothing).
    result.paste((0, 0, 0, 0), mask=big_alpha.point(lambda value: 255 if value == 0 else 0))
    return result


# For the README: seconds per megapixel of input on 2 free cores, at the defaults, for a 2 MP photo (4:3).
SECONDS_PER_INPUT_MEGAPIXEL = round(estimated_seconds(1633, 1225, threads=2) / 2.0)
