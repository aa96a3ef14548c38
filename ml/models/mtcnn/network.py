"""MTCNN's three networks (Zhang et al., 2016): P-Net proposes 12x12 windows, R-Net and O-Net refine them.

Module and parameter names follow the released weights (facenet-pytorch 2.6.0: conv1, prelu1, dense4, ...) so that
they load unchanged; ml.models.mtcnn.infer runs the cascade.
"""

from __future__ import annotations

import torch
from torch import nn


class PNet(nn.Module):
    """Proposal network: fully convolutional, a face probability and a box offset per 12x12 window."""

    def __init__(self) -> None:
        super().__init__()
        _add_convolutions(self, [(3, 10, 3, (2, 2)), (10, 16, 3, None), (16, 32, 3, None)])
        self.conv4_1 = nn.Conv2d(32, 2, 1)
        self.conv4_2 = nn.Conv2d(32, 4, 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = _run_convolutions(self, x, 3)
        return self.conv4_2(x), torch.softmax(self.conv4_1(x), dim=1)[:, 1]


class RefineNet(nn.Module):
    """R-Net and O-Net: convolutions, one dense layer, then face probability, box offsets and (O-Net) landmarks."""

    def __init__(self, layers: list, features: int, hidden: int, landmarks: bool) -> None:
        super().__init__()
        _add_convolutions(self, layers)
        self.depth = len(layers)
        dense = self.depth + 1
        self.add_module(f"dense{dense}", nn.Linear(features, hidden))
        self.add_module(f"prelu{dense}", nn.PReLU(hidden))
        self.add_module(f"dense{dense + 1}_1", nn.Linear(hidden, 2))
        self.add_module(f"dense{dense + 1}_2", nn.Linear(hidden, 4))
        self.landmarks = landmarks
        if landmarks:
            self.add_module(f"dense{dense + 1}_3", nn.Linear(hidden, 10))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        x = _run_convolutions(self, x, self.depth)
        # The weights come from a width-major (Caffe) layout: flatten as (width, height, channel) to match them.
        x = x.permute(0, 3, 2, 1).reshape(x.shape[0], -1)
        dense = self.depth + 1
        x = getattr(self, f"prelu{dense}")(getattr(self, f"dense{dense}")(x))
        probability = torch.softmax(getattr(self, f"dense{dense + 1}_1")(x), dim=1)[:, 1]
        offsets = getattr(self, f"dense{dense + 1}_2")(x)
        if self.landmarks:
            return offsets, probability, getattr(self, f"dense{dense + 1}_3")(x)
        return offsets, probability


def _add_convolutions(module: nn.Module, layers: list) -> None:
    """Add conv{i}, prelu{i} and optional pool{i} (ceil mode) layers, named as in the released weights."""
    for index, (in_channels, out_channels, kernel, pool) in enumerate(layers, start=1):
        module.add_module(f"conv{index}", nn.Conv2d(in_channels, out_channels, kernel))
        module.add_module(f"prelu{index}", nn.PReLU(out_channels))
        if pool:
            module.add_module(f"pool{index}", nn.MaxPool2d(*pool, ceil_mode=True))


def _run_convolutions(module: nn.Module, x: torch.Tensor, depth: int) -> torch.Tensor:
    for index in range(1, depth + 1):
        x = getattr(module, f"prelu{index}")(getattr(module, f"conv{index}")(x))
        pool = getattr(module, f"pool{index}", None)
        if pool is not None:
            x = pool(x)
    return x


class MTCNN(nn.Module):
    """The three networks of the cascade, under the names their state dicts are saved with (pnet., rnet., onet.)."""

    def __init__(self) -> None:
        super().__init__()
        self.pnet = PNet()
        self.rnet = RefineNet([(3, 28, 3, (3, 2)), (28, 48, 3, (3, 2)), (48, 64, 2, None)], 576, 128, False)
        self.onet = RefineNet([(3, 32, 3, (3, 2)), (32, 64, 3, (3, 2)), (64, 64, 3, (2, 2)), (64, 128, 2, None)],
                              1152, 256, True)


def mtcnn() -> MTCNN:
    """Build the untrained cascade (ModelSpec.build)."""
    return MTCNN()
