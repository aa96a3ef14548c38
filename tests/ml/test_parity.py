"""Quality: our U2NetP masks reproduce the U-2-Net authors' published U2NetP outputs."""

from __future__ import annotations

import statistics

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from studio import create_app


@pytest.mark.slow
def test_masks_match_the_authors_reference(fixtures_dir, model_dir, tmp_path):
    references = sorted((fixtures_dir / "u2netp_reference").glob("*.png"))
    assert len(references) == 8
    photos = [next((fixtures_dir / "photos").glob(reference.stem + ".*")) for reference in references]
    app = create_app({"STUDIO_MODEL_DIR": str(model_dir), "TESTING": True})
    result = CliRunner().invoke(app.cli, ["studio", "remove-bg", "--model", "u2netp", "--output", "mask",
                                          "--out", str(tmp_path), *map(str, photos)])
    assert result.exit_code == 0, result.output
    errors, overlaps = [], []
    for reference, photo in zip(references, photos):
        ours_image = Image.open(tmp_path / f"{reference.stem}.png")
        assert ours_image.size == Image.open(photo).size
        ours = np.asarray(ours_image.convert("L"), dtype=np.float32) / 255
        theirs = np.asarray(Image.open(reference).convert("L"), dtype=np.float32) / 255
        errors.append(float(np.abs(ours - theirs).mean()))
        union = ((ours > 0.5) | (theirs > 0.5)).sum()
        overlaps.append(float(((ours > 0.5) & (theirs > 0.5)).sum() / max(union, 1)))
    assert statistics.mean(errors) <= 0.008, errors
    assert min(overlaps) >= 0.85, overlaps
    assert statistics.median(overlaps) >= 0.98, overlaps
