"""Shared test settings: where the real services and the fixtures are, and whether they may be skipped."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# In CI every test that needs PostgreSQL, Redis, S3, the browser or the fixtures must run, never skip.
IN_CI = os.environ.get("CI", "").lower() == "true"
TEST_DATABASE_URL = os.environ.get("STUDIO_TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test")
TEST_REDIS_URL = os.environ.get("STUDIO_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
FIXTURES_DIR = Path(
    os.environ.get("STUDIO_FIXTURES_DIR") or Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"
)


def require(condition: bool, reason: str) -> None:
    """Skip when a service is missing on a laptop; fail in CI, where everything must run."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"required in CI: {reason}")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    """Return the shared fixtures folder (real photos and the authors' reference masks)."""
    require((FIXTURES_DIR / "photos").is_dir(), f"fixtures not found in {FIXTURES_DIR}")
    return FIXTURES_DIR


@pytest.fixture(scope="session")
def photos_dir(fixtures_dir: Path) -> Path:
    """Return the folder of real photos."""
    return fixtures_dir / "photos"
