"""The processing job run by a real RQ worker: results, idempotence, permanent and transient failures."""

from __future__ import annotations

import io
import re
import time
from pathlib import Path

import pytest
from PIL import Image
from redis import Redis
from rq import get_current_job
from rq.job import Job
from rq.registry import FailedJobRegistry
from sqlalchemy import create_engine, text, update

from jobs import process_image as job_module
from jobs.progress import PROGRESS_INTERVAL_SECONDS
from ml.runner import EncodedOutput
from studio.extensions import db
from studio.models import Task
from studio.storage import get_storage
from tests.support.studio import load_task, run_worker, upload

pytestmark = pytest.mark.integration


def _png_bytes(size: tuple[int, int] = (4, 3)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, (0, 0, 0, 0)).save(buffer, "PNG")
    return buffer.getvalue()


def _result_files(app) -> list[Path]:
    root = Path(app.config["STUDIO_STORAGE_DIR"]) / "results"
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def _fake_result() -> list[EncodedOutput]:
    return [EncodedOutput("result", _png_bytes(), "image/png", ".png")]


def _update(app, task_id: str, **fields) -> None:
    with app.app_context():
        task = db.session.get(Task, task_id)
        for name, value in fields.items():
            setattr(task, name, value)
        db.session.commit()


def _failed_job_ids(app) -> list[str]:
    return FailedJobRegistry(app.config["STUDIO_QUEUE"],
                             connection=Redis.from_url(app.config["REDIS_URL"])).get_job_ids()


@pytest.mark.slow
def test_worker_removes_the_background_of_a_real_photo(app, client, headers, user, photo_bytes, model_ready):
    data = photo_bytes("horse.jpg")
    task_id = upload(client, headers, data, filename="horse.jpg").get_json()["id"]
    run_worker(app)
    task = load_task(app, task_id)
    assert (task.status, task.progress, task.attempts, task.error) == ("COMPLETED", 100, 1, None)
    assert task.outputs["result"]["key"] == f"results/{user.id}/{task_id}.png"
    assert task.started_at and task.finished_at and task.heartbeat_at
    body = client.get(f"/api/v1/tasks/{task_id}", headers=headers).get_json()
    assert body["result_url"] == f"http://studio.test/api/v1/tasks/{task_id}/result"
    response = client.get(body["result_url"], headers=headers)
    assert response.status_code == 200 and response.mimetype == "image/png"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Content-Disposition"] == "inline; filename=horse.png"
    cutout = Image.open(io.BytesIO(response.data))
    assert cutout.mode == "RGBA" and cutout.size == Image.open(io.BytesIO(data)).size
    assert task.output_pixels == cutout.width * cutout.height  # what usage counts as megapixels out
    alpha = cutout.getchannel("A").getextrema()
    assert alpha == (0, 255)  # a transparent background around an opaque subject
    download = client.get(f"{body['result_url']}?download=1", headers=headers)
    assert download.headers["Content-Disposition"] == "attachment; filename=horse.png"


def test_a_size_preset_through_the_api_gives_a_smaller_result(app, client, headers, photo_bytes, model_ready):
    data = photo_bytes("Two_dancers.jpg")
    width, height = Image.open(io.BytesIO(data)).size
    assert width * height > 250_000
    response = upload(client, headers, data, filename="Two_dancers.jpg", size="preview", format="webp")
    assert response.status_code == 202 and response.get_json()["options"]["size"] == "preview"
    run_worker(app)
    task_id = response.get_json()["id"]
    result = Image.open(io.BytesIO(client.get(f"/api/v1/tasks/{task_id}/result", headers=headers).data))
    assert result.format == "WEBP" and 0.99 * 250_000 < result.width * result.height <= 250_000
    assert abs(result.width / result.height - width / height) < 0.01


def test_progress_is_kept_on_the_tasks_row_alone_while_running(app, client, headers, photo_bytes, monkeypatch):
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    seen = {}

    def fake_pipeline(operation, data, options, *, model_dir, limits, attachments, progress, png_compress_level):
        time.sleep(PROGRESS_INTERVAL_SECONDS)  # the job's own first report was written just before
        progress(40, "thinking")
        job = Job.fetch(get_current_job().id, connection=Redis.from_url(app.config["REDIS_URL"]))
        seen["meta"] = job.meta  # the row is the one record: nothing copies it into the job
        engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        with engine.connect() as connection:
            seen["row"] = connection.execute(text("SELECT status, progress, stage FROM tasks WHERE id = :id"),
                                             {"id": task_id}).one()
        engine.dispose()
        return _fake_result()

    monkeypatch.setattr(job_module, "process", fake_pipeline)
    run_worker(app)
    assert "progress" not in seen.pop("meta")
    assert seen == {"row": ("PROCESSING", 40, "thinking")}
    assert load_task(app, task_id).progress == 100


def test_progress_reaches_the_database_from_the_jobs_first_report_and_a_held_back_one_is_not_lost(
        app, client, headers, photo_bytes, monkeypatch):
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    rows = []

    def read_row() -> tuple:
        engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        with engine.connect() as connection:
            row = tuple(connection.execute(text("SELECT progress, stage FROM tasks WHERE id = :id"),
                                           {"id": task_id}).one())
        engine.dispose()
        return row

    def fake_pipeline(operation, data, options, *, model_dir, limits, attachments, progress, png_compress_level):
        rows.append(read_row())  # the job's first report, written at once: it cleaned the photo
        progress(10, "tile 1 of 1")  # too soon after it: held back, then a long silence (one tile)
        rows.append(read_row())
        deadline = time.monotonic() + 10
        while read_row() == rows[-1] and time.monotonic() < deadline:
            time.sleep(0.05)
        rows.append(read_row())  # written by the reporter's thread without another report
        return _fake_result()

    monkeypatch.setattr(job_module, "process", fake_pipeline)
    run_worker(app)
    assert rows == [(0, "cleaning the photo"), (0, "cleaning the photo"), (10, "tile 1 of 1")]
    assert load_task(app, task_id).progress == 100


