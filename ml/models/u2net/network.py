"""U^2-Net and U^2-NetP (Qin et al., 2020): nested U-structures of residual U-blocks (RSU).

Submodule names follow the authors' release (stage1, rebnconvin, conv_s1, bn_s1, side1, outconv, ...) so that their
checkpoints load unchanged; the RSU blocks are built from their height instead of being written out one by one.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as functional
from torch import nn


def upsample_like(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Resize source bilinearly to target's spatial size."""
    return functional.interpolate(source, size=target.shape[2:], mode="bilinear", align_corners=False)


class REBNCONV(nn.Module):
    """3x3 convolution (optionally dilated), batch norm and ReLU."""

    def __init__(self, in_channels: int, out_channels: int, dilation: int = 1, batch_norm: bool = True) -> None:
        super().__init__()
        self.conv_s1 = nn.Conv2d(in_channels, out_channels, 3, padding=dilation, dilation=dilation)
        # Weights with batch norm folded into the convolution (as exported to ONNX) use identity here.
        self.bn_s1 = nn.BatchNorm2d(out_channels) if batch_norm else nn.Identity()
        self.relu_s1 = nn.ReLU(inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu_s1(self.bn_s1(self.conv_s1(x)))


class RSU(nn.Module):
    """Residual U-block of a given height: RSU-7..RSU-4, or RSU-4F with dilations instead of pooling."""

    def __init__(self, height: int, in_channels: int, mid_channels: int, out_channels: int,
                 dilated: bool = False, batch_norm: bool = True) -> None:
        super().__init__()
        self.height = height
        self.dilated = dilated
        self.rebnconvin = REBNCONV(in_channels, out_channels, batch_norm=batch_norm)
        for level in range(1, height + 1):
            level_in = out_channels if level == 1 else mid_channels
            self.add_module(f"rebnconv{level}", REBNCONV(level_in, mid_channels, self._dilation(level), batch_norm))
        for level in range(height - 1, 0, -1):
            level_out = out_channels if level == 1 else mid_channels
            self.add_module(
                f"rebnconv{level}d", REBNCONV(mid_channels * 2, level_out, self._dilation(level), batch_norm)
            )
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

    def _dilation(self, level: int) -> int:
        if self.dilated:
            return 2 ** (level - 1)
        return 2 if level == self.height else 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = self.rebnconvin(x)
        encoded = []
        hidden = residual
        for level in range(1, self.height + 1):
            hidden = getattr(self, f"rebnconv{level}")(hidden)
            encoded.append(hidden)
            # The two deepest levels work at the same scale (the last one dilated), so no pooling before them.
            if not self.dilated and level < self.height - 1:
                hidden = self.pool(hidden)
        decoded = encoded[-1]
        for level in range(self.height - 1, 0, -1):
            decoded = getattr(self, f"rebnconv{level}d")(torch.cat((decoded, encoded[level - 1]), 1))
            if not self.dilated and level > 1:
                decoded = upsample_like(decoded, encoded[level - 2])
        return decoded + residual


# (height, dilated, in, mid, out) for the six encoder stages and the five decoder stages.
U2NET_ENCODER = ((7, False, 3, 32, 64), (6, False, 64, 32, 128), (5, False, 128, 64, 256),
                 (4, False, 256, 128, 512), (4, True, 512, 256, 512), (4, True, 512, 256, 512))
U2NET_DECODER = ((4, True, 1024, 256, 512), (4, False, 1024, 128, 256), (5, False, 512, 64, 128),
                 (6, False, 256, 32, 64), (7, False, 128, 16, 64))
U2NETP_ENCODER = ((7, False, 3, 16, 64), (6, False, 64, 16, 64), (5, False, 64, 16, 64),
                  (4, False, 64, 16, 64), (4, True, 64, 16, 64), (4, True, 64, 16, 64))
U2NETP_DECODER = ((4, True, 128, 16, 64), (4, False, 128, 16, 64), (5, False, 128, 16, 64),
                  (6, False, 128, 16, 64), (7, False, 128, 16, 64))


class U2Net(nn.Module):
    """Two-level nested U-structure with six side outputs fused into the saliency map."""

    def __init__(self, encoder: tuple, decoder: tuple, out_channels: int = 1, batch_norm: bool = True,
                 full_precision_stages: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.full_precision_stages = frozenset(full_precision_stages)
        for index, (height, dilated, inputs, mids, outputs) in enumerate(encoder, start=1):
            self.add_module(f"stage{index}", RSU(height, inputs, mids, outputs, dilated, batch_norm))
        for index, (height, dilated, inputs, mids, outputs) in zip(range(5, 0, -1), decoder):
            self.add_module(f"stage{index}d", RSU(height, inputs, mids, outputs, dilated, batch_norm))
        side_channels = [decoder[-1][4]] + [stage[4] for stage in reversed(decoder[:-1])] + [encoder[-1][4]]
        for index, channels in enumerate(side_channels, start=1):
            self.add_module(f"side{index}", nn.Conv2d(channels, out_channels, 3, padding=1))
        self.outconv = nn.Conv2d(6 * out_channels, out_channels, 1)
        self.pool = nn.MaxPool2d(2, stride=2, ceil_mode=True)

    def _run(self, name: str, function: Callable[..., torch.Tensor], *inputs: torch.Tensor) -> torch.Tensor:
        """Call a part of the network, in float32 when it is one of full_precision_stages under autocast."""
        device = inputs[0].device.type
        if name in self.full_precision_stages and torch.is_autocast_enabled(device):
            with torch.autocast(device, enabled=False):
                return function(*(tensor.float() for tensor in inputs))
        return function(*inputs)

    def _stage(self, name: str, x: torch.Tensor) -> torch.Tensor:
        return self._run(name, getattr(self, name), x)

    def _fuse(self, *decoded: torch.Tensor) -> torch.Tensor:
        """Return the fused logits of the six side outputs (the stage named "sides" in full_precision_stages)."""
        sides = [self.side1(decoded[0])]
        for index in range(2, 7):
            sides.append(upsample_like(getattr(self, f"side{index}")(decoded[index - 1]), sides[0]))
        return self.outconv(torch.cat(sides, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the fused saliency logits (d0 before the sigmoid): the only output inference needs."""
        encoded = []
        hidden = x
        for index in range(1, 7):
            hidden = self._stage(f"stage{index}", hidden)
            encoded.append(hidden)
            if index < 6:
                hidden = self.pool(hidden)
        decoded = [encoded[5]]
        hidden = upsample_like(encoded[5], encoded[4])
        for index in range(5, 0, -1):
            hidden = self._stage(f"stage{index}d", torch.cat((hidden, encoded[index - 1]), 1))
            decoded.insert(0, hidden)
            if index > 1:
                hidden = upsample_like(hidden, encoded[index - 2])
        return self._run("sides", self._fuse, *decoded)


def u2net(batch_norm: bool = True) -> U2Net:
    """Build the full U^2-Net (176 MB of weights)."""
    # In bfloat16, the last two decoder stages are what moves the masks away from float32's and the authors'; kept
    # in float32 they bring the masks back, at about a quarter of the multiply-adds (docs/quality-and-speed.md,
    # "bfloat16").
    return U2Net(U2NET_ENCODER, U2NET_DECODER, batch_norm=batch_norm, full_precision_stages=("stage2d", "stage1d"))


def u2netp(batch_norm: bool = True) -> U2Net:
    """Build the small U^2-NetP (4.7 MB of weights)."""
    # Only stage2d in bfloat16 (its last convolution plus the residual sum) moves the masks away from the authors';
    # everything else runs in bfloat16 without changing them (docs/quality-and-speed.md, "bfloat16").
    return U2Net(U2NETP_ENCODER, U2NETP_DECODER, batch_norm=batch_norm, full_precision_stages=("stage2d",))
