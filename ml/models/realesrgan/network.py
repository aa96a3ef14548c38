"""RRDBNet, the ESRGAN generator that Real-ESRGAN x4plus trains: 23 residual-in-residual dense blocks, then 4x.

The structure and parameter names follow BasicSR's `RRDBNet` (xinntao's ESRGAN and Real-ESRGAN), so the authors'
checkpoints load unchanged. Only the x4 form is built: Real-ESRGAN x4plus feeds the photo in directly (the x2 and x1
models pixel-unshuffle first).
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.nn import functional

LEAKY_SLOPE = 0.2
# ESRGAN scales each residual branch by 0.2 before adding it back, for stable training of a deep network.
RESIDUAL_SCALE = 0.2
# How far, in input pixels, the upsampling part reads around an output pixel: one 3x3 convolution at 2x (half an
# input pixel) and three at 4x (three quarters), rounded up. Cutting the features into bands with this much margin
# gives the same result in a fraction of the memory.
UPSAMPLE_REACH = 2


def _conv(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, 3, 1, 1)


class ResidualDenseBlock(nn.Module):
    """Five convolutions, each seeing the block's input and every earlier output, with a scaled residual."""

    def __init__(self, features: int = 64, growth: int = 32) -> None:
        super().__init__()
        self.conv1 = _conv(features, growth)
        self.conv2 = _conv(features + growth, growth)
        self.conv3 = _conv(features + 2 * growth, growth)
        self.conv4 = _conv(features + 3 * growth, growth)
        self.conv5 = _conv(features + 4 * growth, features)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x plus 0.2 times the dense block's output."""
        # Growing one concatenation (rather than keeping every output and concatenating them anew for each
        # convolution) copies as much, and lets each step's features go as soon as they are in the next.
        dense = x
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            dense = torch.cat((dense, functional.leaky_relu(conv(dense), LEAKY_SLOPE, inplace=True)), 1)
        return self.conv5(dense).mul_(RESIDUAL_SCALE).add_(x)


class RRDB(nn.Module):
    """Three residual dense blocks in a row, wrapped in one more scaled residual."""

    def __init__(self, features: int = 64, growth: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(features, growth)
        self.rdb2 = ResidualDenseBlock(features, growth)
        self.rdb3 = ResidualDenseBlock(features, growth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x plus 0.2 times the three blocks' output."""
        return self.rdb3(self.rdb2(self.rdb1(x))).mul_(RESIDUAL_SCALE).add_(x)


class RRDBNet(nn.Module):
    """The x4 ESRGAN generator: features, a trunk of RRDBs, two nearest-neighbour 2x upsamplings, RGB out."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, features: int = 64, blocks: int = 23,
                 growth: int = 32) -> None:
        super().__init__()
        self.scale = 4
        self.conv_first = _conv(in_channels, features)
        self.body = nn.Sequential(*(RRDB(features, growth) for _ in range(blocks)))
        self.conv_body = _conv(features, features)
        self.conv_up1 = _conv(features, features)
        self.conv_up2 = _conv(features, features)
        self.conv_hr = _conv(features, features)
        self.conv_last = _conv(features, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the 4x image (values near 0-1 for inputs in 0-1; the caller clamps)."""
        return self.upsample(self.trunk(x))

    def trunk(self, x: torch.Tensor, progress: Callable[[float], None] | None = None) -> torch.Tensor:
        """Return the features at the input's size: the first convolution plus the residual trunk.

        progress: called with the share of the trunk done (0-1) after each block, where nearly all the time goes.
        """
        features = self.conv_first(x)
        body = features
        for index, block in enumerate(self.body):
            body = block(body)
            if progress is not None:
                progress((index + 1) / len(self.body))
        return features + self.conv_body(body)

    def upsample(self, features: torch.Tensor) -> torch.Tensor:
        """Return the 4x image from the trunk's features (each output pixel reads UPSAMPLE_REACH pixels around)."""
        for conv in (self.conv_up1, self.conv_up2):
            upsampled = functional.interpolate(features, scale_factor=2, mode="nearest")
            features = functional.leaky_relu(conv(upsampled), LEAKY_SLOPE, inplace=True)
        return self.conv_last(functional.leaky_relu(self.conv_hr(features), LEAKY_SLOPE, inplace=True))


def rrdbnet_x4plus() -> RRDBNet:
    """Build Real-ESRGAN x4plus's generator: 64 features, 23 blocks, growth 32."""
    return RRDBNet(3, 3, features=64, blocks=23, growth=32)
