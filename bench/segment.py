"""What segmentation costs: segment and remove_background with keep, beside our own detect + cutout, per megapixel.

Each run goes through ml.runner.process as the worker runs it (decode, run, encode), warm sessions, median of
--repeat runs per photo. Figures per photo: objects outlined, milliseconds, milliseconds per megapixel of the photo
and per object, and seconds per megapixel of *work* as the declaration counts it (what segment's
SECONDS_PER_MEGAPIXEL estimates). The comparison is our own pipeline without segmentation: detect, then
remove_background on the whole photo (one subject-model run, whatever the number of objects).

    .venv/bin/python bench/segment.py [--photos DIR] [--repeat 3] [--scale 1.0]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from ml.operations import Limits, get_operation  # noqa: E402
from ml.registry import MODELS  # noqa: E402
from ml.runner import process  # noqa: E402
from studio.settings import from_environment  # noqa: E402

DEFAULT_PHOTOS = Path(os.environ.get("STUDIO_FIXTURES_DIR", ROOT.parent / "shared" / "fixtures")) / "photos"
PHOTOS = ("girl.png", "horse.jpg", "Two_dancers.jpg", "hockey.png", "track-runners-hurdles-1280.jpg")
LIMITS = Limits(200_000_000, 200_000_000)


def timed(name: str, photo: bytes, model_dir: Path, repeat: int, **options) -> tuple[float, list]:
    """Return the median milliseconds of repeat runs of an operation, and the last run's outputs."""
    operation = get_operation(name)
    parsed = operation.parse(options, models=tuple(MODELS))
    times, outputs = [], []
    for _ in range(repeat + 1):  # the first run warms the sessions up and is not counted
        started = time.perf_counter()
        outputs = process(operation, photo, parsed, model_dir=model_dir, limits=LIMITS)
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times[1:]), outputs


def scaled(path: Path, scale: float) -> tuple[bytes, tuple[int, int]]:
    """Return the photo as PNG bytes, resized by scale, and its size."""
    image = Image.open(path)
    if scale != 1.0:
        image = image.resize((round(image.width * scale), round(image.height * scale)), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue(), image.size


def main() -> None:
    """Print each photo's figures and the medians over the photos."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--scale", type=float, default=1.0, help="resize the photos first (4.0: about 16x the pixels)")
    arguments = parser.parse_args()
    model_dir = Path(from_environment()["STUDIO_MODEL_DIR"])
    operation = get_operation("segment")
    rows = []
    for name in PHOTOS:
        photo, (width, height) = scaled(arguments.photos / name, arguments.scale)
        megapixels = width * height / 1e6
        segment_ms, outputs = timed("segment", photo, model_dir, arguments.repeat)
        objects = json.loads(outputs[0].data)["count"]
        work = operation.work_pixels(operation.parse({}), width, height) / 1e6
        keep_ms, _ = timed("remove_background", photo, model_dir, arguments.repeat, keep="largest")
        detect_ms, _ = timed("detect", photo, model_dir, arguments.repeat)
        cutout_ms, _ = timed("remove_background", photo, model_dir, arguments.repeat)
        rows.append({"photo": name, "size": f"{width}x{height}", "objects": objects,
                     "segment_ms": round(segment_ms), "segment_ms_per_mp": round(segment_ms / megapixels),
                     "segment_ms_per_object": round(segment_ms / max(objects, 1)),
                     "segment_s_per_mp_of_work": round(segment_ms / 1000 / work, 3),
                     "keep_largest_ms": round(keep_ms), "detect_plus_cutout_ms": round(detect_ms + cutout_ms)})
        print(json.dumps(rows[-1]), flush=True)
    for key in ("segment_ms_per_mp", "segment_ms_per_object", "segment_s_per_mp_of_work"):
        print(f"median {key}: {statistics.median(row[key] for row in rows)}")


if __name__ == "__main__":
    main()
