"""Memory grows with a photo's pixels, never with its longest side: every operation on a long, thin photo (within
STUDIO_MAX_PIXELS) peaks at about what it takes for any small photo. Sampling the photo for the subject model used
to copy every sampled row at full width as floating point: a 200000x5 photo took 2 GB more."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
# What a run may add to a worker's peak on these photos: the models' working memory (a U2Net pass at 320x320 and
# the like) and the photo's own pixels, far below the gigabytes the full-width rows took.
BOUND_MIB = 400
# Face detection and object detection draw a JPEG preview of the photo's size: 65,000 pixels is as long as a JPEG
# may be. The others are 200000x5 (a million pixels); an upscale's network is slow on so many, so it gets fewer.
CASES = [
    ["remove_background", 200_000, 5, {"format": "png"}],
    ["mask_stats", 200_000, 5, {}],
    ["stylize", 200_000, 5, {"format": "png", "apply_to": "background"}],
    ["smart_crop", 200_000, 5, {"format": "png"}],
    ["faces", 65_000, 15, {}],
    ["detect", 65_000, 15, {}],
    ["anonymize", 200_000, 5, {"format": "png"}],
    ["beautify", 200_000, 5, {"format": "png"}],
    ["id_photo", 200_000, 5, {}],
    ["upscale", 8_000, 2, {"remove_background": "true"}],
]


@pytest.fixture(scope="module")
def measured(model_dir) -> dict[str, dict]:
    """Return each operation's peak over its small-photo run, measured in one fresh interpreter."""
    finished = subprocess.run([sys.executable, "-m", "tests.support.peak_memory", json.dumps(CASES)], cwd=ROOT,
                              capture_output=True, text=True, check=True)
    results = [json.loads(line) for line in finished.stdout.splitlines() if line.startswith("{")]
    return {result["operation"]: result for result in results}


@pytest.mark.parametrize("name", [case[0] for case in CASES])
def test_a_thin_photo_costs_its_pixels_not_its_width(measured, name):
    result = measured[name]
    # No face fits in 5 rows: id_photo says so, as a FAILED task would.
    assert result["ended"].startswith("completed") or "No face was found" in result["ended"], result
    assert result["added_mib"] < BOUND_MIB, result
