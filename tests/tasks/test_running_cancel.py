"""Cancelling a running job on a real forking worker (`python rq_worker.py`): RQ's stop-job command kills the
work horse, the job ends STOPPED and is never retried, the task ends CANCELLED with whatever outputs it had stored
deleted, its usage counts only the seconds it ran, and the worker goes on to the next photo."""

from __future__ import annotations

import psutil
import pytest
from rq.job import Job
from rq.registry import CanceledJobRegistry, FailedJobRegistry

from studio.auth import service as account_service
from studio.extensions import db
from studio.models import DailyUsage
from studio.queue import get_redis
from studio.storage import get_storage, result_key
from tests.support.admin import ADMIN, PASSWORD, audit_entries, post, sign_in
# The crash tests' real worker processes (on a PostgreSQL and a Redis of their own): tests/plugins/processes.py.
from tests.support.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HANGING = "hang.jpeg"


# A work horse forked per job, or the job in the worker's own process (the default), which has no horse to kill.
@pytest.mark.parametrize("jobs_per_process", ["1", "1000"], ids=["fork", "reuse"])
def test_an_administrator_stops_a_running_job_for_good(make_studio, photo, jobs_per_process):  # noqa: F811
    studio = make_studio(STUDIO_JOB_RETRIES=2)
    # Only the photo uploaded as hang.jpeg sleeps (far longer than any wait here, reporting no progress): only the
    # stop can end it.
    worker = studio.start_worker(STUDIO_FAULT_INJECTION=f"sleep=600@{HANGING}",
                                 STUDIO_WORKER_JOBS_PER_PROCESS=jobs_per_process)
    task_id = studio.upload(photo, filename=HANGING)
    task = studio.wait_for_status(task_id, "PROCESSING")
    horse = wait_until(worker.horse_pid, "the work horse runs", diagnostics=worker.output) \
        if jobs_per_process == "1" else None
    with studio.app.app_context():
        # As if the horse had stored its output just before the stop: the stop must not leave it behind.
        leftover = result_key(task.user_id, task_id, ".png")
        get_storage().put(leftover, b"half a result", "image/png")
        account_service.create_user(ADMIN, PASSWORD, is_admin=True)
        db.session.remove()
    admin = studio.app.test_client()
    assert sign_in(admin, ADMIN).status_code == 302

    assert post(admin, "/admin/tasks/cancel", {"task": task_id}).status_code == 302

    assert studio.status(task_id) == "CANCELLED"
    with studio.app.app_context():
        def stopped() -> bool:
            return Job.fetch(task_id, connection=get_redis()).get_status() == "stopped"

        wait_until(stopped, "the job is STOPPED", diagnostics=studio.logs)
        if horse is not None:
            wait_until(lambda: not psutil.pid_exists(horse) or psutil.Process(horse).status() == psutil.STATUS_ZOMBIE,
                       "the work horse is gone", diagnostics=studio.logs)
        wait_until(lambda: not get_storage().exists(leftover), "the stored output is deleted",
                   diagnostics=studio.logs)
    # RQ ran the stopped callback in the worker, after the horse died (it deletes outputs again, now for good); a
    # worker running the job itself did so once the job had not stopped by itself, then started afresh.
    wait_until(lambda: "its job was stopped; the task is CANCELLED" in worker.log.read_text(),
               "the stopped callback ran", diagnostics=studio.logs)
    if horse is None:
        wait_until(lambda: f"job {task_id} was stopped: starting afresh" in worker.log.read_text(),
                   "the worker starts afresh", diagnostics=studio.logs)

    # The worker is alive and takes the next photo; the stopped job never ran again.
    done = studio.upload(photo)
    studio.wait_for_status(done, "COMPLETED")
    assert worker.exited() is None
    task = studio.task(task_id)
    assert (task.status, task.attempts, task.error) == ("CANCELLED", 1, "Cancelled by an administrator.")
    with studio.app.app_context():
        job = Job.fetch(task_id, connection=get_redis())
        assert job.get_status() == "stopped"
        # /admin/rq lists it with the cancelled jobs, not the failed ones.
        assert task_id in CanceledJobRegistry(job.origin, connection=get_redis()).get_job_ids()
        assert task_id not in FailedJobRegistry(job.origin, connection=get_redis()).get_job_ids()
        row = db.session.query(DailyUsage).filter_by(user_id=task.user_id).one()
        # Two finished tasks, one completed; the cancelled one's seconds are only what ran before the stop.
        ran = (task.finished_at - task.started_at).total_seconds()
        completed = studio.task(done)
        assert (row.tasks, row.completed_tasks) == (2, 1)
        assert row.processing_seconds == pytest.approx(
            ran + (completed.finished_at - completed.started_at).total_seconds())
        assert ran < 600
    assert [path.name for path in studio.result_files()] == [f"{done}.png"]
    assert [(entry.action, entry.target_task_id) for entry in audit_entries(studio.app)] == [("task.cancel", task_id)]
