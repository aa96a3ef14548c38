"""Fixtures every folder may use (the fixture photos, the shared fixture plugins) and the markers of a test's kind.

Helpers (factories, servers, clients, photo makers) live in `tests.support`; a conftest.py holds only fixtures.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.services import FIXTURES_DIR, require

# A test that uses one of these fixtures needs a real service, so it is marked `integration`; one that drives
# Chromium is marked `browser`. Folders group tests by subject, markers say what kind of test each one is.
INTEGRATION_FIXTURES = frozenset({
    "database_url", "migrated", "postgres_url", "redis_url", "redis_connection", "s3_endpoint", "postgres",
    "redis_server", "live_server",
})
BROWSER_FIXTURES = frozenset({"browser", "live_server"})
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


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test with the kind its fixtures give it (`integration`, `browser`), whatever its folder."""
    for item in items:
        needs = set(getattr(item, "fixturenames", ()))
        if needs & INTEGRATION_FIXTURES:
            item.add_marker(pytest.mark.integration)
        if needs & BROWSER_FIXTURES:
            item.add_marker(pytest.mark.browser)
