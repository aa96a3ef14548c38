"""The migrations build the schema the models describe, and go down and up again cleanly."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timezone

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from flask_migrate import downgrade, upgrade
from sqlalchemy import MetaData, Table, inspect, select, text

from studio import create_app
from studio.extensions import db
from studio.models import DailyUsage, Task, User

pytestmark = pytest.mark.integration


def _differences(app) -> list:
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True,
                                                               "compare_server_default": True})
        return compare_metadata(context, db.metadata)


def test_migrated_schema_matches_the_models(app):
    assert _differences(app) == []


def test_downgrade_to_base_and_upgrade_again(app):
    with app.app_context():
        downgrade(revision="base")
        assert set(inspect(db.engine).get_table_names()) == {"alembic_version"}
        upgrade()
        assert {"users", "api_tokens", "tasks"} <= set(inspect(db.engine).get_table_names())
    assert _differences(app) == []


# The revision before a task's outputs became one mapping, and what tasks held then.
BEFORE_OUTPUTS_MAPPING = "b3f1d7c2e9a4"
PREVIEW = {"key": "results/1/b-preview.jpg", "media_type": "image/jpeg", "size": 30}
OLD_OUTPUTS = {
    "with-extras": {"result_key": "results/1/b.json", "result_content_type": "application/json",
                    "result_size": 200, "extras": {"preview": PREVIEW}, "extras_size": 30},
    "result-only": {"result_key": "results/1/c.png", "result_content_type": "image/png", "result_size": 1000,
                    "extras": {}, "extras_size": 0},
    "pending": {"result_key": None, "result_content_type": None, "result_size": 0, "extras": {}, "extras_size": 0},
}


@pytest.fixture(params=["postgresql", "sqlite"])
def any_database_app(request, tmp_path):
    """Return an app on the migrated test PostgreSQL, or on a SQLite file built by the migrations."""
    if request.param == "postgresql":
        yield request.getfixturevalue("app")
        return
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/m.db",
                      "STUDIO_STORAGE_DIR": str(tmp_path / "storage")})
    with app.app_context():
        upgrade()
    yield app
    with app.app_context():
        db.engine.dispose()


def _insert_old_tasks(connection) -> None:
    """Insert tasks as the revision before the outputs mapping stored them."""
    tasks = Table("tasks", MetaData(), autoload_with=connection)
    now = datetime.now(timezone.utc)
    for name, outputs in OLD_OUTPUTS.items():
        status = "PENDING" if name == "pending" else "COMPLETED"
        connection.execute(tasks.insert().values(
            id=str(uuid.uuid4()), user_id=1, operation="mask_stats", status=status, progress=0, model="u2netp",
            options={}, original_filename=f"{name}.jpg", input_key=f"inputs/1/{name}.jpg",
            input_content_type="image/jpeg", input_size=10, input_width=4, input_height=3, attachments={},
            attachments_size=0, output_pixels=0, attempts=1, created_at=now, updated_at=now, **outputs))


def _old_outputs(connection) -> dict[str, dict]:
    columns = ", ".join(OLD_OUTPUTS["pending"])
    rows = connection.execute(text(f"SELECT original_filename, {columns} FROM tasks")).mappings().all()
    return {row["original_filename"].removesuffix(".jpg"):
            {**{column: row[column] for column in OLD_OUTPUTS["pending"]},
             "extras": json.loads(row["extras"]) if isinstance(row["extras"], str) else row["extras"]}
            for row in rows}


def test_the_outputs_mapping_keeps_every_output_up_and_down_again(any_database_app):
    app = any_database_app
    with app.app_context():
        db.session.add(User(id=1, email="a@example.com", password_hash="x", session_version=1))
        db.session.commit()
        db.session.remove()
        downgrade(revision=BEFORE_OUTPUTS_MAPPING)
        with db.engine.begin() as connection:
            _insert_old_tasks(connection)
        upgrade()

        tasks = {task.original_filename.removesuffix(".jpg"): task for task in db.session.scalars(select(Task))}
        assert list(tasks["with-extras"].outputs.items()) == [
            ("result", {"key": "results/1/b.json", "media_type": "application/json", "size": 200}),
            ("preview", PREVIEW)]
        assert tasks["result-only"].outputs == {"result": {"key": "results/1/c.png", "media_type": "image/png",
                                                           "size": 1000}}
        assert tasks["pending"].outputs == {}
        stored = {name: task.stored_bytes for name, task in tasks.items()}
        assert stored == {"with-extras": 240, "result-only": 1010, "pending": 10}
        assert tasks["with-extras"].stored_keys() == ["inputs/1/with-extras.jpg", "results/1/b.json",
                                                      "results/1/b-preview.jpg"]
        db.session.remove()

        downgrade(revision=BEFORE_OUTPUTS_MAPPING)
        with db.engine.connect() as connection:
            assert _old_outputs(connection) == OLD_OUTPUTS
        upgrade()
        db.session.remove()
    assert _differences(app) == []


# The revision before tasks and usage kept the work of each task; a plan's megapixels counted photo pixels then.
BEFORE_WORK_PIXELS = "f5a2c8d1e7b4"


def _insert_task_and_usage(connection) -> None:
    """Insert a task of a 4000 x 3000 photo and a usage row, as the revision before work pixels stored them."""
    tasks = Table("tasks", MetaData(), autoload_with=connection)
    usage = Table("daily_usage", MetaData(), autoload_with=connection)
    now = datetime.now(timezone.utc)
    connection.execute(tasks.insert().values(
        id=str(uuid.uuid4()), user_id=1, operation="upscale", status="PENDING", progress=0, model="x4", options={},
        original_filename="big.jpg", input_key="inputs/1/big.jpg", input_content_type="image/jpeg", input_size=10,
        input_width=4000, input_height=3000, attachments={}, outputs={}, attempts=0, created_at=now,
        updated_at=now))
    connection.execute(usage.insert().values(
        user_id=1, day=now.date(), operation="upscale", tasks=2, completed_tasks=2, pixels_in=5_000_000_000,
        pixels_out=0, processing_seconds=1.0))


def test_work_pixels_are_backfilled_from_the_photos_up_and_dropped_down(any_database_app):
    app = any_database_app
    with app.app_context():
        db.session.add(User(id=1, email="a@example.com", password_hash="x", session_version=1))
        db.session.commit()
        db.session.remove()
        downgrade(revision=BEFORE_WORK_PIXELS)
        with db.engine.begin() as connection:
            _insert_task_and_usage(connection)
        upgrade()

        task = db.session.scalars(select(Task)).one()
        row = db.session.scalars(select(DailyUsage)).one()
        assert (task.input_width * task.input_height, task.work_pixels) == (12_000_000, 12_000_000)
        assert (row.pixels_in, row.work_pixels) == (5_000_000_000, 5_000_000_000)
        db.session.remove()

        downgrade(revision=BEFORE_WORK_PIXELS)
        columns = inspect(db.engine)
        assert "work_pixels" not in {column["name"] for column in columns.get_columns("tasks")}
        assert "work_pixels" not in {column["name"] for column in columns.get_columns("daily_usage")}
        with db.engine.connect() as connection:
            assert connection.execute(text("SELECT input_width * input_height FROM tasks")).scalar() == 12_000_000
            assert connection.execute(text("SELECT pixels_in FROM daily_usage")).scalar() == 5_000_000_000
        upgrade()
        db.session.remove()
    assert _differences(app) == []
