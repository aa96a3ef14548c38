"""Throughput of our pipeline against rembg 2.0.86 on the same photos, side by side, in one run.

Both use U2NetP with the same official weights and a warm session, read each photo from disk and write an encoded
PNG cutout to disk. Rounds alternate (ours, rembg, ours, ...) so machine noise hits both alike; the figure per side is
its median round. Also prints output sizes, mask quality against the authors' reference masks, and the peak memory
of processing one 24-megapixel photo.

    .venv/bin/python bench/throughput.py [--photos DIR] [--repeat 3] [--rounds 3]

rembg is installed by this script into bench/.rembg-venv (its own virtual environment) on first use.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ml.batch import expand_inputs, output_paths, process_files  # noqa: E402
from ml.options import ProcessingOptions  # noqa: E402
from studio.settings import from_environment  # noqa: E402
from ml.weights import ONNX_FILE, fetch_onnx  # noqa: E402

REMBG_VENV = ROOT / "bench" / ".rembg-venv"
REMBG_REQUIREMENTS = ["rembg==2.0.86", "onnxruntime"]
DEFAULT_PHOTOS = ROOT.parent / "shared" / "fixtures" / "photos"

# Runs inside rembg's virtual environment: one warm session, a round per line of JSON on stdin.
REMBG_WORKER = r"""
import json, sys, time
from pathlib import Path
from rembg import new_session, remove
session = new_session("u2netp")
for line in sys.stdin:
    job = json.loads(line)
    started = time.perf_counter()
    for source, target in job["pairs"]:
        Path(target).write_bytes(remove(Path(source).read_bytes(), session=session))
    print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)
"""


def ensure_rembg() -> Path:
    """Create rembg's own virtual environment on first use and return its python."""
    python = REMBG_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(REMBG_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *REMBG_REQUIREMENTS], check=True)
    return python


def start_rembg(python: Path, model_dir: Path, warm_pairs: list[tuple[str, str]]) -> subprocess.Popen:
    """Start rembg's worker with our u2netp.onnx as its U2NET_HOME model, warmed up on one photo."""
    home = Path(tempfile.mkdtemp(prefix="rembg-home-"))
    shutil.copy(fetch_onnx(model_dir), home / ONNX_FILE)
    environment = {**os.environ, "U2NET_HOME": str(home), "OMP_NUM_THREADS": str(os.cpu_count())}
    worker = subprocess.Popen([str(python), "-c", REMBG_WORKER], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env=environment)
    run_rembg(worker, warm_pairs)
    return worker


def run_rembg(worker: subprocess.Popen, pairs: list[tuple[str, str]]) -> float:
    """Run one rembg round; return its seconds."""
    worker.stdin.write(json.dumps({"pairs": pairs}) + "\n")
    worker.stdin.flush()
    return json.loads(worker.stdout.readline())["seconds"]


def run_ours(sources: list[Path], targets: list[Path], model_dir: Path) -> float:
    """Run one round of our pipeline; return its seconds."""
    started = time.perf_counter()
    for result in process_files(sources, targets, ProcessingOptions(), model_dir=model_dir):
        if result.error:
            raise RuntimeError(result.error)
    return time.perf_counter() - started


def folder_bytes(folder: Path) -> int:
    """Return the total size of the files in a folder."""
    return sum(path.stat().st_size for path in folder.iterdir())


def mask_quality(photos: Path, model_dir: Path) -> str:
    """Compare our masks with the authors' reference masks beside the photos, as the parity test does."""
    import numpy as np
    from PIL import Image

    from ml.imageio import decode_image
    from ml.saliency import predict_mask
    from ml.sessions import get_session

    references = photos.parent / "u2netp_reference"
    if not references.is_dir():
        return "reference masks not found"
    session = get_session("u2netp", model_dir)
    errors, overlaps = [], []
    for reference in sorted(references.glob("*.png")):
        photo = next(photos.glob(reference.stem + ".*"))
        mask = np.asarray(predict_mask(decode_image(photo.read_bytes()), session), dtype=np.float32) / 255
        expected = np.asarray(Image.open(reference).convert("L"), dtype=np.float32) / 255
        errors.append(float(np.abs(mask - expected).mean()))
        ours, theirs = mask > 0.5, expected > 0.5
        overlaps.append(float((ours & theirs).sum() / max((ours | theirs).sum(), 1)))
    return (f"MAE {statistics.mean(errors):.4f} (bound 0.008), IoU min {min(overlaps):.3f} (bound 0.85), "
            f"median {statistics.median(overlaps):.3f} (bound 0.98) over {len(errors)} photos")


# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
PEAK_SCRIPT = r"""
import sys
from pathlib import Path
def high_water_mib():
    status = Path("/proc/self/status").read_text().split("VmHWM:")[1]
    return int(status.split()[0]) // 1024
sys.path.insert(0, sys.argv[1])
from ml.options import ProcessingOptions
from ml.pipeline import process_image
from ml.sessions import get_session
get_session("u2netp", sys.argv[2])
data = Path(sys.argv[3]).read_bytes()
before = high_water_mib()
result = process_image(data, ProcessingOptions(), model_dir=sys.argv[2], max_pixels=30_000_000)
after = high_water_mib()
print(before, after, result.width, result.height, len(result.data))
"""


def peak_memory(photo: Path, model_dir: Path, work: Path) -> str:
    """Process a 24-megapixel photo in a fresh process and report its peak resident memory."""
    from PIL import Image

    large = work / "24-megapixels.jpg"
    Image.open(photo).convert("RGB").resize((6000, 4000)).save(large, "JPEG", quality=90)
    output = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(ROOT), str(model_dir), str(large)],
                            capture_output=True, text=True, check=True).stdout.split()
    before, after, width, height, size = (int(value) for value in output)
    return (f"{width}x{height} photo: peak RSS {after} MiB (model loaded and JPEG in memory: {before} MiB, "
            f"so {after - before} MiB for the photo; RGBA at this size alone is {width * height * 4 >> 20} MiB); "
            f"PNG {size >> 20} MiB")


def main() -> int:
    """Run the benchmark and print the figures side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--repeat", type=int, default=3, help="use each photo this many times per round")
    parser.add_argument("--rounds", type=int, default=3)
    arguments = parser.parse_args()
    model_dir = Path(from_environment()["STUDIO_MODEL_DIR"])
    photos = expand_inputs([arguments.photos]) * arguments.repeat
    work = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    ours_dir, rembg_dir = work / "ours", work / "rembg"
    ours_dir.mkdir()
    rembg_dir.mkdir()
    ours_targets = output_paths(photos, ours_dir, "png")
    rembg_pairs = [(str(source), str(rembg_dir / target.name)) for source, target in zip(photos, ours_targets)]

    print(f"{len(photos)} photos per round ({len(photos) // arguments.repeat} distinct from {arguments.photos}), "
          f"{arguments.rounds} alternating rounds each, {os.cpu_count()} cores", flush=True)
    worker = start_rembg(ensure_rembg(), model_dir, rembg_pairs[:1])
    run_ours(photos[:1], ours_targets[:1], model_dir)  # warm-up, as rembg's
    ours_rounds, rembg_rounds = [], []
    for _ in range(arguments.rounds):
        ours_rounds.append(run_ours(photos, ours_targets, model_dir))
        rembg_rounds.append(run_rembg(worker, rembg_pairs))
    worker.stdin.close()
    worker.wait()

    ours_rate = len(photos) / statistics.median(ours_rounds)
    rembg_rate = len(photos) / statistics.median(rembg_rounds)
    ours_bytes, rembg_bytes = folder_bytes(ours_dir), folder_bytes(rembg_dir)
    print(f"{'':<22}{'ours':>12}{'rembg 2.0.86':>16}{'ratio':>10}")
    print(f"{'images per second':<22}{ours_rate:>12.2f}{rembg_rate:>16.2f}{ours_rate / rembg_rate:>9.2f}x")
    print(f"{'output MiB (distinct)':<22}{ours_bytes / arguments.repeat / 2**20:>12.2f}"
          f"{rembg_bytes / arguments.repeat / 2**20:>16.2f}{ours_bytes / rembg_bytes:>9.2f}x")
    print(f"rounds (s): ours {[round(value, 2) for value in ours_rounds]}, "
          f"rembg {[round(value, 2) for value in rembg_rounds]}")
    print("mask quality (ours):", mask_quality(arguments.photos, model_dir))
    print("memory:", peak_memory(photos[0], model_dir, work))
    print(f"own RSS peak {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024} MiB")
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
