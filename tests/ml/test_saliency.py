"""The mask pipeline's resizing: the photo sampled as the authors' reference did (scikit-image 0.14, no anti-alias)."""

from __future__ import annotations

import numpy as np
from PIL import Image

from ml.models.u2net.infer import postprocess, sample_bilinear


def test_samples_are_bilinear_between_the_nearest_pixels():
    pixels = np.random.default_rng(3).integers(0, 256, (8, 6, 3), dtype=np.uint8)
    sampled = sample_bilinear(Image.fromarray(pixels), 4)
    # Half-pixel centres: output row i samples the input halfway between rows 2i and 2i+1 ...
    expected_rows = (pixels[0::2].astype(np.float32) + pixels[1::2]) / 2
    # ... and six columns to four put output column j at (j + 0.5) * 1.5 - 0.5: 0.25, 1.75, 3.25, 4.75.
    columns = (np.arange(4) + 0.5) * 1.5 - 0.5
    left = np.floor(columns).astype(int)
    weight = (columns - left)[None, :, None]
    expected = expected_rows[:, left] * (1 - weight) + expected_rows[:, np.minimum(left + 1, 5)] * weight
    assert np.allclose(sampled * 255, expected, atol=1e-3)


def test_no_anti_alias_filter_a_fine_pattern_survives_downscaling():
    stripes = np.zeros((64, 64, 3), dtype=np.uint8)
    stripes[:, 1::4] = 255  # one bright column in four: the samples land between columns 4j+1 and 4j+2
    sampled = sample_bilinear(Image.fromarray(stripes), 16)
    # An anti-aliased resize would blur the stripes to their mean (a quarter); point sampling keeps half of each.
    assert np.allclose(sampled, 0.5)


def test_a_photo_at_the_input_size_is_unchanged_and_upscaled_edges_fade_to_zero():
    pixels = np.full((4, 4, 3), 200, dtype=np.uint8)
    assert np.allclose(sample_bilinear(Image.fromarray(pixels), 4) * 255, 200)
    doubled = sample_bilinear(Image.fromarray(pixels), 8) * 255
    # The first sample lies a quarter pixel outside the photo, where scikit-image's constant mode reads zero.
    assert np.allclose(doubled[0, 0], 200 * 0.75 * 0.75)
    assert np.allclose(doubled[2:6, 2:6], 200)


def test_rgba_and_grey_photos_are_sampled_as_rgb():
    rgba = Image.new("RGBA", (10, 10), (10, 20, 30, 0))
    assert np.allclose(sample_bilinear(rgba, 5) * 255, [10, 20, 30])
    assert sample_bilinear(Image.new("L", (10, 10), 7), 5).shape == (5, 5, 3)


def test_the_mask_is_min_max_normalised_and_sized_to_the_photo():
    import torch

    logits = torch.linspace(-4, 4, 16).reshape(1, 1, 4, 4)
    mask = postprocess(logits, (8, 6))
    assert mask.mode == "L" and mask.size == (8, 6)
    values = np.asarray(postprocess(logits, (4, 4)))
    assert values.min() == 0 and values.max() == 255
