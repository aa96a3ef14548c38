"""Fixtures for the model and pipeline tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from ml.registry import MODELS
from tests.support.services import MODEL_DIR, require


@pytest.fixture(scope="session")
def model_dir() -> Path:
    """Return the model directory holding the installed U2NetP weights (`make install` puts them there)."""
    directory = MODEL_DIR
    require(MODELS["u2netp"].weights_path(directory).is_file(), f"U2NetP weights not installed in {directory}")
    return directory
