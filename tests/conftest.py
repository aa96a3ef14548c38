"""Fixtures every folder may use: the fixture photos and the shared fixture plugins.

Helpers (factories, servers, clients, photo makers) live in `tests.support`; a conftest.py holds only fixtures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.services import FIXTURES_DIR, require

# Fixtures used in more than one folder: the app on the real services, and real server and worker processes.
pytest_plugins = ["tests.plugins.services", "tests.plugins.processes"]


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Return the shared fixtures folder (real photos and the authors' reference masks)."""
    require((FIXTURES_DIR / "photos").is_dir(), f"fixtures not found in {FIXTURES_DIR}")
    return FIXTURES_DIR


@pytest.fixture(scope="session")
def photos_dir(fixtures_dir: Path) -> Path:
    """Return the folder of real photos."""
    return fixtures_dir / "photos"
