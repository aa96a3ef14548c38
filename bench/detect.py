"""Speed and memory of object detection and smart crops, beside TF.js running the original graph model, in one run.

Ours: NanoDet-g in PyTorch with a warm session, per photo: the network alone, detect (letterbox, network, decoding)
and smart crop (detect, choose the box, cut it). TF.js: the same NanoDet-g graph model from the same verified files,
on the very same input tensors, with TF.js's pure JavaScript CPU backend in node (tfjs-node, TensorFlow's native
backend, cannot be installed here); its figure is the network alone, after one warm-up run. Peak memory is each
process's high-water resident size: ours while detecting and cropping a 24-megapixel photo.

    .venv/bin/python bench/detect.py [--photos DIR] [--repeat 5] [--tfjs-photos 3] [--no-tfjs]

TF.js comes from `make install` (npm ci in tests/ml/tfjs).
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
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402
from PIL import Image  # noqa: E402

from ml.edits.smart_crop import smart_crop, smart_crop_box  # noqa: E402
from ml.imageio import decode_image  # noqa: E402
from ml.models.nanodet.infer import DETECTION_MODEL, detect_objects, preprocess  # noqa: E402
from ml.registry import MODELS  # noqa: E402
from ml.sessions import get_session  # noqa: E402
from ml.weights import source_files  # noqa: E402
from studio.settings import from_environment  # noqa: E402

DEFAULT_PHOTOS = ROOT.parent / "shared" / "fixtures" / "photos"
TFJS_DIR = ROOT / "tests" / "ml" / "tfjs"

# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec.
PEAK_SCRIPT = r"""
import sys
from pathlib import Path
def high_water_mib():
    return int(Path("/proc/self/status").read_text().split("VmHWM:")[1].split()[0]) // 1024
sys.path.insert(0, sys.argv[1])
from PIL import Image
from ml.edits.smart_crop import smart_crop, smart_crop_box
from ml.models.nanodet.infer import DETECTION_MODEL, detect_objects
from ml.sessions import get_session
session = get_session(DETECTION_MODEL, sys.argv[2])
image = Image.open(sys.argv[3])
image.load()
before = high_water_mib()
detections = detect_objects(image, session)
crop = smart_crop(image, smart_crop_box(image.size, detections, None, (4, 5), 0.1).box)
print(before, high_water_mib(), image.width, image.height, len(detections))
"""


def median_ms(work, repeat: int) -> float:
    """Return the median milliseconds of repeat calls."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def ours(images: list[Image.Image], session, repeat: int) -> dict[str, float]:
    """Return our median milliseconds per photo for the network alone, detect and smart crop."""
    batches = [preprocess(image, session)[0] for image in images]

    def network(batch):
        with session.inference():
            session.model(session.to_device(batch))

    def crop(image):
        detections = detect_objects(image, session)
        smart_crop(image, smart_crop_box(image.size, detections, None, (1, 1), 0.1).box)

    for image in images[:2]:
        crop(image)  # warm-up
    return {
        "network": statistics.mean(median_ms(lambda: network(batch), repeat) for batch in batches),
        "detect": statistics.mean(median_ms(lambda: detect_objects(image, session), repeat) for image in images),
        "smart crop": statistics.mean(median_ms(lambda: crop(image), repeat) for image in images),
    }


def tfjs(images: list[Image.Image], session, repeat: int, work: Path, model_dir: Path) -> dict[str, float] | str:
    """Return TF.js's median network milliseconds per photo and its peak RSS, or why it could not run."""
    if shutil.which("node") is None or not (TFJS_DIR / "node_modules" / "@tensorflow" / "tfjs").is_dir():
        return "not run: node or @tensorflow/tfjs missing (make install)"
    inputs = []
    for index, image in enumerate(images):
        path = work / f"input-{index}.f32"
        preprocess(image, session)[0].numpy().astype("<f4").tofile(path)
        inputs.append(str(path))
    model_json = source_files(model_dir, MODELS[DETECTION_MODEL].source)["models/nanodet.json"]
    subprocess.run(["node", str(TFJS_DIR / "run_graph_model.js"), str(model_json), str(work / "tfjs"), *inputs,
                    "--repeat", str(repeat)], check=True, capture_output=True, text=True)
    report = json.loads((work / "tfjs" / "report.json").read_text())
    return {"network": statistics.mean(statistics.median(times) for times in report["milliseconds"]),
            "peak MiB": report["peakRssBytes"] / 2**20}


def peak_memory(photo: Path, model_dir: Path, work: Path) -> tuple[int, int, str]:
    """Detect and crop a 24-megapixel photo in a fresh process; return its peak RSS before and after, and a note."""
    large = work / "24-megapixels.jpg"
    Image.open(photo).convert("RGB").resize((6000, 4000)).save(large, "JPEG", quality=90)
    output = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(ROOT), str(model_dir), str(large)],
                            capture_output=True, text=True, check=True).stdout.split()
    before, after, width, height, found = (int(value) for value in output)
    return before, after, f"{width}x{height} photo, {found} objects"


def main() -> int:
    """Run the benchmark and print the figures side by side."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per photo (ours); median taken")
    parser.add_argument("--tfjs-photos", type=int, default=3, help="photos TF.js runs (about 10-20 s each)")
    parser.add_argument("--tfjs-repeat", type=int, default=1, help="timed runs per photo (TF.js)")
    parser.add_argument("--no-tfjs", action="store_true")
    arguments = parser.parse_args()
    model_dir = Path(from_environment()["STUDIO_MODEL_DIR"])
    session = get_session(DETECTION_MODEL, model_dir)
    paths = sorted(path for path in arguments.photos.iterdir() if path.suffix.lower() in (".jpg", ".jpeg", ".png"))
    images = [decode_image(path.read_bytes()) for path in paths]
    work = Path(tempfile.mkdtemp(prefix="studio-bench-detect-"))
    try:
        print(f"{len(images)} photos from {arguments.photos}, {os.cpu_count()} cores, "
              f"{torch.get_num_threads()} torch threads", flush=True)
        timings = ours(images, session, arguments.repeat)
        subset = images[:arguments.tfjs_photos]
        same_subset = ours(subset, session, arguments.repeat)["network"]
        theirs = ("not run (--no-tfjs)" if arguments.no_tfjs
                  else tfjs(subset, session, arguments.tfjs_repeat, work, model_dir))
        before, after, note = peak_memory(paths[0], model_dir, work)
        print(f"{'ms per photo':<34}{'ours':>10}{'TF.js 4.22 CPU':>16}{'ratio':>10}")
        if isinstance(theirs, dict):
            print(f"{f'network, {len(subset)} photos':<34}{same_subset:>10.1f}{theirs['network']:>16.1f}"
                  f"{theirs['network'] / same_subset:>9.1f}x")
        else:
            print(f"TF.js: {theirs}")
        print(f"{f'network, all {len(images)} photos':<34}{timings['network']:>10.1f}")
        print(f"{'detect (letterbox, network, decode)':<34}{timings['detect']:>10.1f}")
        print(f"{'smart crop (detect, box, cut)':<34}{timings['smart crop']:>10.1f}")
        print(f"peak RSS: ours {after} MiB ({note}; {before} MiB with the model loaded and the photo decoded)"
              + (f", TF.js {theirs['peak MiB']:.0f} MiB (node, model and {len(subset)} inputs)"
                 if isinstance(theirs, dict) else ""))
    finally:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
