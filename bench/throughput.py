"""U2NetP and U2Net, ours against rembg 2.0.86 on the same ONNX weights and photos, in one run: speed, masks, memory.

For each model, three warm workers take turns, round after round (ours in bfloat16 where the model allows it, ours
in float32, rembg), so machine noise hits all alike; each writes PNG cutouts of the same photos, reading them from
disk, and the figure per side is its median round. Ours goes through the product's batch path (one call, in
`process_batch`). Then each side's masks are scored photo by photo against the U-2-Net authors' own masks, and a
fresh process holding both models cuts out a 24-megapixel photo with each to measure its peak memory.

    .venv/bin/python bench/throughput.py [--fixtures DIR] [--models u2netp,u2net] [--rounds 3] [--repeat 1]

rembg runs in its own virtual environment, bench/.rembg-venv (created on first use), with our verified ONNX files
as its models (U2NET_HOME), so it downloads nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

REMBG_VENV = ROOT / "bench" / ".rembg-venv"
REMBG_REQUIREMENTS = ["rembg==2.0.86", "onnxruntime==1.32.0"]
DEFAULT_FIXTURES = ROOT.parent / "shared" / "fixtures"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}

# Runs inside rembg's virtual environment: one warm session, a JSON job per line on stdin, its seconds on stdout.
REMBG_WORKER = r"""
import json, sys, time
from pathlib import Path
from rembg import new_session, remove
session = new_session(sys.argv[1])
print(json.dumps({"bfloat16": False}), flush=True)
for line in sys.stdin:
    job = json.loads(line)
    started = time.perf_counter()
    for source, target in job["pairs"]:
        Path(target).write_bytes(remove(Path(source).read_bytes(), session=session, only_mask=job["masks"]))
    print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)
"""


# --- our side: these run in worker processes started from this same file ---

def process_batch(sources: list[Path], targets: list[Path], model: str, model_dir: Path) -> None:
    """Cut out photos through the product's batch path, as the CLI does (the bench's only call to it)."""
    from ml.batch import process_files
    from ml.imageio import DEFAULT_MAX_PIXELS
    from ml.operations import Limits, get_operation

    operation = get_operation("remove_background")
    options = operation.parse({"model": model})
    limits = Limits(DEFAULT_MAX_PIXELS, DEFAULT_MAX_PIXELS)
    for result in process_files(operation, sources, targets, options, model_dir=model_dir, limits=limits):
        if result.error:
            raise RuntimeError(f"{result.source}: {result.error}")


def write_masks(sources: list[Path], targets: list[Path], model: str, model_dir: Path) -> None:
    """Write our masks of the photos, as the product computes them."""
    from ml.imageio import decode_image
    from ml.models.u2net.infer import predict_mask
    from ml.sessions import get_session

    session = get_session(model, model_dir)
    for source, target in zip(sources, targets):
        predict_mask(decode_image(source.read_bytes()), session).save(target)


def serve(model: str, bfloat16: str, model_dir: Path) -> None:
    """Answer jobs on stdin as rembg's worker does, with our model in the given bfloat16 setting."""
    import time

    from ml.sessions import configure, get_session

    configure(bfloat16=bfloat16)
    print(json.dumps({"bfloat16": get_session(model, model_dir).bfloat16}), flush=True)
    for line in sys.stdin:
        job = json.loads(line)
        sources, targets = ([Path(pair[index]) for pair in job["pairs"]] for index in (0, 1))
        started = time.perf_counter()
        (write_masks if job["masks"] else process_batch)(sources, targets, model, model_dir)
        print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)


def high_water_mib() -> int:
    """Return this process's peak resident memory (VmHWM: ru_maxrss carries a parent's over across fork and exec)."""
    status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
    return int(status.split()[0]) // 1024


def measure_peak(photo: Path, model_dir: Path, work: Path) -> None:
    """Load both models, then cut out one photo with each; print the peak memory before and after as JSON."""
    from ml.sessions import preload

    preload(["u2netp", "u2net"], model_dir)
    loaded = high_water_mib()
    for model in ("u2netp", "u2net"):
        process_batch([photo], [work / f"{model}.png"], model, model_dir)
    print(json.dumps({"loaded": loaded, "peak": high_water_mib()}))


# --- the conductor ---

