"""Alpha matting and foreground colours at a cutout's edge (ml/edits/matting.py), on the fixture photos.

No model runs here: each fixture photo is put, with the U-2-Net authors' own mask as its true alpha, on a plain green
background, so the true alpha and the true colours of the edge are known. The coarse mask a model gives is that alpha
blurred. Matting must bring the coarse alpha closer to the truth inside the band and leave the sure regions alone;
foreground estimation must bring the edge's colours on a new background closer to the truth than the plain cutout.
"""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image, ImageFilter
from scipy.ndimage import distance_transform_edt

from ml.edits import matting
from ml.edits.compose import compose
from ml.operations import get_operation
from tests.support.services import FIXTURES_DIR, require

PHOTOS = {"horse": "horse.jpg", "hockey": "hockey.png", "vangogh": "vangogh.jpeg", "rifle2": "rifle2.jpeg"}
GREEN = np.array([40.0, 200.0, 60.0])
DARK = (20, 20, 30)


def synthetic(name: str) -> tuple[Image.Image, np.ndarray, np.ndarray, Image.Image]:
    """Return the photo on green, its true alpha (0-1), its true colours and a model-like coarse mask."""
    photos = FIXTURES_DIR / "photos"
    require((photos / PHOTOS[name]).is_file(), f"fixture photos not found in {photos}")
    photo = np.asarray(Image.open(photos / PHOTOS[name]).convert("RGB"), dtype=float)
    reference = Image.open(FIXTURES_DIR / "u2net_reference" / f"{name}.png").convert("L")
    reference = reference.resize((photo.shape[1], photo.shape[0]))
    alpha = np.asarray(reference, dtype=float) / 255
    # The subject's colour reaches past its sure region as the nearest sure pixel's: a known truth for the edge.
    _, (rows, columns) = distance_transform_edt(alpha <= 0.98, return_indices=True)
    colours = photo[rows, columns]
    composite = alpha[..., None] * colours + (1 - alpha[..., None]) * GREEN
    image = Image.fromarray(np.clip(composite + 0.5, 0, 255).astype(np.uint8))
    return image, alpha, colours, reference.filter(ImageFilter.GaussianBlur(3))


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_matting_re_solves_the_band_and_leaves_the_sure_regions_alone(name):
    image, alpha, _, coarse = synthetic(name)
    matted = np.asarray(matting.matte(image, coarse), dtype=float) / 255
    trimap = matting.trimap(coarse)
    assert (matted[trimap.foreground] == 1).all() and (matted[trimap.background] == 0).all()
    band, before = trimap.unknown, np.asarray(coarse, dtype=float) / 255
    changed = (np.abs(matted - before) > 2 / 255)[band].mean()
    error_before, error_after = np.abs(before - alpha)[band].mean(), np.abs(matted - alpha)[band].mean()
    assert changed > 0.3, f"only {changed:.0%} of the band changed"
    assert error_after < 0.6 * error_before, (error_before, error_after)


@pytest.mark.parametrize("name", sorted(PHOTOS))
def test_foreground_estimation_takes_the_old_background_out_of_the_edge(name):
    image, alpha, colours, coarse = synthetic(name)
    operation = get_operation("remove_background")
    truth = alpha[..., None] * colours + (1 - alpha[..., None]) * np.array(DARK, dtype=float)
    edge = (alpha > 0.02) & (alpha < 0.98)

    def error(**options: object) -> float:
        options = operation.parse({"bg_color": "#14141e", "model": "u2netp", **options})
        result = np.asarray(compose(image, Image.fromarray((alpha * 255 + 0.5).astype(np.uint8)), options), float)
        return float(np.abs(result - truth)[edge].mean())

    plain, estimated = error(estimate_foreground=False), error()
    assert estimated < 0.8 * plain, (plain, estimated)


def test_matting_through_compose_changes_the_edge_only():
    image, _, _, coarse = synthetic("horse")
    operation = get_operation("remove_background")
    plain = np.asarray(compose(image, coarse, operation.parse({"estimate_foreground": False})))[..., 3]
    matted = np.asarray(compose(image, coarse, operation.parse({"alpha_matting": True,
                                                                "estimate_foreground": False})))[..., 3]
    trimap = matting.trimap(coarse)
    inner = trimap.foreground & (np.asarray(coarse) == 255)
    assert (matted[inner] == plain[inner]).all()
    assert (matted != plain)[trimap.unknown].mean() > 0.3


def test_a_large_photo_is_matted_at_the_working_size(monkeypatch):
    import pymatting

    seen = []

    def solve(image: np.ndarray, trimap: np.ndarray) -> np.ndarray:
        seen.append(image.shape[0] * image.shape[1])
        return trimap

    monkeypatch.setattr(pymatting, "estimate_alpha_cf", solve)
    mask = Image.new("L", (6000, 4000), 0)
    mask.paste(255, (1000, 1000, 5000, 3000))
    mask = mask.filter(ImageFilter.GaussianBlur(20))
    result = matting.matte(Image.new("RGB", mask.size, (120, 60, 30)), mask)
    assert result.size == mask.size
    assert seen and seen[0] <= matting.WORKING_PIXELS * 1.01
