"""Tasks on the dashboard: FAILED ones filtered by reason and retried (one or many); each action audited, and the
usage still counting each task once. (Cancelling, by the owner or an administrator: tests/tasks/test_cancel.py.)"""

from __future__ import annotations

import pytest
from rq.job import Job

from studio.queue import get_redis
from tests.support.admin import ADMIN, audit_entries, fake_run_failures, post, usage_rows
from tests.support.studio import load_task, run_worker, upload

pytestmark = pytest.mark.integration


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
