"""Run Real-ESRGAN x4plus's original ncnn files with ncnn itself: the reference our conversion is checked against.

ncnn (PyPI `ncnn`) is a test and benchmark dependency only (requirements-dev.txt); the service never imports this.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from ml.registry import MODELS
from ml.weights import source_files

INPUT_BLOB = "data"
OUTPUT_BLOB = "output"


def original_files(model_dir: str | Path) -> tuple[Path, Path]:
    """Return the verified .param and .bin files the installer kept under the model directory."""
    files = source_files(Path(model_dir), MODELS["realesrgan_x4plus"].source).values()
    param = next(path for path in files if path.suffix == ".param")
    weights = next(path for path in files if path.suffix == ".bin")
    return param, weights


class NcnnUpscaler:
    """The ncnn network loaded once, on the CPU, with a fixed thread count."""

    def __init__(self, model_dir: str | Path, threads: int) -> None:
        import ncnn

        param, weights = original_files(model_dir)
        self.net = ncnn.Net()
        self.net.opt.use_vulkan_compute = False
        self.net.opt.num_threads = threads
        self.threads = threads
        if self.net.load_param(str(param)) != 0 or self.net.load_model(str(weights)) != 0:
            raise RuntimeError(f"ncnn could not load {param} and {weights}")
        self._ncnn = ncnn

    def run(self, rgb: np.ndarray) -> np.ndarray:
        """Upscale an HxWx3 float32 array in 0-1; return the 4Hx4Wx3 float32 result, unclamped."""
        planes = np.ascontiguousarray(rgb.transpose(2, 0, 1), dtype=np.float32)
        # ncnn.Mat wraps the array's memory without copying: clone it so nothing depends on `planes` staying alive.
        extractor = self.net.create_extractor()
        extractor.input(INPUT_BLOB, self._ncnn.Mat(planes).clone())
        status, output = extractor.extract(OUTPUT_BLOB)
        if status != 0:
            raise RuntimeError(f"ncnn extraction failed with status {status}")
        return np.array(output, dtype=np.float32).transpose(1, 2, 0).copy()

    def upscale(self, image: Image.Image) -> Image.Image:
        """Upscale an RGB image 4x in one pass, rounded to 8 bits as ours is."""
        result = self.run(np.asarray(image.convert("RGB"), dtype=np.float32) / 255)
        return Image.fromarray((np.clip(result, 0, 1) * 255 + 0.5).astype(np.uint8))
