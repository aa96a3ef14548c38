"""POST /api/v1/batches and what follows: many photos (files or a ZIP) become one batch of tasks, checked whole
before anything is stored; its progress, owner-only access, delete, retry of failures, and the streamed ZIP of
its results. On the real PostgreSQL, Redis and local storage; jobs are queued, finished here by hand (the real
worker runs in tests/api/test_batches_end_to_end.py)."""

from __future__ import annotations

import io
import json
import os
import tracemalloc
import zipfile
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from jobs.retention import purge_expired_tasks
from studio.auth import service as account_service
from studio.extensions import db
from studio.models import Batch, Task, User
from studio.storage import get_storage
from studio.tasks import service as task_service
from tests.support.batches import BATCHES, complete, fail, live_jobs, photo, post_archive, post_images, zipped
from tests.support.uploads import assert_nothing_kept, stored_files

pytestmark = pytest.mark.integration

THREE = [("red.png", photo((200, 30, 30))), ("green.jpg", photo((30, 200, 30), image_format="JPEG")),
         ("blue.webp", photo((30, 30, 200), image_format="WEBP"))]


@pytest.fixture
def config() -> dict[str, Any]:
    """Return settings a test overrides (parametrize it)."""
    return {}


@pytest.fixture
def app(make_app, config: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Flask:
    """Return the app with a model said to be installed: jobs are queued, never run, here."""
    monkeypatch.setattr(task_service, "installed_models", lambda: ("u2netp",))
    return make_app(**config)


def tasks_of(app: Flask, batch_id: str) -> list[Task]:
    with app.app_context():
        tasks = list(db.session.scalars(select(Task).where(Task.batch_id == batch_id).order_by(Task.id)))
        for task in tasks:
            db.session.expunge(task)
        return tasks


def storage_used(app: Flask, user: User) -> int:
    with app.app_context():
        return db.session.get(User, user.id).storage_bytes


def test_several_images_become_one_batch_of_tasks_with_the_same_operation_and_options(app, client, headers):
    answer = post_images(client, headers, THREE + [("notes.txt", b"not a photo")], operation="remove_background",
                         format="webp", bg_color="#ffffff")
    assert answer.status_code == 202, answer.get_json()
    body = answer.get_json()
    assert answer.headers["Location"].endswith(f"{BATCHES}/{body['id']}")
    assert body["counts"] == {"total": 3, "PENDING": 3, "PROCESSING": 0, "COMPLETED": 0, "FAILED": 0,
                              "CANCELLED": 0}
    assert [task["original_filename"] for task in body["tasks"]] == ["red.png", "green.jpg", "blue.webp"]
    assert body["skipped"][0]["name"] == "notes.txt" and "not a JPEG, PNG or WebP" in body["skipped"][0]["reason"]
    assert (body["finished"], body["archive_url"], body["progress"]) == (False, None, 0)
    tasks = tasks_of(app, body["id"])
    assert {(task.operation, task.options["format"], task.options["bg_color"]) for task in tasks} == {
        ("remove_background", "webp", "#ffffffff")}
    assert live_jobs(app, [task.id for task in tasks]) == {task.id for task in tasks}


def test_a_zip_of_photos_becomes_a_batch_and_lists_what_it_skipped(app, client, headers):
    data = zipped(("holiday/red.png", THREE[0][1]), ("holiday/green.jpg", THREE[1][1]), ("readme.txt", b"hello"),
                  ("more.zip", zipped(("x.png", THREE[0][1]))), ("sneaky.jpg", zipped(("y.png", THREE[0][1]))))
    answer = post_archive(client, headers, data, "holiday.zip")
    assert answer.status_code == 202, answer.get_json()
    body = answer.get_json()
    assert [task["original_filename"] for task in body["tasks"]] == ["red.png", "green.jpg"]
    assert body["archive_name"] == "holiday.zip"
    assert {item["name"]: item["reason"] for item in body["skipped"]} == {
        "more.zip": "nested archives are refused", "sneaky.jpg": "nested archives are refused",
        "readme.txt": "The file is not a JPEG, PNG or WebP image. Upload a JPEG, PNG or WebP photo."}


@pytest.mark.parametrize("fields, field", [({"operation": "remove_background", "format": "gif"}, "format"),
                                           ({"operation": "no_such_thing"}, "operation"),
                                           ({"bg_image": "text"}, "bg_image")])
def test_options_are_validated_by_the_operations_schema_as_for_one_photo(app, client, headers, fields, field):
    answer = post_images(client, headers, THREE, **fields)
    assert answer.status_code == 400
    assert answer.get_json()["error"]["message"].startswith(field)
    assert_nothing_kept(app)


@pytest.mark.parametrize("make, code", [
    (lambda: zipped(("bomb.png", bytes(8 * 1024 * 1024))), "archive_bomb"),
    (lambda: zipped(("ok.png", THREE[0][1]), ("../../etc/evil.png", THREE[0][1])), "unsafe_archive"),
    (lambda: zipped(*[(f"{index}.png", THREE[0][1]) for index in range(51)]), "too_many_entries"),
    (lambda: b"PK\x03\x04 not really", "invalid_archive"),
])
def test_a_hostile_archive_is_refused_and_nothing_is_kept(app, client, headers, make, code):
    answer = post_archive(client, headers, make())
    assert 400 <= answer.status_code < 500
    assert answer.get_json()["error"]["code"] == code
    assert_nothing_kept(app)


def test_an_upload_with_no_photo_at_all_is_refused_naming_what_it_held(app, client, headers):
    answer = post_archive(client, headers, zipped(("a.txt", b"a"), ("b.pdf", b"%PDF-1.4")))
    assert answer.status_code == 400
    error = answer.get_json()["error"]
    assert error["code"] == "no_photos" and "a.txt" in error["message"]
    assert_nothing_kept(app)


@pytest.mark.parametrize("data", [{}, {"images": "text"}])
def test_a_batch_without_photo_files_is_refused(app, client, headers, data):
    answer = client.post(BATCHES, headers=headers, content_type="multipart/form-data", data=data)
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "missing_file"


def test_images_and_an_archive_together_are_refused(app, client, headers):
    answer = client.post(BATCHES, headers=headers, content_type="multipart/form-data",
                         data={"images": (io.BytesIO(THREE[0][1]), "a.png"),
                               "archive": (io.BytesIO(zipped(THREE[1])), "b.zip")})
    assert answer.status_code == 400 and answer.get_json()["error"]["code"] == "too_many_files"


@pytest.mark.parametrize("config", [{"STUDIO_PLANS": {"small": {"tasks_per_month": 2}}}])
def test_the_plan_is_checked_once_for_the_whole_batch_before_anything_is_stored(app, client, headers):
    answer = post_images(client, headers, THREE)
    assert answer.status_code == 429 and answer.get_json()["error"]["code"] == "plan_limit_reached"
    assert_nothing_kept(app)
    assert post_images(client, headers, THREE[:2]).status_code == 202


@pytest.mark.parametrize("config", [{"STUDIO_MAX_UNFINISHED_TASKS": 2}])
def test_the_unfinished_task_cap_counts_every_photo_of_the_batch(app, client, headers):
    answer = post_images(client, headers, THREE)
    assert answer.status_code == 429 and answer.get_json()["error"]["code"] == "too_many_unfinished_tasks"
    assert_nothing_kept(app)


@pytest.mark.parametrize("config", [{"STUDIO_USER_QUOTA_BYTES": 2 * len(photo()) + 100}])
def test_the_storage_quota_is_checked_for_the_whole_batch_not_photo_by_photo(app, client, headers, user):
    same_size = [(f"{index}.png", photo()) for index in range(3)]  # each fits the quota alone, two fit, three not
    answer = post_images(client, headers, same_size)
    assert answer.status_code == 413 and answer.get_json()["error"]["code"] == "quota_exceeded"
    assert_nothing_kept(app)
    assert storage_used(app, user) == 0


def test_a_batch_shows_each_tasks_progress_and_the_counts(app, client, headers):
    body = post_images(client, headers, THREE).get_json()
    first, second, _ = [task["id"] for task in body["tasks"]]
    complete(app, first, photo())
    fail(app, second, "The photo is too dark.")
    shown = client.get(f"{BATCHES}/{body['id']}", headers=headers).get_json()
    assert shown["counts"] == {"total": 3, "PENDING": 1, "PROCESSING": 0, "COMPLETED": 1, "FAILED": 1,
                               "CANCELLED": 0}
    assert shown["progress"] == 66 and shown["finished"] is False
    assert [task["status"] for task in shown["tasks"]] == ["COMPLETED", "FAILED", "PENDING"]
    assert shown["tasks"][1]["error"] == "The photo is too dark."


def test_another_account_sees_none_of_a_batch(app, client, headers, make_user, make_token):
    batch_id = post_images(client, headers, THREE).get_json()["id"]
    stranger = make_token(make_user())
    for method, path in (("get", ""), ("get", "/archive"), ("post", "/retry"), ("delete", "")):
        answer = getattr(client, method)(f"{BATCHES}/{batch_id}{path}", headers=stranger)
        assert answer.status_code == 404, (method, path)
    assert len(tasks_of(app, batch_id)) == 3
    assert client.get(f"{BATCHES}/not-a-uuid", headers=headers).status_code == 404


def test_deleting_a_batch_deletes_every_task_and_file_and_gives_the_bytes_back(app, client, headers, user):
    body = post_images(client, headers, THREE).get_json()
    complete(app, body["tasks"][0]["id"], photo())
    assert stored_files(app) and storage_used(app, user) > 0
    assert client.delete(f"{BATCHES}/{body['id']}", headers=headers).status_code == 204
    assert tasks_of(app, body["id"]) == []
    assert stored_files(app) == []
    assert storage_used(app, user) == 0
    assert client.get(f"{BATCHES}/{body['id']}", headers=headers).status_code == 404


def test_retry_runs_the_failed_tasks_again_and_leaves_the_others(app, client, headers):
    body = post_images(client, headers, THREE).get_json()
    done, broken, also_broken = [task["id"] for task in body["tasks"]]
    complete(app, done, photo())
    fail(app, broken)
    fail(app, also_broken)
    assert live_jobs(app, [broken, also_broken]) == set()
    answer = client.post(f"{BATCHES}/{body['id']}/retry", headers=headers)
    assert answer.status_code == 200
    assert [task["status"] for task in answer.get_json()["tasks"]] == ["COMPLETED", "PENDING", "PENDING"]
    assert [task["error"] for task in answer.get_json()["tasks"]] == [None, None, None]
    assert live_jobs(app, [broken, also_broken]) == {broken, also_broken}
    assert client.post(f"{BATCHES}/{body['id']}/retry", headers=headers).status_code == 200  # nothing failed now


def test_the_archive_waits_until_every_photo_is_finished(app, client, headers):
    body = post_images(client, headers, THREE).get_json()
    answer = client.get(f"{BATCHES}/{body['id']}/archive", headers=headers)
    assert answer.status_code == 409 and answer.get_json()["error"]["code"] == "batch_unfinished"


def test_the_archive_names_results_after_their_photos_and_lists_failures_in_its_manifest(app, client, headers):
    files = [("same.jpg", photo((1, 2, 3))), ("same.png", photo((4, 5, 6))), ("other.webp", photo((7, 8, 9)))]
    body = post_archive(client, headers, zipped(*files, ("notes.txt", b"x"))).get_json()
    first, second, third = [task["id"] for task in body["tasks"]]
    complete(app, first, b"first result")
    complete(app, second, b"second result")
    fail(app, third, "The photo is too dark.")
    shown = client.get(f"{BATCHES}/{body['id']}", headers=headers).get_json()
    assert shown["finished"] and shown["archive_url"].endswith(f"/batches/{body['id']}/archive")
    answer = client.get(f"{BATCHES}/{body['id']}/archive", headers=headers)
    assert answer.status_code == 200 and answer.mimetype == "application/zip"
    assert answer.headers["Content-Disposition"] == 'attachment; filename="photos-results.zip"'
    with zipfile.ZipFile(io.BytesIO(answer.get_data())) as archive:
        assert archive.testzip() is None
        assert archive.namelist() == ["same.png", "same-2.png", "manifest.json"]
        assert (archive.read("same.png"), archive.read("same-2.png")) == (b"first result", b"second result")
        manifest = json.loads(archive.read("manifest.json"))
    assert [(item["name"], item["original"]) for item in manifest["files"]] == [
        ("same.png", "same.jpg"), ("same-2.png", "same.png")]
    assert manifest["failed"] == [{"original": "other.webp", "task": third, "status": "FAILED",
                                   "reason": "The photo is too dark."}]
    assert manifest["skipped"][0]["name"] == "notes.txt"


def test_the_archive_is_streamed_a_chunk_at_a_time_never_held_whole(app, client, headers):
    # Three results of 6 MB each: the archive (18 MB) and even one result are far more than the response may hold.
    body = post_images(client, headers, THREE).get_json()
    results = [os.urandom(6 * 1024 * 1024) for _ in range(3)]
    for task, data in zip(body["tasks"], results):
        complete(app, task["id"], data)
    del data
    answer = client.get(f"{BATCHES}/{body['id']}/archive", headers=headers, buffered=False)
    assert answer.status_code == 200 and answer.is_streamed
    assert "Content-Length" not in answer.headers
    received, largest_chunk = io.BytesIO(), 0
    tracemalloc.start()
    try:
        for chunk in answer.response:
            largest_chunk = max(largest_chunk, len(chunk))
            received.write(chunk)
            del chunk
        # What the response itself allocated, the received copy aside (it grows in this test, not in a server).
        peak = tracemalloc.get_traced_memory()[1] - received.getbuffer().nbytes
    finally:
        tracemalloc.stop()
        answer.close()
    assert largest_chunk <= 512 * 1024
    assert peak < 2 * 1024 * 1024, peak
    with zipfile.ZipFile(received) as archive:
        assert [archive.read(name) for name in ("red.png", "green.png", "blue.png")] == results


def test_retention_deletes_an_old_batch_once_its_tasks_are_gone_and_keeps_a_recent_one(app, client, headers):
    old = post_images(client, headers, THREE[:2]).get_json()["id"]
    recent = post_images(client, headers, THREE[2:]).get_json()["id"]
    with app.app_context():
        long_ago = datetime.now(timezone.utc) - timedelta(days=40)
        db.session.execute(update(Batch).where(Batch.id == old).values(created_at=long_ago))
        db.session.execute(update(Task).where(Task.batch_id == old).values(created_at=long_ago))
        db.session.commit()
    assert purge_expired_tasks() == 2
    assert client.get(f"{BATCHES}/{old}", headers=headers).status_code == 404
    assert client.get(f"{BATCHES}/{recent}", headers=headers).get_json()["counts"]["total"] == 1


def test_the_archive_streams_results_from_s3_too(s3_app, make_token, monkeypatch):
    monkeypatch.setattr(task_service, "installed_models", lambda: ("u2netp",))
    client = s3_app.test_client()
    with s3_app.app_context():
        owner = account_service.create_user("s3@example.com", "correct horse battery staple")
        db.session.expunge(owner)
    headers = make_token(owner)
    body = post_images(client, headers, THREE[:2]).get_json()
    results = [os.urandom(300_000), b"small"]
    for task, data in zip(body["tasks"], results):
        complete(s3_app, task["id"], data)
    answer = client.get(f"{BATCHES}/{body['id']}/archive", headers=headers)
    assert answer.status_code == 200
    with zipfile.ZipFile(io.BytesIO(answer.get_data())) as archive:
        assert [archive.read(name) for name in ("red.png", "green.png")] == results
    keys = [key for task in tasks_of(s3_app, body["id"]) for key in task.stored_keys()]
    assert len(keys) == 4  # two photos, two results
    assert client.delete(f"{BATCHES}/{body['id']}", headers=headers).status_code == 204
    with s3_app.app_context():
        assert not any(get_storage().exists(key) for key in keys)
