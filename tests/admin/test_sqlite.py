"""The laptop default is SQLite: the usage upsert and the overview's hour and day buckets work there too."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest

from studio import create_app
from studio.admin import overview
from studio.extensions import db
from studio.models import DailyUsage, Task, User, utcnow
from studio.tasks import lifecycle
from studio.tasks.lifecycle import StoredOutput
from studio.usage import today


@pytest.fixture
def sqlite_app(tmp_path, monkeypatch):
    """Return an app on a fresh SQLite file (the queue is never reached: webhooks are not asked for)."""
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/s.db",
                      "STUDIO_STORAGE_DIR": str(tmp_path / "storage")})
    with app.app_context():
        db.create_all()
        db.session.add(User(id=1, email="a@example.com", password_hash="x", session_version=1))
        db.session.commit()
    yield app
    with app.app_context():
        db.engine.dispose()


def _finish(status: str, took: float = 2.0) -> str:
    task = Task(id=str(uuid.uuid4()), user_id=1, operation="remove_background", model="u2netp", options={},
                input_key="inputs/x.png", input_content_type="image/png", input_width=100, input_height=50)
    lifecycle.created(task)
    lifecycle.started(task.id)
    if status == "COMPLETED":
        output = StoredOutput("results/x.png", "image/png", 10)
        assert lifecycle.completed(task.id, 1, {"result": output}, output_pixels=300)
    else:
        assert lifecycle.failed(task.id, "broken")
    return task.id


def test_usage_adds_up_and_a_retry_takes_the_failure_back_on_sqlite(sqlite_app):
    with sqlite_app.app_context():
        _finish("COMPLETED")
        failed = _finish("FAILED")
        row = db.session.get(DailyUsage, (1, today(), "remove_background"))
        assert (row.tasks, row.completed_tasks, row.pixels_in, row.pixels_out) == (2, 1, 10_000, 300)
        assert lifecycle.retried(failed)
        db.session.refresh(row)
        assert (row.tasks, row.completed_tasks, row.pixels_in) == (1, 1, 5_000)
        assert not lifecycle.retried(failed)  # PENDING now: nothing to retry


def test_the_overview_buckets_and_durations_work_on_sqlite(sqlite_app):
    with sqlite_app.app_context():
        _finish("COMPLETED")
        task_id = _finish("FAILED")
        task = db.session.get(Task, task_id)
        task.created_at = utcnow() - timedelta(days=3)
        db.session.commit()
        charts = overview.activity()
        assert charts["hourly"].total == 1 and charts["daily"].total == 2
        assert charts["daily_operations"] == {"remove_background": {"COMPLETED": 1, "FAILED": 1}}
        [(slowest, seconds)] = overview.slowest()
        assert slowest.status == "COMPLETED" and seconds >= 0
        assert overview.failure_rate()["rate"] == pytest.approx(0.5)


def test_the_sqlite_database_writes_ahead_without_an_fsync_per_commit(sqlite_app, tmp_path):
    # Every connection of the app (web, workers, their heartbeats) gets the pragmas, not just the first one.
    with sqlite_app.app_context():
        for _ in range(2):
            with db.engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
                assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 1  # NORMAL
            db.engine.dispose()
        _finish("COMPLETED")
    assert (tmp_path / "s.db-wal").exists()
