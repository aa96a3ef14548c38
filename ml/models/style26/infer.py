"""Neural style transfer with the 26-style network: style weights, stylizing a photo, and putting the result back.

The network (ml.models.style26.network) is run on the whole photo at a bounded working size, never in tiles: its
instance norms take their statistics over the whole image, so tiles normalised on their own disagree in colour and
contrast at every seam (docs/style-transfer.md has the measurements). A photo larger than the working size is scaled
down for the network and the result scaled back up to the photo's size; the strength and region blend (`apply`) then
works at the photo's full size, so what is not painted keeps every original pixel.
"""

from __future__ import annotations

from typing import Callable

import numpy as np
import torch
import torch.nn.functional as functional
from PIL import Image, ImageFilter

from ml.models.style26.network import MINIMUM_SIDE, STYLE_COUNT
from ml.sessions import ModelSession

MODEL_NAME = "style26"
# (slug, what the style looks like) in the network's order. The model came without names, so these describe the
# previews in static/img/styles/ (made by tools/style_previews.py).
STYLES: tuple[tuple[str, str], ...] = (
    ("golden-pastel", "Golden pastel"),
    ("ink-on-yellow", "Bold ink on yellow"),
    ("charcoal-hatching", "Charcoal hatching"),
    ("electric-scribbles", "Electric scribbles"),
    ("crimson-wash", "Crimson and sky wash"),
    ("autumn-dabs", "Autumn dabs"),
    ("midnight-dots", "Midnight dots"),
    ("colour-blocks", "Bold colour blocks"),
    ("pink-sketch", "Pink and teal sketch"),
    ("teal-mosaic", "Teal mosaic"),
    ("sepia-oils", "Sepia oils"),
    ("gold-etching", "Gold etching"),
    ("lilac-haze", "Lilac haze"),
    ("fauve-greens", "Fauve greens"),
    ("icy-wash", "Icy blue wash"),
    ("stained-glass", "Stained glass"),
    ("blue-crayon", "Blue crayon"),
    ("brick-grid", "Red brick grid"),
    ("ochre-woodgrain", "Ochre woodgrain"),
    ("starry-swirls", "Starry blue swirls"),
    ("ember-red", "Ember red"),
    ("ink-and-pastel", "Ink and pastel"),
    ("red-spotted-ink", "Red-spotted ink"),
    ("smoky-dusk", "Smoky dusk"),
    ("blue-engraving", "Blue engraving"),
    ("dark-tapestry", "Dark tapestry"),
)
# The long side the network sees. The styles' brush strokes have a fixed size in pixels and were trained for photos
# of roughly 500 to 1000 pixels; past 2048 the strokes shrink to noise and the memory grows with the area.
DEFAULT_WORKING_SIZE = 1024
MIN_WORKING_SIZE = 256
MAX_WORKING_SIZE = 2048
APPLY_TO = ("all", "background", "subject")
MAX_FEATHER = 200
# The network downsamples twice by 2.
SIZE_MULTIPLE = 4

Progress = Callable[[int, str], None]


def style_weights(style: int, blend_with: int | None = None, blend: int = 100) -> list[float]:
    """Return the network's 26 style weights: `blend` percent of `style`, the rest of `blend_with`."""
    for index in (style, blend_with):
        if index is not None and not 0 <= index < STYLE_COUNT:
            raise ValueError(f"style must be 0 to {STYLE_COUNT - 1}, not {index}")
    if not 0 <= blend <= 100:
        raise ValueError(f"blend must be 0 to 100, not {blend}")
    weights = [0.0] * STYLE_COUNT
    if blend_with is None or blend_with == style:
        weights[style] = 1.0
        return weights
    weights[style] = blend / 100
    weights[blend_with] = (100 - blend) / 100
    return weights


