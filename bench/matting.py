"""Alpha matting and foreground colours (ml/edits/matting.py): what they change, and what they cost per megapixel.

    .venv/bin/python bench/matting.py [--fixtures ../shared/fixtures] [--sizes 1,6,24]

Quality, on the U-2-Net authors' eight general photos: each photo is put, with the authors' own mask as its true
alpha, on a plain green background (the subject's colours reaching past its sure region as the nearest sure pixel's,
a known truth for the edge), U²-NetP finds the subject in that composite, and the cutout is put on a dark colour. It
prints the share of the photo in the trimap's band, the share of the band matting changes (by more than 2/255), the
alpha's mean error in the band against the truth (the model's mask, matted), and the mean colour error (0-255) of
the edge pixels on the dark colour: the plain cutout, with foreground estimation, with matting and estimation.

Cost: the horse photo resized to each size (megapixels), matted and recoloured in a fresh process: wall seconds and
the process's peak memory. When rembg is installed in bench/.rembg-venv (bench/throughput.py creates it), rembg's
own alpha_matting=True on the same photos is timed beside ours, in its own process.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.throughput import DEFAULT_FIXTURES, REMBG_VENV, rembg_home  # noqa: E402

GENERAL = {"boat": "boat.jpg", "girl": "girl.png", "hockey": "hockey.png", "horse": "horse.jpg", "im_01": "im_01.png",
           "long": "long.jpg", "rifle2": "rifle2.jpeg", "vangogh": "vangogh.jpeg"}
GREEN = np.array([40.0, 200.0, 60.0])
DARK = np.array([20.0, 20.0, 30.0])
REMBG_MATTING = r"""
import json, resource, sys, time
from PIL import Image
from rembg import new_session, remove
session = new_session("u2netp")
photo = Image.open(sys.argv[1]).convert("RGB").resize((int(sys.argv[2]), int(sys.argv[3])))
remove(photo, session=session)  # untimed: the session's first run
started = time.perf_counter()
remove(photo, session=session, alpha_matting=True)
print(json.dumps({"seconds": time.perf_counter() - started,
                  "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def synthetic(fixtures: Path, name: str) -> tuple[Image.Image, np.ndarray, np.ndarray]:
    """Return the photo on green, its true alpha (0-1) and its true colours."""
    from scipy.ndimage import distance_transform_edt

    photo = np.asarray(Image.open(fixtures / "photos" / GENERAL[name]).convert("RGB"), dtype=float)
    reference = Image.open(fixtures / "u2net_reference" / f"{name}.png").convert("L")
    alpha = np.asarray(reference.resize((photo.shape[1], photo.shape[0])), dtype=float) / 255
    _, (rows, columns) = distance_transform_edt(alpha <= 0.98, return_indices=True)
    colours = photo[rows, columns]
    composite = alpha[..., None] * colours + (1 - alpha[..., None]) * GREEN
    return Image.fromarray(np.clip(composite + 0.5, 0, 255).astype(np.uint8)), alpha, colours


def quality(fixtures: Path) -> list[str]:
    """Return the quality table's lines."""
    from ml.edits import matting
    from ml.models.u2net.infer import predict_mask
    from ml.sessions import get_session

    session = get_session("u2netp", ROOT / "instance" / "models")
    lines = ["| photo | band, % of photo | band changed by matting, % | alpha error in band: mask / matted | "
             "edge colour error on dark: plain / estimated / matted+estimated |", "|---|---|---|---|---|"]
    for name in GENERAL:
        image, alpha, colours = synthetic(fixtures, name)
        mask = predict_mask(image, session)
        matted = matting.matte(image, mask)
        band = matting.trimap(mask).unknown
        before, after = np.asarray(mask, dtype=float) / 255, np.asarray(matted, dtype=float) / 255
        truth = alpha[..., None] * colours + (1 - alpha[..., None]) * DARK
        edge = (alpha > 0.02) & (alpha < 0.98)

        def colour_error(colour_image: Image.Image, alpha_image: Image.Image) -> float:
            weights = np.asarray(alpha_image, dtype=float)[..., None] / 255
            result = weights * np.asarray(colour_image, dtype=float) + (1 - weights) * DARK
            return float(np.abs(result - truth)[edge].mean())

        errors = (colour_error(image, mask), colour_error(matting.foreground_colours(image, mask), mask),
                  colour_error(matting.foreground_colours(image, matted), matted))
        lines.append(f"| {name} | {band.mean() * 100:.1f} | {(np.abs(after - before) > 2 / 255)[band].mean() * 100:.0f}"
                     f" | {np.abs(before - alpha)[band].mean():.3f} / {np.abs(after - alpha)[band].mean():.3f} | "
                     + " / ".join(f"{error:.1f}" for error in errors) + " |")
    return lines


def one_size(fixtures: Path, megapixels: float) -> dict[str, float]:
    """Matte and recolour the horse at this size in this process; return seconds and peak memory.

    The mask is the authors' (no model is loaded), so the peak memory is the photo's and matting's alone.
    """
    from ml.edits import matting

    load_seconds = matting.load()
    photo = Image.open(fixtures / "photos" / "horse.jpg").convert("RGB")
    mask = Image.open(fixtures / "u2net_reference" / "horse.png").convert("L").resize(photo.size)
    scale = (megapixels * 1e6 / (photo.width * photo.height)) ** 0.5
    size = (round(photo.width * scale), round(photo.height * scale))
    photo, mask = photo.resize(size, Image.BICUBIC), mask.resize(size, Image.BILINEAR)
    baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    started = time.perf_counter()
    alpha = matting.matte(photo, mask)
    matted = time.perf_counter()
    matting.foreground_colours(photo, alpha)
    done = time.perf_counter()
    return {"width": size[0], "height": size[1], "load_seconds": load_seconds, "matte_seconds": matted - started,
            "foreground_seconds": done - matted, "baseline_mb": baseline,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def rembg_size(fixtures: Path, width: int, height: int) -> str:
    """Return rembg's alpha matting seconds and peak memory at this size, or why there are none."""
    python = REMBG_VENV / "bin" / "python"
    if not python.exists():
        return "rembg not installed (bench/throughput.py creates bench/.rembg-venv)"
    with tempfile.TemporaryDirectory() as work:
        # rembg reads our verified ONNX files (it would download its own otherwise).
        environment = {**os.environ, "U2NET_HOME": str(rembg_home(ROOT / "instance" / "models", Path(work)))}
        try:
            answer = subprocess.run([str(python), "-c", REMBG_MATTING, str(fixtures / "photos" / "horse.jpg"),
                                     str(width), str(height)], capture_output=True, text=True, timeout=900,
                                    env=environment)
        except subprocess.TimeoutExpired:
            return "over 900 s"
    if answer.returncode != 0:
        return f"failed: {answer.stderr.strip().splitlines()[-1] if answer.stderr.strip() else answer.returncode}"
    figures = json.loads(answer.stdout.strip().splitlines()[-1])
    return f"{figures['seconds']:.2f} s, {figures['peak_mb']:.0f} MB peak"


def main() -> None:
    """Print the quality table, then the cost per size, ours beside rembg's."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES)
    parser.add_argument("--sizes", default="1,6,24", help="megapixels, comma-separated")
    parser.add_argument("--cost-only", action="store_true", help="skip the quality table")
    parser.add_argument("--one", type=float, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.one:
        print(json.dumps(one_size(arguments.fixtures, arguments.one)))
        return
    if not arguments.cost_only:
        print("\n".join(quality(arguments.fixtures)) + "\n")
    print("| size | ours: matte s / foreground s / peak MB (the photo and mask alone) | rembg alpha_matting=True |")
    print("|---|---|---|")
    for megapixels in (float(value) for value in arguments.sizes.split(",")):
        answer = subprocess.run([sys.executable, __file__, "--fixtures", str(arguments.fixtures),
                                 "--one", str(megapixels)], capture_output=True, text=True, check=True)
        ours = json.loads(answer.stdout.strip().splitlines()[-1])
        print(f"| {ours['width']}x{ours['height']} ({megapixels:g} MP) | {ours['matte_seconds']:.2f} / "
              f"{ours['foreground_seconds']:.2f} / {ours['peak_mb']:.0f} ({ours['baseline_mb']:.0f}) | "
              f"{rembg_size(arguments.fixtures, ours['width'], ours['height'])} |")


if __name__ == "__main__":
    main()
