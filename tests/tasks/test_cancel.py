"""Cancelling a task that has not started: by its owner, by an administrator or by deleting it, its job leaves the
queue, its webhook is told, it counts no seconds, and a job that fails once its task is cancelled is not retried.
(A running job stopped on a real worker: tests/tasks/test_running_cancel.py; the transitions themselves:
tests/tasks/test_lifecycle.py.)"""

from __future__ import annotations

import json

import pytest
from rq.job import Job

from jobs import process_image as job_module
from studio.queue import cancel_task_job, get_redis
from tests.support.admin import ADMIN, audit_entries, post, sign_in, usage_rows
from tests.support.studio import load_task, run_worker, upload

pytestmark = pytest.mark.integration


def test_cancelling_a_waiting_task_tells_its_webhook_and_counts_no_seconds(
        make_app, make_user, make_token, photo_bytes, receiver, fake_run):
    app = make_app(STUDIO_WEBHOOK_ALLOW_PRIVATE=True)
    owner = make_user("owner@example.com")
    make_user(ADMIN, is_admin=True)
    client, headers = app.test_client(), make_token(owner)
    task_id = upload(client, headers, photo_bytes("boat.jpg"), webhook_url=receiver.url).get_json()["id"]
    admin_client = app.test_client()
    sign_in(admin_client, ADMIN)
    post(admin_client, "/admin/tasks/cancel", {"task": task_id})

    task = load_task(app, task_id)
    assert (task.status, task.error) == ("CANCELLED", "Cancelled by an administrator.")
    run_worker(app)
    assert fake_run == []  # its job was removed before any worker took it
    [call] = receiver.calls
    assert json.loads(call["body"])["type"] == "task.cancelled"
    [row] = usage_rows(app, owner.id)
    assert (row.tasks, row.completed_tasks, row.pixels_out, row.processing_seconds) == (1, 0, 0, 0)
    [entry] = audit_entries(app)
    assert (entry.action, entry.target_task_id) == ("task.cancel", task_id)
    # The photo stays: the owner can re-run it.
    assert client.post(f"/api/v1/tasks/{task_id}/cancel", headers=headers).status_code == 409


def test_a_job_that_fails_after_its_task_was_cancelled_is_not_retried(
        app, client, headers, photo_bytes, monkeypatch):
    # The failure callback sees the task CANCELLED and takes the job's retries away before RQ decides on one.
    runs = []

    def cancel_then_fail(*args, **kwargs):
        runs.append(1)
        client.post(f"/api/v1/tasks/{task_id}/cancel", headers=headers)
        raise RuntimeError("the model crashed as the owner cancelled")

    monkeypatch.setattr(job_module, "process", cancel_then_fail)
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    run_worker(app)
    assert runs == [1] and load_task(app, task_id).status == "CANCELLED"
    with app.app_context():
        job = Job.fetch(task_id, connection=get_redis())
        # STOPPED too: the cancel also sent RQ's stop-job command, which this in-process worker notes. Either way
        # no retry is left (the stop alone would leave the two retries on the job).
        assert job.get_status() in ("failed", "stopped") and job.retries_left == 0


def test_cancelling_a_task_job_removes_it_from_the_queue(make_studio, photo):
    studio = make_studio()
    task_id = studio.upload(photo)
    with studio.app.app_context():
        assert cancel_task_job(task_id) is True
        assert cancel_task_job(task_id) is False
        assert not Job.exists(task_id, connection=get_redis())
    assert studio.queued_ids() == []


def test_deleting_a_task_cancels_its_queued_job(make_studio, photo):
    studio = make_studio()
    task_id = studio.upload(photo)

    assert studio.client.delete(f"/api/v1/tasks/{task_id}", headers=studio.headers).status_code == 204

    assert studio.queued_ids() == []
    with studio.app.app_context():
        assert not Job.exists(task_id, connection=get_redis())
