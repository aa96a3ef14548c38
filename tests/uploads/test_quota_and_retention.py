"""Storage quota per account (STUDIO_USER_QUOTA_BYTES) and the daily retention job (STUDIO_RETENTION_DAYS)."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from redis import Redis
from rq_scheduler import Scheduler
from sqlalchemy import update

from jobs import process_image as job_module
from jobs.retention import purge_expired_tasks
from jobs.scheduled import PERIODIC_JOBS, reconcile_schedule
from ml.runner import EncodedOutput
from studio.extensions import db
from studio.models import Task, utcnow
from studio.queue import get_queue
from studio.storage import get_storage
from studio.tasks.uploads import clean_photo
from tests.support import samples
from tests.support.uploads import Uploader, queued_ids, sign_in, stored_files, task_count
from tests.support.studio import load_task, run_worker, upload
from tests.support.web import csrf_token

pytestmark = pytest.mark.integration

PHOTO = samples.encoded(samples.picture((64, 48)), "PNG")
RESULT_BYTES = 1000


@pytest.fixture
def photo_size(app) -> int:
    """Return the bytes the stored (clean) copy of PHOTO takes."""
    return len(clean_photo(PHOTO, app.config["STUDIO_MAX_PIXELS"]).data)


@pytest.fixture
def fake_model(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the worker's pipeline return a RESULT_BYTES-long result instantly."""
    monkeypatch.setattr(job_module, "process", lambda *args, **kwargs: [EncodedOutput(
        "result", b"\x89PNG" + b"\0" * (RESULT_BYTES - 4), "image/png", ".png")])


def test_default_quota_is_one_gibibyte_and_retention_thirty_days(app):
    assert app.config["STUDIO_USER_QUOTA_BYTES"] == 1024 ** 3
    assert app.config["STUDIO_RETENTION_DAYS"] == 30


