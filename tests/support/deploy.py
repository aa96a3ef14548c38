"""Helpers for the deployment tests: an app on a fresh SQLite database, the metrics token, the environment variables
the code reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from botocore.credentials import EnvProvider
from botocore.session import Session
from flask import Flask

from studio import create_app, metrics, settings
from studio.extensions import db
from tests.support.services import TEST_REDIS_URL

ROOT = settings.PROJECT_ROOT
TOKEN = "metrics-token-for-tests"
AUTHORIZED = {"Authorization": f"Bearer {TOKEN}"}
# os.environ.get("X"), environ.get("X"), os.getenv("X"), environ["X"], _int(environ, "X"), _bool(environ, "X")
ENVIRONMENT_READ = re.compile(
    r"""(?:environ\.get|getenv|_int|_bool|_choice|_int_list|_name_list|_json_object)"""
    r"""\(\s*(?:environ,\s*)?["']([A-Z][A-Z0-9_]*)["']"""
    r"""|environ\[["']([A-Z][A-Z0-9_]*)["']\]"""
)


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


def names_the_app_reads() -> set[str]:
    """Return every environment variable the app's Python code reads, plus the ones boto3 reads."""
    sources = [ROOT / "wsgi.py", ROOT / "rq_worker.py"]
    for package in ("studio", "jobs", "ml", "processes"):
        sources.extend((ROOT / package).rglob("*.py"))
    names = set()
    for source in sources:
        if source.is_file():
            for match in ENVIRONMENT_READ.finditer(source.read_text()):
                names.add(match.group(1) or match.group(2))
    session = Session()
    names.update(env for _, env, *_ in session.session_var_map.values() if isinstance(env, str))
    names.update({EnvProvider.ACCESS_KEY, EnvProvider.SECRET_KEY, *EnvProvider.TOKENS})
    return names


def record_one_of_each() -> None:
    """Call every recording function the job and upload code uses once."""
    metrics.task_created("remove_background", "u2netp")
    metrics.task_finished("remove_background", "u2netp", "completed", 1.5)
    metrics.inference_seconds("remove_background", "u2netp", 0.8)
    metrics.job_retried("remove_background")
    metrics.webhook_delivery("delivered")
    metrics.storage_error("save")
    metrics.upload_refused("too_large")
