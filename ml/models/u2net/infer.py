"""Subject masks from the U2Net family: what the authors' reference does, from a decoded photo to an 8-bit mask.

Sample the photo bilinearly at the model's input size, divide by the maximum, normalise with ImageNet's mean and
standard deviation, run the network, take the fused output, min-max normalise it, truncate it to 8 bits and resize
it back to the photo bilinearly.

The authors' reference resized its input with scikit-image 0.14, whose `resize` had no anti-alias filter yet: plain
bilinear interpolation between the four nearest pixels, in floating point, zero outside the photo. Reproducing that
(rather than Pillow's anti-aliased resize, or rembg's Lanczos) is what brings the masks to theirs
(docs/quality-and-speed.md compares the ways on their eight test photos).
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ml.sessions import ModelSession


def _bilinear_taps(length: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Return, for `size` samples over `length` pixels, the two neighbours' indices and weights (half-pixel centres).

    A neighbour outside the photo gets weight zero (scikit-image's constant mode), so only upscaled edges darken a
    little, as in the reference.
    """
    centres = (np.arange(size, dtype=np.float64) + 0.5) * (length / size) - 0.5
    low = np.floor(centres).astype(np.intp)
    high_weight = (centres - low).astype(np.float32)
    low_weight = 1 - high_weight
    high = low + 1
    low_weight[low < 0] = 0
    high_weight[high > length - 1] = 0
    return np.clip(low, 0, length - 1), np.clip(high, 0, length - 1), low_weight, high_weight


def sample_bilinear(image: Image.Image, size: int) -> np.ndarray:
    """Return the RGB photo sampled at size x size points as float32 HWC in [0, 1], without anti-aliasing."""
    pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
    height, width = pixels.shape[:2]
    top, bottom, top_weight, bottom_weight = _bilinear_taps(height, size)
    left, right, left_weight, right_weight = _bilinear_taps(width, size)
    # Only the four neighbours of each sample are gathered, as 8-bit pixels: memory is size x size, whatever the
    # photo's shape (gathering whole rows first would copy `size` rows of a very wide photo as floating point).
    sampled = np.zeros((size, size, 3), dtype=np.float32)
    for rows, row_weight in ((top, top_weight), (bottom, bottom_weight)):
        for columns, column_weight in ((left, left_weight), (right, right_weight)):
            weight = row_weight[:, None, None] * column_weight[None, :, None]
            sampled += pixels[np.ix_(rows, columns)].astype(np.float32) * weight
    return sampled / 255


def preprocess(image: Image.Image, session: ModelSession) -> torch.Tensor:
    """Sample the photo at the model's input size, scale by the maximum, normalise with the model's mean and std."""
    small = sample_bilinear(image, session.settings["input_size"])
    small = small / max(float(small.max()), 1e-6)
    mean = np.asarray(session.settings["mean"], dtype=np.float32)
    std = np.asarray(session.settings["std"], dtype=np.float32)
    return torch.from_numpy(((small - mean) / std).transpose(2, 0, 1).copy()).unsqueeze(0)


def postprocess(logits: torch.Tensor, size: tuple[int, int]) -> Image.Image:
    """Turn fused logits into an 8-bit mask: sigmoid, min-max normalisation, bilinear resize to the photo."""
    prediction = torch.sigmoid(logits[0, 0])
    low, high = prediction.min(), prediction.max()
    prediction = (prediction - low) / torch.clamp(high - low, min=1e-8)
    # Truncation, not rounding, and a resize of the 8-bit mask, as the authors' reference saves its masks: both come
    # closer to their results than rounding, a float resize or rembg's Lanczos (docs/quality-and-speed.md).
    small = Image.fromarray((prediction.numpy() * 255).astype(np.uint8), mode="L")
    return small.resize(size, Image.BILINEAR)


def logits(batch: torch.Tensor, session: ModelSession) -> torch.Tensor:
    """Run the network on a normalised batch; return the fused logits as float32 on the CPU."""
    with session.inference():
        return session.model(session.to_device(batch)).float().cpu()


def predict_mask(image: Image.Image, session: ModelSession) -> Image.Image:
    """Return the subject mask (L, the photo's size) for a decoded photo."""
    return postprocess(logits(preprocess(image, session), session), image.size)
