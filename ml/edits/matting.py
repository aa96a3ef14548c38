"""Refine a subject mask at the edge: alpha matting on the unknown band, and the subject's own colours there.

The mask models give a soft but coarse edge: hair and fur come out as a grey halo carrying the old background's
colour. As rembg does, a trimap is made from the mask (sure subject above the foreground threshold, sure background
below the background threshold, both eroded by the erode size; the band between is unknown) and pymatting's
closed-form matting (Levin et al.) solves the alpha of the unknown band only. pymatting's multilevel foreground
estimation (Germer et al.) then gives the band's pixels the subject's colour, not the background's.

Both run at a bounded working size (WORKING_PIXELS) so that a 24 MP photo costs what a 1 MP photo does: the band's
alpha is upscaled back into the full-size band, and the colour correction (estimated foreground minus photo, a
smooth field) is upscaled and added to the full-size photo, so the hair keeps its full-resolution detail. Outside
the band nothing changes: sure subject stays opaque, sure background transparent.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

# The most pixels matting and foreground estimation work on: a 1 MP photo is matted at its own size; a larger one is
# scaled down to this for the solve (docs/matting.md has the measured seconds and memory).
WORKING_PIXELS = 1_000_000
# rembg's defaults (alpha_matting_foreground_threshold, ..._background_threshold, ..._erode_size).
DEFAULT_FOREGROUND_THRESHOLD = 240
DEFAULT_BACKGROUND_THRESHOLD = 10
DEFAULT_ERODE_SIZE = 10


@dataclass(frozen=True)
class Trimap:
    """A mask's three regions at some size: sure subject, sure background, and the unknown band between."""

    foreground: np.ndarray  # bool
    background: np.ndarray  # bool

    @property
    def unknown(self) -> np.ndarray:
        """Return the band matting solves."""
        return ~(self.foreground | self.background)

    def as_array(self) -> np.ndarray:
        """Return the trimap as pymatting reads it: 1 subject, 0 background, 0.5 unknown."""
        trimap = np.full(self.foreground.shape, 0.5)
        trimap[self.foreground] = 1.0
        trimap[self.background] = 0.0
        return trimap


def trimap(mask: Image.Image, foreground_threshold: int = DEFAULT_FOREGROUND_THRESHOLD,
           background_threshold: int = DEFAULT_BACKGROUND_THRESHOLD, erode_size: int = DEFAULT_ERODE_SIZE) -> Trimap:
    """Return the mask's trimap as rembg makes it: thresholds, then each sure region eroded by erode_size."""
    from scipy.ndimage import minimum_filter

    values = np.asarray(mask.convert("L"))
    foreground, background = values > foreground_threshold, values < background_threshold
    if erode_size > 0:
        # rembg's binary_erosion with a square, as scipy's separable minimum filter (linear in the pixels whatever the
        # size); pixels beyond the frame count as their neighbour, so a subject cut by the frame keeps a sure edge.
        foreground = minimum_filter(foreground, size=erode_size, mode="nearest")
        background = minimum_filter(background, size=erode_size, mode="nearest")
    return Trimap(foreground, background)


def working_scale(width: int, height: int, working_pixels: int = WORKING_PIXELS) -> float:
    """Return the factor (at most 1) that brings a photo of this size down to the working size."""
    return min(1.0, (working_pixels / (width * height)) ** 0.5)


def _small(image: Image.Image, scale: float) -> Image.Image:
    if scale >= 1.0:
        return image
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    return image.resize(size, Image.BILINEAR, reducing_gap=2.0)


def _as_float(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.float64) / 255.0


