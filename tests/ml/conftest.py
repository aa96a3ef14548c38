"""Fixtures for the model and pipeline tests."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from PIL import Image

from ml.registry import MODELS
from tests.conftest import MODEL_DIR
from tests.conftest import require


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """Return the model directory holding the installed U2NetP weights (`make install` puts them there)."""
    directory = MODEL_DIR
    require(MODELS["u2netp"].weights_path(directory).is_file(), f"U2NetP weights not installed in {directory}")
    return directory


def encoded(image: Image.Image, image_format: str = "PNG", **params) -> bytes:
    """Return an image encoded in memory."""
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()
