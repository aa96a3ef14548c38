"""An app for the deployment tests: a fresh SQLite database, local storage and the test Redis."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Flask

from studio import create_app
from studio.extensions import db
from tests.support.services import TEST_REDIS_URL


def make_app(tmp_path: Path, create_schema: bool = True, **overrides: Any) -> Flask:
    """Create an app on a fresh SQLite database in tmp_path, local storage, and the test Redis."""
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret",
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'studio.sqlite3'}",
        "REDIS_URL": TEST_REDIS_URL,
        "STUDIO_STORAGE_DIR": str(tmp_path / "storage"),
        # Every upload runs its job, as these tests were written for: tests/tasks/test_duplicates.py turns reuse on.
        "STUDIO_REUSE_DUPLICATES": False,
        "STUDIO_S3_BUCKET": None,
        "RATELIMIT_STORAGE_URI": "memory://",
    }
    config.update(overrides)
    app = create_app(config)
    if create_schema:
        with app.app_context():
            db.create_all()
    return app