def matte(photo: Image.Image, mask: Image.Image, foreground_threshold: int = DEFAULT_FOREGROUND_THRESHOLD,
          background_threshold: int = DEFAULT_BACKGROUND_THRESHOLD, erode_size: int = DEFAULT_ERODE_SIZE,
          working_pixels: int = WORKING_PIXELS) -> Image.Image:
    """Return the mask with its unknown band re-solved by closed-form matting (sure regions as the trimap says)."""
    from pymatting import estimate_alpha_cf

    full = trimap(mask, foreground_threshold, background_threshold, erode_size)
    unknown = full.unknown
    if not unknown.any() or not full.foreground.any() or not full.background.any():
        # Nothing to solve, or no sure sample of one side: closed-form matting would have nothing to propagate.
        return mask.convert("L")
    scale = working_scale(*photo.size, working_pixels=working_pixels)
    small_photo, small_mask = _small(photo.convert("RGB"), scale), _small(mask.convert("L"), scale)
    small = trimap(small_mask, foreground_threshold, background_threshold, max(1, round(erode_size * scale)))
    if not small.foreground.any() or not small.background.any():
        return mask.convert("L")
    alpha = estimate_alpha_cf(_as_float(small_photo), small.as_array())
    alpha_image = Image.fromarray(np.clip(alpha * 255.0 + 0.5, 0, 255).astype(np.uint8))
    if alpha_image.size != photo.size:
        alpha_image = alpha_image.resize(photo.size, Image.BILINEAR)
    result = np.asarray(alpha_image).copy()
    result[full.foreground] = 255
    result[full.background] = 0
    return Image.fromarray(result)


def foreground_colours(photo: Image.Image, alpha: Image.Image, working_pixels: int = WORKING_PIXELS) -> Image.Image:
    """Return the photo with its semi-transparent pixels recoloured to the subject's estimated colour (RGB)."""
    from pymatting import estimate_foreground_ml

    rgb = photo.convert("RGB")
    values = np.asarray(alpha.convert("L"))
    edge = (values > 0) & (values < 255)
    if not edge.any():
        return rgb
    scale = working_scale(*photo.size, working_pixels=working_pixels)
    small_photo, small_alpha = _small(rgb, scale), _small(alpha.convert("L"), scale)
    image = _as_float(small_photo)
    foreground = estimate_foreground_ml(image, _as_float(small_alpha))
    # The correction (subject colour minus photo) is smooth where the background bled in: upscaled and added to the
    # full-size photo, it keeps every hair's own detail.
    correction = (foreground - image) * 255.0
    rows, columns = np.nonzero(edge)
    channels = []
    for channel in range(3):
        field = Image.fromarray(correction[:, :, channel].astype(np.float32))
        if field.size != photo.size:
            field = field.resize(photo.size, Image.BILINEAR)
        channels.append(np.asarray(field)[rows, columns])
    result = np.asarray(rgb).copy()
    recoloured = result[rows, columns].astype(np.float32) + np.stack(channels, axis=1)
    result[rows, columns] = np.clip(recoloured + 0.5, 0, 255).astype(np.uint8)
    return Image.fromarray(result)


def refine(photo: Image.Image, mask: Image.Image, options: Any, *, placed: bool) -> tuple[Image.Image, Image.Image]:
    """Return the photo and mask as the options' matting settings say: the band matted, the edge recoloured.

    placed is True where the cutout lands on a colour, a blur or a picture: there foreground estimation is on unless
    the options turn it off; on plain transparency it comes with alpha matting only (as rembg's does).
    """
    if options.alpha_matting:
        mask = matte(photo, mask, options.alpha_matting_foreground_threshold,
                     options.alpha_matting_background_threshold, options.alpha_matting_erode_size)
    if options.estimate_foreground and (placed or options.alpha_matting):
        recoloured = foreground_colours(photo, mask)
        if photo.mode == "RGBA":
            recoloured.putalpha(photo.getchannel("A"))
        photo = recoloured
    return photo, mask


def load() -> float:
    """Import pymatting, compiling its numba functions or loading them from numba's cache; return the seconds.

    pymatting compiles every function when it is imported (their signatures are given), about a minute on a busy
    core with an empty cache and under a second from the cache (NUMBA_CACHE_DIR, docs/matting.md). The worker calls
    this before it forks or takes a job. Nothing is run: some functions are numba-parallel, and a thread pool
    started before a fork would not survive in the horse.
    """
    started = time.perf_counter()
    import pymatting  # noqa: F401 - imported for its side effect, the compiled functions

    return time.perf_counter() - started