@dataclass
class Side:
    """One worker process and the rounds it ran."""

    label: str
    process: subprocess.Popen
    bfloat16: bool
    rounds: list[float]

    def run(self, pairs: list[tuple[str, str]], masks: bool = False) -> float:
        """Send one job and return its seconds."""
        self.process.stdin.write(json.dumps({"pairs": pairs, "masks": masks}) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())["seconds"]

    def close(self) -> None:
        """End the worker."""
        self.process.stdin.close()
        self.process.wait()


def start(label: str, command: list[str], environment: dict[str, str]) -> Side:
    """Start a worker and wait until its model is loaded."""
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=environment)
    return Side(label, process, json.loads(process.stdout.readline())["bfloat16"], [])


def rembg_python() -> Path:
    """Create rembg's own virtual environment on first use and return its python."""
    python = REMBG_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(REMBG_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *REMBG_REQUIREMENTS], check=True)
    return python


def rembg_home(model_dir: Path, work: Path) -> Path:
    """Return a U2NET_HOME holding our verified ONNX files under the names rembg looks for."""
    from ml.registry import MODELS
    from ml.weights import fetch

    home = work / "rembg-home"
    home.mkdir(exist_ok=True)
    for name in ("u2netp", "u2net"):
        (original,) = fetch(model_dir, MODELS[name].source).values()
        link = home / f"{name}.onnx"
        if not link.exists():
            link.symlink_to(original.resolve())
    return home


def start_sides(model: str, model_dir: Path, work: Path) -> list[Side]:
    """Start ours in bfloat16 (when the model and this CPU run it), ours in float32, and rembg."""
    threads = str(os.cpu_count())
    ours = [sys.executable, str(Path(__file__).resolve()), "--serve", model, "--model-dir", str(model_dir)]
    sides = [start("ours", [*ours, "--bfloat16", "auto"], dict(os.environ))]
    if sides[0].bfloat16:
        sides[0].label = "ours, bfloat16"
        sides.append(start("ours, float32", [*ours, "--bfloat16", "off"], dict(os.environ)))
    environment = {**os.environ, "U2NET_HOME": str(rembg_home(model_dir, work)), "OMP_NUM_THREADS": threads}
    sides.append(start("rembg 2.0.86", [str(rembg_python()), "-c", REMBG_WORKER, model], environment))
    return sides


def mask_scores(mask: Path, reference: Path) -> tuple[float, float]:
    """Return the mean absolute error and the IoU at 0.5 of a mask against the authors' mask."""
    import numpy as np
    from PIL import Image

    ours = np.asarray(Image.open(mask).convert("L"), dtype=np.float32) / 255
    theirs = np.asarray(Image.open(reference).convert("L"), dtype=np.float32) / 255
    union = ((ours > 0.5) | (theirs > 0.5)).sum()
    return float(np.abs(ours - theirs).mean()), float(((ours > 0.5) & (theirs > 0.5)).sum() / max(union, 1))


def quality_table(sides: list[Side], model: str, fixtures: Path, work: Path) -> list[str]:
    """Have every side mask the photos the authors published masks of; return the per-photo scores as a table."""
    references = sorted((fixtures / f"{model}_reference").glob("*.png"))
    photos = [next((fixtures / "photos").glob(reference.stem + ".*")) for reference in references]
    scores = {}
    for side in sides:
        folder = work / f"masks-{model}-{side.label}"
        folder.mkdir()
        side.run([(str(photo), str(folder / f"{photo.stem}.png")) for photo in photos], masks=True)
        scores[side.label] = [mask_scores(folder / f"{photo.stem}.png", reference)
                              for photo, reference in zip(photos, references)]
    lines = [f"| {model}: IoU / MAE | " + " | ".join(side.label for side in sides) + " |",
             "|---" * (len(sides) + 1) + "|"]
    for index, photo in enumerate(photos):
        cells = [f"{scores[side.label][index][1]:.3f} / {scores[side.label][index][0]:.4f}" for side in sides]
        lines.append(f"| {photo.stem} | " + " | ".join(cells) + " |")
    summary = []
    for side in sides:
        errors, overlaps = zip(*scores[side.label])
        summary.append(f"{min(overlaps):.3f}, {statistics.median(overlaps):.3f} / {statistics.mean(errors):.4f}")
    lines.append("| IoU min, median / MAE mean | " + " | ".join(summary) + " |")
    lines.append("")
    rembg = scores[sides[-1].label]
    for side in sides[:-1]:
        closer = all(ours[1] >= theirs[1] and ours[0] <= theirs[0] for ours, theirs in zip(scores[side.label], rembg))
        lines.append(f"{side.label}: at least as close as rembg on every photo (IoU and MAE): {closer}")
    return lines


