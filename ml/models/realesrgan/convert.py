"""Convert Real-ESRGAN x4plus from ncnn's format (a `.param` graph and a `.bin` of weights) into RRDBNet's state dict.

The `.param` file is text: a magic number, the layer and blob counts, then one layer a line (type, name, input and
output counts, the blob names, then `key=value` parameters; a key below -23300 holds an array). The `.bin` file holds
each layer's weights in layer order: a convolution's kernel (a 4-byte tag, then fp16 or fp32 values) and, when it
has one, its bias (plain fp32). The convolutions map, in file order, onto the network's convolutions in forward
order; every shape, the bias and the activation are checked on the way, and the whole file must be read exactly.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ml.models.conversion import ConversionError
from ml.registry import ModelSpec

PARAM_MAGIC = 7767517
FP16_TAG = 0x01306B47
FP32_TAG = 0
ARRAY_KEY_BASE = -23300
# ncnn's Convolution parameter ids: output channels, kernel size, bias present, kernel element count, activation.
NUM_OUTPUT, KERNEL_W, BIAS_TERM, WEIGHT_SIZE, ACTIVATION, ACTIVATION_PARAMS = 0, 1, 5, 6, 9, 10
LEAKY_RELU = 2
# Layers that carry no weights in the .bin file.
WEIGHTLESS = {"Input", "Split", "Concat", "Eltwise", "BinaryOp", "Interp"}


@dataclass(frozen=True)
class Layer:
    """One line of a .param file."""

    kind: str
    name: str
    params: dict[int, list[float]]

    def value(self, key: int, default: float = 0) -> float:
        """Return a scalar parameter, or the default ncnn uses when it is absent."""
        return self.params.get(key, [default])[0]


def _parse_value(text: str) -> list[float]:
    return [float(number) for number in text.split(",")]


def parse_param(text: str) -> list[Layer]:
    """Parse the text of a .param file into its layers."""
    lines = [line.split() for line in text.splitlines() if line.strip()]
    if not lines or lines[0] != [str(PARAM_MAGIC)]:
        raise ConversionError("not an ncnn .param file (bad magic number)")
    layer_count = int(lines[1][0])
    layers = []
    for fields in lines[2:]:
        kind, name, bottoms, tops = fields[0], fields[1], int(fields[2]), int(fields[3])
        params: dict[int, list[float]] = {}
        for entry in fields[4 + bottoms + tops:]:
            key_text, _, value_text = entry.partition("=")
            key = int(key_text)
            if key <= ARRAY_KEY_BASE:
                # An array is written `-233xx=count,v1,v2,...` for parameter id xx.
                values = _parse_value(value_text)
                params[ARRAY_KEY_BASE - key] = values[1:1 + int(values[0])]
            else:
                params[key] = _parse_value(value_text)
        layers.append(Layer(kind, name, params))
    if len(layers) != layer_count:
        raise ConversionError(f".param declares {layer_count} layers but lists {len(layers)}")
    return layers


class _Reader:
    """Reads ncnn weight arrays from a .bin file's bytes in order."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.offset = 0

    def take(self, count: int) -> bytes:
        if self.offset + count > len(self.data):
            raise ConversionError(".bin file ends early")
        chunk = self.data[self.offset:self.offset + count]
        self.offset += count
        return chunk

    def tagged(self, count: int) -> np.ndarray:
        """Read a tagged array (ncnn's type 0): fp16 padded to 4 bytes, or raw fp32."""
        tag = int.from_bytes(self.take(4), "little")
        if tag == FP16_TAG:
            padded = (count * 2 + 3) // 4 * 4
            return np.frombuffer(self.take(padded)[:count * 2], dtype="<f2").astype(np.float32)
        if tag == FP32_TAG:
            return self.plain(count)
        raise ConversionError(f"unsupported ncnn weight storage tag {tag:#010x} (quantized weights)")

    def plain(self, count: int) -> np.ndarray:
        """Read an untagged fp32 array (ncnn's type 1)."""
        return np.frombuffer(self.take(count * 4), dtype="<f4").astype(np.float32)


def convolution_weights(layers: list[Layer], data: bytes) -> list[tuple[Layer, np.ndarray, np.ndarray | None]]:
    """Read every convolution's kernel and bias from the .bin bytes, in layer order."""
    reader = _Reader(data)
    found = []
    for layer in layers:
        if layer.kind in WEIGHTLESS:
            continue
        if layer.kind != "Convolution":
            raise ConversionError(f"unexpected layer {layer.kind} {layer.name}")
        outputs, size = int(layer.value(NUM_OUTPUT)), int(layer.value(WEIGHT_SIZE))
        kernel = reader.tagged(size)
        bias = reader.plain(outputs) if layer.value(BIAS_TERM) else None
        found.append((layer, kernel, bias))
    if reader.offset != len(data):
        raise ConversionError(f".bin file has {len(data) - reader.offset} bytes more than the graph reads")
    return found


def _check(layer: Layer, conv: torch.nn.Conv2d, name: str, leaky: bool) -> None:
    """Refuse a layer whose shape, bias or activation differs from the module it is mapped onto."""
    out_channels, in_channels, kernel_h, kernel_w = conv.weight.shape
    expected = out_channels * in_channels * kernel_h * kernel_w
    if (layer.value(NUM_OUTPUT) != out_channels or layer.value(KERNEL_W) != kernel_w
            or layer.value(WEIGHT_SIZE) != expected or not layer.value(BIAS_TERM)):
        raise ConversionError(f"ncnn layer {layer.name} does not match {name} {tuple(conv.weight.shape)}")
    activation = layer.value(ACTIVATION)
    slope = layer.params.get(ACTIVATION_PARAMS, [0.0])[0]
    if (activation == LEAKY_RELU and abs(slope - 0.2) < 1e-6) != leaky or activation not in (0, LEAKY_RELU):
        raise ConversionError(f"ncnn layer {layer.name} has activation {activation:g}, not what {name} has")


def _is_followed_by_leaky_relu(name: str) -> bool:
    """Tell which of RRDBNet's convolutions a leaky ReLU follows (see ml.models.realesrgan.network)."""
    return name.rsplit(".", 1)[-1] in ("conv1", "conv2", "conv3", "conv4", "conv_up1", "conv_up2", "conv_hr")


def to_state_dict(model: torch.nn.Module, layers: list[Layer], data: bytes) -> dict[str, torch.Tensor]:
    """Map the ncnn convolutions, in file order, onto the model's convolutions in registration order."""
    convs = [(name, module) for name, module in model.named_modules() if isinstance(module, torch.nn.Conv2d)]
    weights = convolution_weights(layers, data)
    if len(weights) != len(convs):
        raise ConversionError(f"the ncnn graph has {len(weights)} convolutions, the model {len(convs)}")
    state = {}
    for (name, conv), (layer, kernel, bias) in zip(convs, weights):
        _check(layer, conv, name, _is_followed_by_leaky_relu(name))
        state[f"{name}.weight"] = torch.from_numpy(kernel.reshape(conv.weight.shape).copy())
        state[f"{name}.bias"] = torch.from_numpy(bias.copy())
    return state


def from_ncnn(files: dict[str, Path], spec: ModelSpec) -> dict[str, torch.Tensor]:
    """Convert a verified ncnn .param/.bin pair into the model's float32 state dict."""
    param = next(path for member, path in files.items() if member.endswith(".param"))
    weights = next(path for member, path in files.items() if member.endswith(".bin"))
    layers = parse_param(param.read_text(encoding="ascii"))
    return to_state_dict(spec.architecture(), layers, weights.read_bytes())
