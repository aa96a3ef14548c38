"""Face operations: milliseconds per photo and peak memory, our MTCNN side by side with facenet-pytorch's own.

On the fixture photos of people: detection (ours and facenet-pytorch 2.6.0's code from the installer's sources/,
in alternating rounds, the figure per side its median round), the preview, anonymize (blur, pixelate), beautify,
and an ID photo from one person cropped out of a fixture and enlarged (U2NetP mask and layout timed apart). Peak
memory of each operation is measured in a fresh process. Prints figures only: never the photos' faces or JSON.

    .venv/bin/python bench/faces.py [--photos DIR] [--rounds 3] [--large]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from ml import weights  # noqa: E402
from ml.edits import faces, id_photo  # noqa: E402
from ml.models.mtcnn.infer import detect_faces  # noqa: E402
from ml.models.u2net import infer as saliency  # noqa: E402
from ml.registry import MODELS  # noqa: E402
from ml.sessions import get_session  # noqa: E402
from studio.settings import from_environment  # noqa: E402
from tests.ml.facenet_reference import reference_mtcnn  # noqa: E402

PEOPLE = ("Two_dancers.jpg", "Athlete-Intake.jpg", "lionel-messi-athletes-fashion.jpg",
          "track-runners-hurdles-1280.jpg")
DEFAULT_PHOTOS = ROOT.parent / "shared" / "fixtures" / "photos"
PORTRAIT = ("lionel-messi-athletes-fashion.jpg", (180, 0, 350, 280), 4)
LARGE_SIZE = (6000, 4000)
# Keeps facenet-pytorch's modules (and their torchvision stand-ins) imported while the benchmark runs.
REFERENCE = contextlib.ExitStack()

# VmHWM, not ru_maxrss: Linux carries ru_maxrss over from the parent across fork and exec, and only VmHWM can be
# reset (clear_refs) once the operation's inputs are ready.
PEAK_SCRIPT = r"""
import sys
from pathlib import Path
sys.path.insert(0, sys.argv[1])
def status_mib(field):
    return int(Path("/proc/self/status").read_text().split(field + ":")[1].split()[0]) / 1024
