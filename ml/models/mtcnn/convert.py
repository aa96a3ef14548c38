"""Convert facenet-pytorch's P-Net, R-Net and O-Net state dicts (inside its PyPI wheel) into our cascade's one."""

from __future__ import annotations

from pathlib import Path

import torch

from ml.models.conversion import ConversionError
from ml.registry import ModelSpec

NETWORKS = ("pnet", "rnet", "onet")


def from_state_dicts(files: dict[str, Path], spec: ModelSpec) -> dict[str, torch.Tensor]:
    """Prefix each network's tensors with its name and check every one against the architecture."""
    expected = spec.architecture().state_dict()
    state: dict[str, torch.Tensor] = {}
    for network in NETWORKS:
        (path,) = [path for member, path in files.items() if member.endswith(f"/{network}.pt")]
        # weights_only: the files are plain dicts of tensors, so nothing in them may run code.
        released = torch.load(path, map_location="cpu", weights_only=True)
        for name, tensor in released.items():
            state[f"{network}.{name}"] = tensor.detach().to(torch.float32).contiguous()
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing or unexpected:
        raise ConversionError(f"released MTCNN weights do not fit: missing {missing}, unexpected {unexpected}")
    for name, tensor in state.items():
        if tensor.shape != expected[name].shape:
            raise ConversionError(f"{name} has shape {tuple(tensor.shape)}, the network {tuple(expected[name].shape)}")
    return state
