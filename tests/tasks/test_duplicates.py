"""Duplicates: the same photo with the same operation, model and options from the same account reuses the stored
result instead of running the models again, visibly, and the shared result is deleted only when no task uses it."""

from __future__ import annotations

import io
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
from flask import Flask
from PIL import Image
from sqlalchemy import select, update

from jobs import process_image as job_module
from jobs.retention import purge_expired_tasks
from ml.runner import EncodedOutput
from studio.extensions import db
from studio.models import DailyUsage, Task, utcnow
from studio.tasks import quota
from studio.tasks.duplicates import TaskFiles
from tests.support.photo_server import PhotoServer
from tests.support.studio import load_task, run_worker, upload
from tests.support.uploads import sign_in

pytestmark = pytest.mark.integration


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    """The app with duplicates reused, as by default (the test configuration turns it off for other tests)."""
    return make_app(STUDIO_REUSE_DUPLICATES=True)


@pytest.fixture
def runs(monkeypatch: pytest.MonkeyPatch) -> list[dict[str, Any]]:
    """Stand in for the model runner: record each call, and answer a result that tells the calls apart."""
    calls: list[dict[str, Any]] = []

    def process(operation: Any, photo: bytes, options: Any, **kwargs: Any) -> list[EncodedOutput]:
        calls.append({"operation": operation.name, "options": options.to_dict()})
        buffer = io.BytesIO()
        Image.new("RGB", (8, 6), (len(calls) * 40 % 256, 0, 0)).save(buffer, "PNG")
        return [EncodedOutput("result", buffer.getvalue(), "image/png", ".png", pixels=48)]

    monkeypatch.setattr(job_module, "process", process)
    return calls


@pytest.fixture
def photo_server() -> Iterator[Callable[[], PhotoServer]]:
    """Return a starter of local photo servers, stopped after the test."""
    servers: list[PhotoServer] = []

    def start() -> PhotoServer:
        servers.append(PhotoServer())
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def _photo(colour: tuple[int, int, int] = (10, 120, 200)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), colour).save(buffer, "PNG")
    return buffer.getvalue()


def _processed(app: Flask, client, headers: dict[str, str], photo: bytes, **fields: str) -> dict[str, Any]:
    response = upload(client, headers, photo, "photo.png", **fields)
    assert response.status_code == 202, response.get_json()
    run_worker(app)
    return client.get(f"/api/v1/tasks/{response.get_json()['id']}", headers=headers).get_json()


def _result(client, headers: dict[str, str], task_id: str):
    return client.get(f"/api/v1/tasks/{task_id}/result", headers=headers)


def _path(app: Flask, key: str) -> Path:
    return Path(app.config["STUDIO_STORAGE_DIR"]) / key


def test_the_same_photo_and_options_reuse_the_result_without_running_the_model(app, client, headers, user, runs):
    first = _processed(app, client, headers, _photo(), bg_color="#ffffff")
    second = _processed(app, client, headers, _photo(), bg_color="#ffffff")

    assert len(runs) == 1
    assert (first["status"], second["status"]) == ("COMPLETED", "COMPLETED")
    assert first["reused_from"] is None and second["reused_from"] == first["id"]
    assert _result(client, headers, second["id"]).data == _result(client, headers, first["id"]).data
    # A duplicate of a duplicate names the task whose run made the result.
    third = _processed(app, client, headers, _photo(), bg_color="#ffffff")
    assert third["reused_from"] == first["id"] and len(runs) == 1
    # The task page says so, with a link.
    sign_in(client, user.email)
    page = client.get(f"/tasks/{second['id']}").get_data(as_text=True)
    assert "Reused from task" in page and f"/tasks/{first['id']}" in page
    # Usage: three tasks, the work of one.
    with app.app_context():
        row = db.session.scalars(select(DailyUsage).where(DailyUsage.user_id == user.id)).one()
        first_row = db.session.get(Task, first["id"])
        assert (row.tasks, row.completed_tasks, row.work_pixels) == (3, 3, first_row.work_pixels)
        assert first_row.work_pixels == 40 * 30


@pytest.mark.parametrize("change", ["options", "operation", "photo"])
def test_another_option_operation_or_photo_runs_again(app, client, headers, runs, change):
    first = _processed(app, client, headers, _photo(), bg_color="#ffffff")
    if change == "options":
        second = _processed(app, client, headers, _photo(), bg_color="#000000")
    elif change == "operation":
        second = _processed(app, client, headers, _photo(), operation="mask_stats")
    else:
        second = _processed(app, client, headers, _photo((11, 120, 200)), bg_color="#ffffff")
    assert len(runs) == 2 and second["status"] == "COMPLETED" and second["reused_from"] is None
    assert second["id"] != first["id"]