@pytest.mark.parametrize("route", ["api", "html"])
def test_upload_over_the_quota_is_413_and_nothing_is_kept(make_app, make_user, make_token, fake_model, route):
    probe = make_app()
    size = len(clean_photo(PHOTO, probe.config["STUDIO_MAX_PIXELS"]).data)
    # Room for two photos and one result, not for a third photo on top.
    app = make_app(STUDIO_USER_QUOTA_BYTES=2 * size + RESULT_BYTES + size // 2)
    user, other = make_user(), make_user()
    client = app.test_client()
    if route == "html":
        sign_in(client, user.email)
    uploader = Uploader(route, client, make_token(user))
    first = uploader.task_id(uploader.send(PHOTO, "one.png"))
    run_worker(app)  # the result counts too
    assert load_task(app, first).outputs["result"]["size"] == RESULT_BYTES
    uploader.task_id(uploader.send(PHOTO, "two.png"))
    files, tasks = stored_files(app), task_count(app)

    refused = uploader.send(PHOTO, "three.png")

    assert refused.status == 413
    if route == "api":
        assert refused.code == "quota_exceeded"
    assert "storage is full" in refused.text and "Delete some tasks" in refused.text
    assert stored_files(app) == files and task_count(app) == tasks and len(queued_ids(app)) == 1
    # The quota is per account: another account still has all of its own.
    assert upload(app.test_client(), make_token(other), PHOTO).status_code == 202
    # Deleting a task frees its space.
    assert app.test_client().delete(f"/api/v1/tasks/{first}", headers=make_token(user)).status_code == 204
    assert uploader.send(PHOTO, "three.png").status in (202, 302)


def test_rerun_over_the_quota_is_413(make_app, make_user, photo_size):
    app = make_app(STUDIO_USER_QUOTA_BYTES=photo_size + photo_size // 2)
    user = make_user()
    browser = app.test_client()
    sign_in(browser, user.email)
    uploader = Uploader("html", browser, {})
    task_id = uploader.task_id(uploader.send(PHOTO, "one.png"))
    form = {"csrf_token": csrf_token(browser, f"/tasks/{task_id}"), "format": "webp"}
    response = browser.post(f"/tasks/{task_id}/rerun", data=form)
    assert response.status_code == 413 and "storage is full" in response.get_data(as_text=True)
    assert task_count(app) == 1 and len(stored_files(app)) == 1


def test_zero_quota_means_no_quota(make_app, make_user, make_token):
    app = make_app(STUDIO_USER_QUOTA_BYTES=0)
    headers = make_token(make_user())
    assert all(upload(app.test_client(), headers, PHOTO).status_code == 202 for _ in range(3))


def _age(app, task_id: str, days: float) -> None:
    with app.app_context():
        db.session.execute(update(Task).where(Task.id == task_id).values(created_at=utcnow() - timedelta(days=days)))
        db.session.commit()


def _files_of(app, task_id: str) -> list[Path]:
    task = load_task(app, task_id)
    root = Path(app.config["STUDIO_STORAGE_DIR"])
    return [root / key for key in task.stored_keys()]


def test_retention_job_run_by_a_worker_deletes_old_tasks_with_their_files(app, client, headers, fake_model):
    ids = [upload(client, headers, PHOTO).get_json()["id"] for _ in range(3)]
    run_worker(app)
    old, older, recent = ids
    files = {task_id: _files_of(app, task_id) for task_id in ids}
    # The photo, the result and the photo's thumbnail (the fake result is no picture to make one of).
    assert all(len(paths) == 3 and all(path.is_file() for path in paths) for paths in files.values())
    _age(app, old, 30.1)
    _age(app, older, 400)
    _age(app, recent, 29.9)

    with app.app_context():
        get_queue().enqueue("jobs.retention.purge_expired_tasks")
    run_worker(app)

    assert load_task(app, old) is None and load_task(app, older) is None
    assert not any(path.exists() for path in files[old] + files[older])
    assert load_task(app, recent) is not None and all(path.is_file() for path in files[recent])


def test_retention_zero_keeps_everything(make_app, make_user, make_token):
    app = make_app(STUDIO_RETENTION_DAYS=0)
    task_id = upload(app.test_client(), make_token(make_user()), PHOTO).get_json()["id"]
    _age(app, task_id, 10_000)
    assert purge_expired_tasks() == 0
    assert load_task(app, task_id) is not None and len(stored_files(app)) == 1


def test_a_task_whose_files_cannot_be_deleted_is_kept_for_the_next_run(app, client, headers, monkeypatch):
    stuck, gone = (upload(client, headers, PHOTO).get_json()["id"] for _ in range(2))
    for task_id in (stuck, gone):
        _age(app, task_id, 31)
    with app.app_context():
        storage = get_storage()
        stuck_key = load_task(app, stuck).input_key
        delete = storage.delete

        def flaky_delete(key: str) -> None:
            if key == stuck_key:
                raise OSError("storage unavailable")
            delete(key)

        monkeypatch.setattr(storage, "delete", flaky_delete)
    assert purge_expired_tasks() == 1
    assert load_task(app, gone) is None and load_task(app, stuck) is not None
    monkeypatch.undo()
    assert purge_expired_tasks() == 1
    assert load_task(app, stuck) is None and stored_files(app) == []


def test_retention_runs_daily_under_a_deterministic_id(redis_url):
    retention = [job for job in PERIODIC_JOBS if job.func == "jobs.retention.purge_expired_tasks"]
    assert [(job.id, job.interval_seconds) for job in retention] == [("periodic-purge-expired-tasks", 86400)]
    connection = Redis.from_url(redis_url)
    connection.flushdb()
    try:
        scheduler = Scheduler(connection=connection)
        reconcile_schedule(scheduler)
        reconcile_schedule(scheduler)
        scheduled = [job for job in scheduler.get_jobs() if job.id == "periodic-purge-expired-tasks"]
        assert len(scheduled) == 1 and scheduled[0].meta["interval"] == 86400
    finally:
        connection.flushdb()