def speed_table(sides: list[Side], model: str, count: int) -> list[str]:
    """Return images per second per side and the ratio to rembg."""
    rates = [count / statistics.median(side.rounds) for side in sides]
    lines = [f"| {model} | images/s | ratio to rembg | rounds (s) |", "|---|---|---|---|"]
    for side, rate in zip(sides, rates):
        rounds = ", ".join(f"{seconds:.1f}" for seconds in side.rounds)
        lines.append(f"| {side.label} | {rate:.2f} | {rate / rates[-1]:.2f}x | {rounds} |")
    return lines


def bench_model(model: str, photos: list[Path], arguments: argparse.Namespace, model_dir: Path,
                work: Path) -> list[str]:
    """Time the sides in alternating rounds, score their masks, and return both tables."""
    sides = start_sides(model, model_dir, work)
    try:
        pairs = {}
        for side in sides:
            folder = work / f"cutouts-{model}-{side.label}"
            folder.mkdir()
            pairs[side.label] = [(str(photo), str(folder / f"{index}-{photo.stem}.png"))
                                 for index, photo in enumerate(photos)]
            side.run(pairs[side.label][:1])  # warm-up
        for _ in range(arguments.rounds):
            for side in sides:
                side.rounds.append(side.run(pairs[side.label]))
        return [*speed_table(sides, model, len(photos)), "", *quality_table(sides, model, arguments.fixtures, work)]
    finally:
        for side in sides:
            side.close()


def peak_memory(photo: Path, model_dir: Path, work: Path) -> str:
    """Cut out a 24-megapixel photo with each model in a fresh process holding both; describe its peak memory."""
    from PIL import Image

    large = work / "24-megapixels.jpg"
    Image.open(photo).convert("RGB").resize((6000, 4000)).save(large, "JPEG", quality=90)
    command = [sys.executable, str(Path(__file__).resolve()), "--peak-memory", str(large),
               "--model-dir", str(model_dir)]
    figures = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout)
    return (f"a process holding both models: {figures['loaded']} MiB loaded, {figures['peak']} MiB peak after "
            f"cutting out a 6000x4000 photo with each (RGBA at that size alone is {6000 * 4000 * 4 >> 20} MiB)")


def main() -> int:
    """Run the benchmark and print its tables (Markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, default=DEFAULT_FIXTURES,
                        help="folder with photos/ and the authors' <model>_reference/ masks")
    parser.add_argument("--models", default="u2netp,u2net")
    parser.add_argument("--repeat", type=int, default=1, help="use each photo this many times per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model-dir", type=Path, help="default: the app's STUDIO_MODEL_DIR")
    parser.add_argument("--serve", metavar="MODEL", help=argparse.SUPPRESS)
    parser.add_argument("--bfloat16", default="auto", help=argparse.SUPPRESS)
    parser.add_argument("--peak-memory", type=Path, help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.model_dir is None:
        from studio.settings import from_environment

        arguments.model_dir = Path(from_environment()["STUDIO_MODEL_DIR"])
    model_dir = arguments.model_dir.resolve()
    if arguments.serve:
        serve(arguments.serve, arguments.bfloat16, model_dir)
        return 0
    work = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    try:
        if arguments.peak_memory:
            measure_peak(arguments.peak_memory, model_dir, work)
            return 0
        photos = sorted(path for path in (arguments.fixtures / "photos").iterdir()
                        if path.suffix.lower() in IMAGE_SUFFIXES) * arguments.repeat
        print(f"{len(photos)} photos per round from {arguments.fixtures / 'photos'}, {arguments.rounds} alternating "
              f"rounds, {os.cpu_count()} cores\n", flush=True)
        for model in arguments.models.split(","):
            print("\n".join(bench_model(model, photos, arguments, model_dir, work)) + "\n", flush=True)
        print("memory:", peak_memory(photos[0], model_dir, work))
    finally:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
