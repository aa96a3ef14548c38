"""Subject masks from the U2Net family: what the authors' reference does, from a decoded photo to an 8-bit mask.

Resize to the model's input, divide by the maximum, normalise with ImageNet's mean and standard deviation, run the
network, take the fused output, min-max normalise it and resize it back to the photo.
"""

from __future__ import annotations

import numpy as np
import torch
from PIL import Image

from ml.sessions import ModelSession


def preprocess(image: Image.Image, session: ModelSession) -> torch.Tensor:
    """Resize to the model's input, scale by the maximum, normalise with the model's mean and std (NCHW)."""
    size = session.settings["input_size"]
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    small = np.asarray(rgb.resize((size, size), Image.BILINEAR), dtype=np.float32)
    small = small / max(float(small.max()), 1e-6)
    mean = np.asarray(session.settings["mean"], dtype=np.float32)
    std = np.asarray(session.settings["std"], dtype=np.float32)
    return torch.from_numpy(((small - mean) / std).transpose(2, 0, 1).copy()).unsqueeze(0)


def postprocess(logits: torch.Tensor, size: tuple[int, int]) -> Image.Image:
    """Turn fused logits into an 8-bit mask: sigmoid, min-max normalisation, bilinear resize to the photo."""
    prediction = torch.sigmoid(logits[0, 0])
    low, high = prediction.min(), prediction.max()
    prediction = (prediction - low) / torch.clamp(high - low, min=1e-8)
    # Truncation, not rounding, as the authors' reference saves its masks.
    small = Image.fromarray((prediction.numpy() * 255).astype(np.uint8), mode="L")
    return small.resize(size, Image.BILINEAR)


def logits(batch: torch.Tensor, session: ModelSession) -> torch.Tensor:
    """Run the network on a normalised batch; return the fused logits as float32 on the CPU."""
    with session.inference():
        return session.model(session.to_device(batch)).float().cpu()


def predict_mask(image: Image.Image, session: ModelSession) -> Image.Image:
    """Return the subject mask (L, the photo's size) for a decoded photo."""
    return postprocess(logits(preprocess(image, session), session), image.size)
