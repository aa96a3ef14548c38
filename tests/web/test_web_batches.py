"""Batch pages: several photos from the upload form become one batch whose page polls its overall progress,
offers the ZIP once every photo is finished, retries failures and deletes it all; owners only, CSRF on changes."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from flask import Flask

from studio.extensions import db
from studio.models import Task
from studio.storage import get_storage, result_key
from studio.tasks import lifecycle
from tests.support.web import csrf_token

POLLING = re.compile(r'hx-trigger="load delay:\d+s')


@pytest.fixture
def photo(photos_dir: Path) -> bytes:
    """Return the bytes of a small real photo."""
    return (photos_dir / "rifle2.jpeg").read_bytes()


@pytest.fixture
def signed_in(client, auth, make_user):
    """Sign a user in and return the client."""
    make_user()
    auth.login()
    return client


def _batch(client, photo: bytes, names=("a.jpeg", "b.jpeg")) -> str:
    data = {"csrf_token": csrf_token(client, "/"), "photo": [(io.BytesIO(photo), name) for name in names]}
    response = client.post("/tasks", data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    return response.headers["Location"]


def _task_ids(app: Flask) -> list[str]:
    with app.app_context():
        return [task.id for task in db.session.query(Task).order_by(Task.id)]


def _finish(app: Flask, task_id: str, ok: bool) -> None:
    with app.app_context():
        task = db.session.get(Task, task_id)
        lifecycle.started(task_id)
        if not ok:
            lifecycle.failed(task_id, "The photo is too dark.")
            return
        key = result_key(task.user_id, task_id, ".png")
        get_storage().put(key, b"a result", "image/png")
        lifecycle.completed(task_id, task.user_id, {"result": lifecycle.StoredOutput(key, "image/png", 8)})


def test_the_batch_page_polls_until_every_photo_is_finished_then_offers_the_zip(app, signed_in, photo):
    page_url = _batch(signed_in, photo)
    page = signed_in.get(page_url).get_data(as_text=True)
    assert POLLING.search(page) and "Download all (ZIP)" not in page
    first, second = _task_ids(app)
    _finish(app, first, ok=True)
    fragment = signed_in.get(page_url + "/status").get_data(as_text=True)
    assert POLLING.search(fragment) and "1 of 2 done" in fragment and 'value="50"' in fragment
    _finish(app, second, ok=False)
    fragment = signed_in.get(page_url + "/status").get_data(as_text=True)
    assert not POLLING.search(fragment)
    assert "1 of 2 done</strong>, 1 failed" in fragment and "Retry 1 failed" in fragment
    archive_url = re.search(r'href="([^"]+/archive)"', fragment).group(1)
    answer = signed_in.get(archive_url)
    assert answer.status_code == 200 and answer.mimetype == "application/zip"
    with zipfile.ZipFile(io.BytesIO(answer.get_data())) as archive:
        assert archive.namelist() == ["a.png", "manifest.json"]


def test_the_archive_before_the_end_sends_back_to_the_page_with_a_reason(signed_in, photo):
    page_url = _batch(signed_in, photo)
    answer = signed_in.get(page_url + "/archive")
    assert answer.status_code == 302 and answer.headers["Location"] == page_url
    assert "still waiting or processing" in signed_in.get(page_url).get_data(as_text=True)


def test_retry_from_the_page_runs_the_failed_photos_again(app, signed_in, photo):
    page_url = _batch(signed_in, photo)
    first, second = _task_ids(app)
    _finish(app, first, ok=True)
    _finish(app, second, ok=False)
    response = signed_in.post(page_url + "/retry", data={"csrf_token": csrf_token(signed_in, page_url)})
    assert response.status_code == 302
    assert "Processing 1 photo again" in signed_in.get(page_url).get_data(as_text=True)
    with app.app_context():
        assert db.session.get(Task, second).status == "PENDING"
    assert f'href="{page_url}">its batch</a>' in signed_in.get(f"/tasks/{second}").get_data(as_text=True)


def test_delete_from_the_page_removes_the_batch_its_tasks_and_files(app, signed_in, photo):
    page_url = _batch(signed_in, photo)
    _finish(app, _task_ids(app)[0], ok=True)
    response = signed_in.post(page_url + "/delete", data={"csrf_token": csrf_token(signed_in, page_url)})
    assert response.status_code == 302 and response.headers["Location"] == "/tasks"
    assert _task_ids(app) == []
    assert [path for path in Path(app.config["STUDIO_STORAGE_DIR"]).rglob("*") if path.is_file()] == []
    assert signed_in.get(page_url).status_code == 404


def test_changes_without_a_csrf_token_are_refused(app, signed_in, photo):
    page_url = _batch(signed_in, photo)
    for action in ("/retry", "/delete"):
        assert signed_in.post(page_url + action).status_code == 400
    assert len(_task_ids(app)) == 2


def test_another_account_gets_404_on_every_batch_page(app, client, auth, make_user, photo):
    make_user("owner@example.com")
    auth.login("owner@example.com")
    page_url = _batch(client, photo)
    auth.logout()
    make_user("other@example.com")
    auth.login("other@example.com")
    for path in ("", "/status", "/archive"):
        assert client.get(page_url + path).status_code == 404, path
    for path in ("/retry", "/delete"):
        assert client.post(page_url + path, data={"csrf_token": csrf_token(client, "/")}).status_code == 404, path
    assert len(_task_ids(app)) == 2
