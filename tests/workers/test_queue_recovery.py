"""The queue agrees with the database: one job per task under races, and jobs Redis lost are enqueued again."""

from __future__ import annotations

import threading
from typing import Callable

import pytest
from rq.job import Job

from jobs.maintenance import reconcile_tasks
from studio.extensions import db
from studio.models import Task
from studio.queue import enqueue_task, get_redis

pytestmark = pytest.mark.integration


def _all_at_once(calls: list[Callable[[], object]]) -> None:
    """Run the calls in threads released together by a barrier; re-raise the first error."""
    barrier = threading.Barrier(len(calls))
    errors: list[BaseException] = []

    def run(call: Callable[[], object]) -> None:
        barrier.wait()
        try:
            call()
        except BaseException as error:  # noqa: BLE001 - reported below, in the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(call,)) for call in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors


def test_the_upload_path_and_reconcilers_racing_give_a_task_exactly_one_job(make_studio, photo):
    studio = make_studio()
    task_id = studio.upload(photo)
    # As after a Redis outage at upload time: the task is PENDING and Redis holds no job for it.
    with studio.app.app_context():
        Job.fetch(task_id, connection=get_redis()).delete()
    assert studio.queued_ids() == []

    def upload_path() -> None:
        with studio.app.app_context():
            enqueue_task(db.session.get(Task, task_id))
            db.session.remove()

    _all_at_once([upload_path] * 6 + [reconcile_tasks] * 6)

    assert studio.queued_ids() == [task_id]
    # Once its job exists, neither path adds another.
    _all_at_once([upload_path] * 3 + [reconcile_tasks] * 3)
    assert studio.queued_ids() == [task_id]
    studio.start_worker("--burst", wait=False).process.wait(timeout=120)
    assert (studio.task(task_id).status, studio.task(task_id).attempts) == ("COMPLETED", 1)


@pytest.mark.slow
def test_an_upload_while_redis_is_down_is_accepted_and_processed_once_it_is_back(make_studio, photo):
    studio = make_studio()
    studio.redis.stop()

    task_id = studio.upload(photo)  # asserts 202

    assert studio.status(task_id) == "PENDING"
    studio.redis.start()
    studio.start_worker()
    task = studio.wait_for_status(task_id, "COMPLETED", reconcile=True)
    assert task.attempts == 1


@pytest.mark.slow
def test_jobs_lost_in_a_redis_restart_are_enqueued_again_and_completed(make_studio, photo):
    studio = make_studio()
    ids = [studio.upload(photo) for _ in range(2)]
    assert sorted(studio.queued_ids()) == sorted(ids)

    studio.redis.restart()  # no persistence: the queue is gone

    assert studio.queued_ids() == []
    worker = studio.start_worker()
    assert reconcile_tasks()["requeued"] == 2
    for task_id in ids:
        assert studio.wait_for_status(task_id, "COMPLETED").attempts == 1

    # The running worker rides out another restart: it reconnects and takes the next job.
    studio.redis.restart()
    after = studio.upload(photo)
    assert studio.wait_for_status(after, "COMPLETED").attempts == 1
    assert worker.exited() is None
