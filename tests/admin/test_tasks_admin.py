"""Tasks on the dashboard: FAILED ones filtered by reason and retried (one or many), waiting ones cancelled with
their webhook told; each action audited, and the usage still counting each task once."""

from __future__ import annotations

import json
from typing import Iterator

import pytest
from rq.job import Job

from jobs import process_image as job_module
from studio.queue import get_redis
from tests.support.admin import ADMIN, audit_entries, fake_run_failures, post, sign_in, usage_rows
from tests.support.studio import load_task, run_worker, upload
from tests.support.receiver import Receiver

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """Return a local HTTP receiver for webhooks."""
    server = Receiver()
    yield server
    server.close()


def _failed_task(app, client, headers, photo_bytes, error: Exception) -> str:
    """Upload a photo whose every attempt fails with this error; return its id, FAILED."""
    fake_run_failures.extend([error] * (app.config["STUDIO_JOB_RETRIES"] + 1))
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    run_worker(app)
    assert load_task(app, task_id).status == "FAILED"
    return task_id


def test_failed_tasks_are_listed_by_reason(app, client, headers, admin_client, photo_bytes, fake_run):
    broken = _failed_task(app, client, headers, photo_bytes, RuntimeError("disk full"))
    fake_run_failures.append(ValueError("x"))  # one failed attempt, then a retry that completes
    done = upload(client, headers, photo_bytes("horse.jpg")).get_json()["id"]
    run_worker(app)
    assert load_task(app, done).status == "COMPLETED"  # retried after its one failure

    page = admin_client.get("/admin/tasks").get_data(as_text=True)
    assert broken in page and done not in page
    # The reason without its per-task reference, so equal failures group and link to their filter.
    assert "Processing failed after 3 attempts; the error was logged as</a> (1)" in page
    filtered = admin_client.get("/admin/tasks?status=FAILED&reason=logged+as").get_data(as_text=True)
    assert broken in filtered
    assert broken not in admin_client.get("/admin/tasks?status=FAILED&reason=timed+out").get_data(as_text=True)
    assert done in admin_client.get("/admin/tasks?status=COMPLETED").get_data(as_text=True)


def test_retrying_a_failed_task_runs_it_again_and_it_counts_once(app, client, headers, admin_client, user,
                                                                 photo_bytes, fake_run):
    task_id = _failed_task(app, client, headers, photo_bytes, RuntimeError("GPU lost"))
    failed = load_task(app, task_id)
    [row] = usage_rows(app, user.id)
    assert (row.tasks, row.completed_tasks, row.pixels_in) == (1, 0, failed.input_width * failed.input_height)
    first_seconds = row.processing_seconds

    response = post(admin_client, "/admin/tasks/retry", {"task": task_id})
    assert response.status_code == 302
    task = load_task(app, task_id)
    assert (task.status, task.attempts, task.error, task.finished_at) == ("PENDING", 0, None, None)
    with app.app_context():
        assert Job.fetch(task_id, connection=get_redis()).get_status() == "queued"
    [row] = usage_rows(app, user.id)
    assert (row.tasks, row.pixels_in, row.processing_seconds) == (0, 0, first_seconds)  # taken back, time kept

    run_worker(app)
    task = load_task(app, task_id)
    assert (task.status, task.attempts) == ("COMPLETED", 1)
    [row] = usage_rows(app, user.id)
    assert (row.tasks, row.completed_tasks) == (1, 1)
    assert (row.pixels_in, row.pixels_out) == (task.input_width * task.input_height, task.output_pixels)
    last = (task.finished_at - task.started_at).total_seconds()
    assert row.processing_seconds == pytest.approx(first_seconds + last)

    [entry] = audit_entries(app)
    assert (entry.action, entry.actor_email, entry.target_task_id, entry.target_user_id) == (
        "task.retry", ADMIN, task_id, user.id)
    # Only FAILED tasks are retried: a second retry of the completed task does nothing.
    page = post(admin_client, "/admin/tasks/retry", {"task": task_id}, follow_redirects=True).get_data(as_text=True)
    assert "Retried 0 tasks; 1 not retried" in page and len(audit_entries(app)) == 1


def test_retrying_every_matching_failed_task_at_once(app, client, headers, admin_client, photo_bytes, fake_run):
    failed = [_failed_task(app, client, headers, photo_bytes, RuntimeError("flaky")) for _ in range(2)]
    matching = {"matching": "true", "status": "FAILED", "reason": "logged as"}
    response = post(admin_client, "/admin/tasks/retry", matching)
    assert response.status_code == 302
    assert [load_task(app, task_id).status for task_id in failed] == ["PENDING", "PENDING"]
    assert sorted(entry.target_task_id for entry in audit_entries(app)) == sorted(failed)
    run_worker(app)
    assert [load_task(app, task_id).status for task_id in failed] == ["COMPLETED", "COMPLETED"]


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
