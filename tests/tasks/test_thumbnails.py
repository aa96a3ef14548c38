"""Thumbnails: made by the worker when a task completes (or by a job of their own for older tasks), served to
their owner only, deleted with the task."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from jobs import process_image as job_module
from jobs import context as job_context
from jobs import thumbnails as thumbnail_jobs
from ml.runner import EncodedOutput
from studio.extensions import db
from studio.models import Task
from studio.storage import get_storage
from tests.support.studio import load_task, run_worker, upload

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def jobs_in_this_app(app):
    """Run the backfill, called directly here, in the test's app (as the worker binds its own)."""
    job_context.bind_app(app)


def _png(size: tuple[int, int], colour=(200, 30, 30, 255)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGBA", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def _fake_run(monkeypatch, size=(640, 400)) -> None:
    result = [EncodedOutput("result", _png(size), "image/png", ".png")]
    monkeypatch.setattr(job_module, "process", lambda *args, **kwargs: result)


def _thumbnail(client, headers, task_id):
    return client.get(f"/api/v1/tasks/{task_id}/thumbnail", headers=headers)


def test_a_completed_task_has_thumbnails_of_its_photo_and_result(app, client, headers, photo_bytes, monkeypatch):
    _fake_run(monkeypatch)
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    assert client.get(f"/api/v1/tasks/{task_id}", headers=headers).get_json()["thumbnail_url"] is None
    run_worker(app)
    task = load_task(app, task_id)
    assert task.status == "COMPLETED" and set(task.thumbnails) == {"input", "result"}
    with app.app_context():
        stored = {name: get_storage().get(record["key"]) for name, record in task.thumbnails.items()}
    for data in stored.values():
        picture = Image.open(io.BytesIO(data))
        assert picture.format == "WEBP" and max(picture.size) == 160
    # The result's thumbnail keeps its shape and colour: it is the result's, not the photo's.
    result = Image.open(io.BytesIO(stored["result"]))
    assert result.size == (160, 100) and result.convert("RGB").getpixel((80, 50))[0] > 150
    body = client.get(f"/api/v1/tasks/{task_id}", headers=headers).get_json()
    assert body["thumbnail_url"].endswith(f"/api/v1/tasks/{task_id}/thumbnail")
    served = _thumbnail(client, headers, task_id)
    assert served.status_code == 200 and served.mimetype == "image/webp" and served.data == stored["result"]
    assert "no-store" in served.headers["Cache-Control"]


def test_thumbnails_are_for_their_owner_only_and_go_with_the_task(app, client, headers, make_user, make_token,
                                                                  photo_bytes, monkeypatch):
    _fake_run(monkeypatch)
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    run_worker(app)
    keys = [record["key"] for record in load_task(app, task_id).thumbnails.values()]
    other = make_token(make_user("eve@example.com"))
    assert _thumbnail(client, other, task_id).status_code == 404
    assert _thumbnail(client, {}, task_id).status_code == 401
    assert client.delete(f"/api/v1/tasks/{task_id}", headers=headers).status_code == 204
    with app.app_context():
        assert not any(get_storage().exists(key) for key in keys)
    assert _thumbnail(client, headers, task_id).status_code == 404


def test_a_task_finished_before_thumbnails_gets_them_from_the_backfill_once(
        app, client, headers, photo_bytes, monkeypatch):
    _fake_run(monkeypatch)
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    run_worker(app)
    with app.app_context():
        task = db.session.get(Task, task_id)
        for record in task.thumbnails.values():
            get_storage().delete(record["key"])
        task.thumbnails = {}
        db.session.commit()
    # No thumbnail yet: a 404 the page shows as a placeholder, never a 500.
    assert _thumbnail(client, headers, task_id).status_code == 404
    assert thumbnail_jobs.make_missing_thumbnails() == 1
    assert set(load_task(app, task_id).thumbnails) == {"input", "result"}
    assert _thumbnail(client, headers, task_id).status_code == 200
    # Visited once: the next run finds nothing to do.
    assert thumbnail_jobs.make_missing_thumbnails() == 0


def test_a_task_whose_files_are_gone_records_no_thumbnail_and_is_not_asked_again(app, client, headers,
                                                                                 photo_bytes, monkeypatch):
    _fake_run(monkeypatch)
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    run_worker(app)
    with app.app_context():
        task = db.session.get(Task, task_id)
        for key in task.stored_keys():
            get_storage().delete(key)
        task.thumbnails = {}
        db.session.commit()
    assert thumbnail_jobs.make_missing_thumbnails() == 1
    assert load_task(app, task_id).thumbnails == {"input": None, "result": None}
    assert _thumbnail(client, headers, task_id).status_code == 404
    assert thumbnail_jobs.make_missing_thumbnails() == 0


def test_the_backfill_leaves_unfinished_tasks_to_their_own_job(app, client, headers, photo_bytes):
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    assert thumbnail_jobs.make_missing_thumbnails() == 0
    assert load_task(app, task_id).thumbnails == {}


def test_thumbnails_on_s3_are_presigned_links(s3_app, make_user, make_token, photo_bytes, monkeypatch):
    _fake_run(monkeypatch)
    client = s3_app.test_client()
    headers = make_token(make_user("s3@example.com"))
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    run_worker(s3_app)
    served = _thumbnail(client, headers, task_id)
    assert served.status_code == 302 and "thumbnails/" in served.headers["Location"]