from bench.faces import prepare
run = prepare(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
# Reset the high-water mark to the present size, so preparing (loading models, detecting) does not hide the peak.
Path("/proc/self/clear_refs").write_text("5")
before = status_mib("VmRSS")
run()
print(before, status_mib("VmHWM"))
"""


def load_portrait(photos: Path) -> Image.Image:
    """Return one person cropped out of a fixture photo and enlarged, as the ID photo tests use."""
    name, box, enlargement = PORTRAIT
    crop = Image.open(photos / name).convert("RGB").crop(box)
    return crop.resize((crop.width * enlargement, crop.height * enlargement), Image.LANCZOS)


def prepare(operation: str, photo_path: Path, model_dir: Path) -> Callable[[], object]:
    """Load what an operation needs (models, photo, its faces) and return a call that runs only the operation."""
    mtcnn = get_session("mtcnn", model_dir)
    photo = load_portrait(photo_path.parent) if operation.startswith("id_photo") else \
        Image.open(photo_path).convert("RGB")
    if operation == "large":
        photo = photo.resize(LARGE_SIZE, Image.BICUBIC)
    if operation in ("detect", "large"):
        return lambda: detect_faces(photo, mtcnn)
    if operation in ("reference", "reference_large"):
        if operation == "reference_large":
            photo = photo.resize(LARGE_SIZE, Image.BICUBIC)
        sources = weights.sources_dir(model_dir, MODELS["mtcnn"].source)
        detector = REFERENCE.enter_context(reference_mtcnn(sources))(keep_all=True)
        return lambda: detector.detect(photo, landmarks=True)
    found = detect_faces(photo, mtcnn)
    if operation == "preview":
        return lambda: faces.draw_faces(photo, found)
    if operation in ("blur", "pixelate"):
        return lambda: faces.anonymize(photo, found, method=operation, strength=60)
    if operation == "beautify":
        return lambda: faces.beautify(photo, found, strength=50)
    u2netp = get_session("u2netp", model_dir)
    if operation == "id_photo_mask":
        return lambda: saliency.predict_mask(photo, u2netp)
    mask = saliency.predict_mask(photo, u2netp)
    face = id_photo.choose_single_face(found)
    return lambda: id_photo.id_photo(photo, face, mask, dpi=300)


def median_ms(runs: list[Callable[[], object]], rounds: int) -> float:
    """Return the median over rounds of the mean milliseconds per call across the runs."""
    timings = []
    for _ in range(rounds):
        started = time.perf_counter()
        for run in runs:
            run()
        timings.append((time.perf_counter() - started) * 1000 / len(runs))
    return statistics.median(timings)


def detection_side_by_side(photos: list[Path], model_dir: Path, rounds: int) -> tuple[float, float]:
    """Time our detection and facenet-pytorch's in alternating rounds; return both medians in ms per photo."""
    ours = [prepare("detect", photo, model_dir) for photo in photos]
    theirs = [prepare("reference", photo, model_dir) for photo in photos]
    for run in ours + theirs:  # warm-up
        run()
    ours_rounds, their_rounds = [], []
    for _ in range(rounds):
        ours_rounds.append(median_ms(ours, 1))
        their_rounds.append(median_ms(theirs, 1))
    return statistics.median(ours_rounds), statistics.median(their_rounds)


def peak_mib(operation: str, photo: Path, model_dir: Path) -> tuple[float, float]:
    """Run one operation in a fresh process; return its high-water RSS before and after the operation (MiB)."""
    output = subprocess.run([sys.executable, "-c", PEAK_SCRIPT, str(ROOT), operation, str(photo), str(model_dir)],
                            capture_output=True, text=True, check=True).stdout.split()
    before, after = (float(value) for value in output[-2:])
    return before, after


def measure_times(photos: list[Path], model_dir: Path, rounds: int,
                  large: bool) -> list[tuple[str, float, float | None]]:
    """Return (operation, our ms per photo, facenet-pytorch's ms or None) for every operation."""
    ours, theirs = detection_side_by_side(photos, model_dir, rounds)
    rows: list[tuple[str, float, float | None]] = [("detect (MTCNN)", ours, theirs)]
    for operation in ("preview", "blur", "pixelate", "beautify"):
        runs = [prepare(operation, photo, model_dir) for photo in photos]
        runs[0]()
        rows.append((operation, median_ms(runs, rounds), None))
    for operation, title in (("id_photo_mask", "id_photo: U2NetP mask"), ("id_photo", "id_photo: layout")):
        run = prepare(operation, photos[0], model_dir)
        run()
        rows.append((title, median_ms([run], rounds), None))
    if large:
        ours_large = prepare("large", photos[1], model_dir)
        theirs_large = prepare("reference_large", photos[1], model_dir)
        rows.append((f"detect {LARGE_SIZE[0]}x{LARGE_SIZE[1]} (one run)", median_ms([ours_large], 1),
                     median_ms([theirs_large], 1)))
    return rows


def main() -> int:
    """Run the benchmark and print the figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--large", action="store_true", help=f"also detect on a {LARGE_SIZE[0]}x{LARGE_SIZE[1]} photo")
    arguments = parser.parse_args()
    model_dir = Path(from_environment()["STUDIO_MODEL_DIR"])
    photos = [arguments.photos / name for name in PEOPLE]
    print(f"{len(photos)} photos of people, {arguments.rounds} rounds, {os.cpu_count()} cores, "
          f"{__import__('torch').get_num_threads()} torch threads", flush=True)

    with REFERENCE:
        rows = measure_times(photos, model_dir, arguments.rounds, arguments.large)
    print(f"{'ms per photo':<30}{'ours':>10}{'facenet-pytorch':>18}{'ratio':>9}")
    for name, ours_ms, their_ms in rows:
        reference = f"{their_ms:>18.1f}{their_ms / ours_ms:>8.2f}x" if their_ms else ""
        print(f"{name:<30}{ours_ms:>10.1f}{reference}")

    operations = ["detect", "reference", "preview", "blur", "pixelate", "beautify", "id_photo"]
    if arguments.large:
        operations += ["large", "reference_large"]
    print(f"\n{'peak RSS (MiB, fresh process)':<30}{'loaded':>10}{'peak':>10}{'operation':>11}")
    peaks = {}
    for operation in operations:
        before, after = peak_mib(operation, photos[1], model_dir)
        peaks[operation] = round(after - before)
        print(f"{operation:<30}{before:>10.0f}{after:>10.0f}{after - before:>11.0f}")
    print(json.dumps({"ms_per_photo": {name: [round(ms, 1), their_ms and round(their_ms, 1)]
                                       for name, ms, their_ms in rows}, "peak_mib": peaks}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