def test_another_account_runs_again(app, client, headers, make_user, make_token, runs):
    _processed(app, client, headers, _photo())
    other = _processed(app, client, make_token(make_user()), _photo())
    assert len(runs) == 2 and other["reused_from"] is None


def test_the_setting_off_runs_every_task(make_app, make_user, make_token, runs):
    app = make_app(STUDIO_REUSE_DUPLICATES=False)
    client, headers = app.test_client(), make_token(make_user())
    _processed(app, client, headers, _photo())
    second = _processed(app, client, headers, _photo())
    assert len(runs) == 2 and second["reused_from"] is None


def test_the_shared_result_lives_until_the_last_task_using_it_is_deleted(app, client, headers, user, runs):
    first = _processed(app, client, headers, _photo())
    second = _processed(app, client, headers, _photo())
    key = load_task(app, second["id"]).outputs["result"]["key"]
    assert key == load_task(app, first["id"]).outputs["result"]["key"] and _path(app, key).is_file()
    expected = _result(client, headers, first["id"]).data

    assert client.delete(f"/api/v1/tasks/{first['id']}", headers=headers).status_code == 204
    assert _path(app, key).is_file()
    assert _result(client, headers, second["id"]).data == expected

    assert client.delete(f"/api/v1/tasks/{second['id']}", headers=headers).status_code == 204
    assert not _path(app, key).exists()
    with app.app_context():
        assert quota.storage_used(user.id) == 0  # every share given back


def test_the_reusing_task_deleted_first_leaves_the_originals_result(app, client, headers, runs):
    first = _processed(app, client, headers, _photo())
    second = _processed(app, client, headers, _photo())
    key = load_task(app, first["id"]).outputs["result"]["key"]
    client.delete(f"/api/v1/tasks/{second['id']}", headers=headers)
    assert _path(app, key).is_file() and _result(client, headers, first["id"]).status_code == 200
    client.delete(f"/api/v1/tasks/{first['id']}", headers=headers)
    assert not _path(app, key).exists()


def _age(app: Flask, task_id: str, days: float) -> None:
    with app.app_context():
        db.session.execute(update(Task).where(Task.id == task_id).values(created_at=utcnow() - timedelta(days=days)))
        db.session.commit()


def test_retention_keeps_a_shared_result_while_a_newer_task_uses_it(app, client, headers, runs):
    first = _processed(app, client, headers, _photo())
    second = _processed(app, client, headers, _photo())
    key = load_task(app, first["id"]).outputs["result"]["key"]
    _age(app, first["id"], 31)

    assert purge_expired_tasks() == 1
    assert load_task(app, first["id"]) is None and _path(app, key).is_file()
    assert _result(client, headers, second["id"]).status_code == 200

    _age(app, second["id"], 31)
    assert purge_expired_tasks() == 1
    assert not _path(app, key).exists()


def test_retention_deletes_a_result_whose_tasks_all_expire_together(app, client, headers, runs):
    first = _processed(app, client, headers, _photo())
    second = _processed(app, client, headers, _photo())
    key = load_task(app, first["id"]).outputs["result"]["key"]
    for task_id in (first["id"], second["id"]):
        _age(app, task_id, 31)
    assert purge_expired_tasks() == 2
    assert not _path(app, key).exists()


def test_a_duplicate_given_by_url_reuses_too(make_app, make_user, make_token, runs, photo_server: Callable):
    app = make_app(STUDIO_IMAGE_URL_ALLOW_PRIVATE=True, STUDIO_REUSE_DUPLICATES=True)
    client, headers = app.test_client(), make_token(make_user())
    first = _processed(app, client, headers, _photo())
    url = photo_server().serve("/same.png", _photo())
    response = client.post("/api/v1/tasks", headers=headers, json={"image_url": url})
    run_worker(app)
    second = client.get(f"/api/v1/tasks/{response.get_json()['id']}", headers=headers).get_json()
    assert second["status"] == "COMPLETED" and second["reused_from"] == first["id"] and len(runs) == 1


def test_a_tasks_files_are_its_own_files_and_the_outputs_it_points_at() -> None:
    task = Task(id="t1", input_key="inputs/1/t1.jpg", reused_from="t0",
                attachments={"bg_image": {"key": "inputs/1/t1-bg.png", "media_type": "image/png", "size": 5}},
                thumbnails={"input": {"key": "thumbs/1/t1.webp", "media_type": "image/webp", "size": 1},
                            "result": None},
                outputs={"result": {"key": "results/1/t0.png", "media_type": "image/png", "size": 9}})
    files = TaskFiles.of(task)
    assert files.inputs == ("inputs/1/t1.jpg", "inputs/1/t1-bg.png", "thumbs/1/t1.webp")
    assert (files.outputs, files.origin) == (("results/1/t0.png",), "t0")
    # The row's own list of its files and what its deletion deletes are one list, not two that may drift.
    assert task.stored_keys() == list(files.inputs + files.outputs)