def working_dimensions(size: tuple[int, int], working_size: int) -> tuple[int, int]:
    """Return the size the network works at: the photo's, scaled down so its long side fits the working size."""
    if not MIN_WORKING_SIZE <= working_size <= MAX_WORKING_SIZE:
        raise ValueError(f"working size must be {MIN_WORKING_SIZE} to {MAX_WORKING_SIZE}, not {working_size}")
    width, height = size
    scale = min(1.0, working_size / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


def to_batch(image: Image.Image) -> torch.Tensor:
    """Return an RGB image as a 1x3xHxW float tensor in [0, 1], padded to the network's size multiple.

    The padding reflects the image at the bottom and right (as the packager's code does) and is cropped off
    afterwards; an image too small to reflect is padded with its edge pixels instead.
    """
    pixels = torch.from_numpy(np.asarray(image.convert("RGB"), dtype=np.float32) / 255)
    batch = pixels.permute(2, 0, 1).unsqueeze(0)
    height, width = batch.shape[-2:]
    pad_height = max(MINIMUM_SIDE, -(-height // SIZE_MULTIPLE) * SIZE_MULTIPLE) - height
    pad_width = max(MINIMUM_SIDE, -(-width // SIZE_MULTIPLE) * SIZE_MULTIPLE) - width
    if not pad_height and not pad_width:
        return batch
    mode = "reflect" if pad_height < height and pad_width < width else "replicate"
    return functional.pad(batch, (0, pad_width, 0, pad_height), mode=mode)


def to_image(batch: torch.Tensor, size: tuple[int, int]) -> Image.Image:
    """Return the network's output cropped to `size` as an 8-bit RGB image (rounded as the packager's code does)."""
    width, height = size
    pixels = batch[0, :, :height, :width].float().clamp(0, 1).permute(1, 2, 0).cpu().numpy()
    return Image.fromarray((pixels * 255 + 0.5).astype(np.uint8), mode="RGB")


def run_network(image: Image.Image, session: ModelSession, weights: list[float],
                progress: Progress | None = None) -> Image.Image:
    """Run the network on an RGB image at its own size; return the stylized RGB image of the same size."""
    if len(weights) != STYLE_COUNT or min(weights) < 0 or sum(weights) <= 0:
        raise ValueError(f"style weights must be {STYLE_COUNT} non-negative numbers, not all zero")
    batch = session.to_device(to_batch(image))
    style = torch.tensor(weights, dtype=torch.float32, device=session.device)

    def stage_done(done: int, total: int) -> None:
        if progress is not None:
            progress(5 + 85 * done // total, f"stylizing: step {done} of {total}")

    with session.inference():
        output = session.model(batch, style, progress=stage_done)
    return to_image(output, image.size)


def stylize(image: Image.Image, session: ModelSession, weights: list[float], *, working_size: int,
            progress: Progress | None = None) -> Image.Image:
    """Return the photo stylized with the given style weights, at the photo's size (RGBA keeps its alpha)."""
    size = working_dimensions(image.size, working_size)
    if progress is not None:
        progress(0, f"stylizing at {size[0]}x{size[1]}")
    rgb = image.convert("RGB")
    small = rgb if size == image.size else rgb.resize(size, Image.LANCZOS)
    stylized = run_network(small, session, weights, progress)
    if stylized.size != image.size:
        if progress is not None:
            progress(90, f"scaling up to {image.width}x{image.height}")
        stylized = stylized.resize(image.size, Image.LANCZOS)
    if image.mode == "RGBA":
        stylized.putalpha(image.getchannel("A"))
    if progress is not None:
        progress(100, "stylized")
    return stylized


def blend_mask(size: tuple[int, int], *, strength: int, mask: Image.Image | None, apply_to: str,
               feather: int) -> Image.Image:
    """Return how much of the stylized image each pixel takes (L, 0 to 255): the region, feathered, times strength."""
    if not 0 <= strength <= 100:
        raise ValueError(f"strength must be 0 to 100, not {strength}")
    if apply_to not in APPLY_TO:
        raise ValueError(f"apply_to must be one of {', '.join(APPLY_TO)}, not {apply_to!r}")
    if not 0 <= feather <= MAX_FEATHER:
        raise ValueError(f"feather must be 0 to {MAX_FEATHER} pixels, not {feather}")
    level = round(255 * strength / 100)
    if apply_to == "all":
        return Image.new("L", size, level)
    if mask is None or mask.size != size:
        raise ValueError(f"apply_to={apply_to!r} needs a subject mask of the photo's size {size}")
    region = mask.convert("L")
    if apply_to == "background":
        region = region.point(lambda value: 255 - value)
    if feather:
        region = region.filter(ImageFilter.GaussianBlur(feather))
    # Scale by the strength with exact ends: 0 stays 0 (the photo's own pixel), 255 at full strength stays 255.
    return region.point(lambda value: (value * level + 127) // 255)


def apply(original: Image.Image, stylized: Image.Image, *, strength: int, mask: Image.Image | None,
          apply_to: str, feather: int) -> Image.Image:
    """Blend the stylized image into the photo by strength (0-100), over all of it, its subject or its background.

    Where the blend mask is 0 the photo's pixels come back unchanged, where it is 255 the stylized ones; an RGBA
    photo keeps its alpha.
    """
    if stylized.size != original.size:
        raise ValueError(f"stylized image is {stylized.size}, the photo {original.size}")
    weights = blend_mask(original.size, strength=strength, mask=mask, apply_to=apply_to, feather=feather)
    result = Image.composite(stylized.convert("RGB"), original.convert("RGB"), weights)
    if original.mode == "RGBA":
        result.putalpha(original.getchannel("A"))
    return result