def test_rerunning_the_job_overwrites_the_same_result(app, client, headers, photo_bytes, monkeypatch):
    monkeypatch.setattr(job_module, "process", lambda *args, **kwargs: _fake_result())
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    run_worker(app)
    first = load_task(app, task_id)
    # As if the worker died after storing the result but before recording it.
    _update(app, task_id, status="PROCESSING", progress=50)
    job_module.process_task(task_id)
    second = load_task(app, task_id)
    assert (second.status, second.attempts, second.outputs) == ("COMPLETED", 2, first.outputs)
    assert [path.name for path in _result_files(app)] == [f"{task_id}.png"]
    # A job for a finished task changes nothing.
    job_module.process_task(task_id)
    assert load_task(app, task_id).attempts == 2


@pytest.mark.slow
def test_undecodable_photo_fails_at_once_without_retry(app, client, headers, photo_bytes, model_ready):
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    task = load_task(app, task_id)
    with app.app_context():
        get_storage().put(task.input_key, photo_bytes("boat.jpg")[:2000], "image/jpeg")  # truncated
        # A stored clean copy, which the operation's decode reads (an upload the job cleans first:
        # test_refused_uploads.py::test_a_truncated_photo_fails_its_task_with_a_reason_and_is_deleted).
        db.session.execute(update(Task).where(Task.id == task_id).values(inputs_clean=True))
        db.session.commit()
    run_worker(app)
    task = load_task(app, task_id)
    assert (task.status, task.attempts) == ("FAILED", 1)
    assert task.error.startswith("The photo could not be read")
    assert _failed_job_ids(app) == []  # RQ saw no exception, so it scheduled no retry


@pytest.mark.parametrize("breakage, message", [
    ("missing_input", "no longer in storage"),
    ("bad_options", "options are not valid"),
])
def test_permanent_failures_fail_at_once_without_retry(app, client, headers, photo_bytes, breakage, message):
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    task = load_task(app, task_id)
    if breakage == "missing_input":
        with app.app_context():
            get_storage().delete(task.input_key)
    else:
        _update(app, task_id, options={**task.options, "format": "gif"})
    run_worker(app)
    task = load_task(app, task_id)
    assert (task.status, task.attempts) == ("FAILED", 1)
    assert message in task.error
    assert _failed_job_ids(app) == []


def test_transient_failure_is_retried_then_failed_with_a_reason(app, client, headers, photo_bytes, monkeypatch):
    calls = []

    def broken_pipeline(*args, **kwargs):
        calls.append(1)
        raise RuntimeError("the model server hiccuped")

    monkeypatch.setattr(job_module, "process", broken_pipeline)
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    run_worker(app)
    retries = app.config["STUDIO_JOB_RETRIES"]
    task = load_task(app, task_id)
    assert len(calls) == retries + 1
    assert (task.status, task.attempts) == ("FAILED", retries + 1)
    assert re.fullmatch(rf"Processing failed after {retries + 1} attempts; "
                        r"the error was logged as error-[0-9a-f]{8}\.", task.error)
    assert "hiccuped" not in task.error
    assert _failed_job_ids(app) == [task_id]


def test_a_run_without_its_main_output_stores_nothing_and_fails(app, client, headers, photo_bytes, monkeypatch):
    monkeypatch.setattr(job_module, "process", lambda *args, **kwargs: [
        EncodedOutput("preview", _png_bytes(), "image/png", ".png")])
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    run_worker(app)
    task = load_task(app, task_id)
    assert (task.status, task.outputs) == ("FAILED", {})
    assert _result_files(app) == []


def test_a_retry_that_succeeds_completes_the_task(app, client, headers, photo_bytes, monkeypatch):
    def flaky_pipeline(*args, **kwargs):
        if not flaky_pipeline.failed:
            flaky_pipeline.failed = True
            raise ConnectionError("storage timed out")
        return _fake_result()

    flaky_pipeline.failed = False
    monkeypatch.setattr(job_module, "process", flaky_pipeline)
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    run_worker(app)
    task = load_task(app, task_id)
    # The failure callback ran after the first attempt but left the task alone: a retry was still due.
    assert (task.status, task.attempts, task.error) == ("COMPLETED", 2, None)


def test_job_for_a_deleted_task_is_a_no_op(app, client, headers, photo_bytes, monkeypatch):
    monkeypatch.setattr(job_module, "process", lambda *args, **kwargs: pytest.fail("must not run"))
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    assert client.delete(f"/api/v1/tasks/{task_id}", headers=headers).status_code == 204
    run_worker(app)
    assert load_task(app, task_id) is None
    assert _failed_job_ids(app) == [] and _result_files(app) == []


def test_task_deleted_while_processing_leaves_no_result_behind(app, client, headers, photo_bytes, monkeypatch):
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]

    def pipeline_racing_a_delete(*args, **kwargs):
        engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM tasks WHERE id = :id"), {"id": task_id})
        engine.dispose()
        return _fake_result()

    monkeypatch.setattr(job_module, "process", pipeline_racing_a_delete)
    run_worker(app)
    assert load_task(app, task_id) is None
    assert _failed_job_ids(app) == [] and _result_files(app) == []
