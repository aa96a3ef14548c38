"""STUDIO_QUEUE_BACKEND=sqs: real `python rq_worker.py` processes consuming a real SQS endpoint (moto's server).

The web app sends one message per task to a FIFO queue with a dead-letter queue; the workers long-poll it, extend
a message's visibility while its job runs and delete it once the task's final state is committed.
"""

from __future__ import annotations

import json

import pytest
from redis import Redis
from sqlalchemy import func, select

from jobs.maintenance import reconcile_tasks
from studio.extensions import db
from studio.models import DailyUsage
from tests.support.processes import wait_until
from tests.support.sqs import make_queues

pytestmark = [pytest.mark.integration, pytest.mark.slow]

VISIBILITY = 3  # seconds: a killed worker's message comes back this soon
RETRIES = 2


@pytest.fixture
def sqs_studio(make_studio, s3_endpoint, monkeypatch):
    """Return a factory of a Studio whose tasks go through SQS, and its queues."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", s3_endpoint)

    def make(**overrides):
        queues = make_queues(s3_endpoint, max_receive_count=RETRIES + 1, visibility=VISIBILITY)
        studio = make_studio(STUDIO_QUEUE_BACKEND="sqs", STUDIO_SQS_QUEUE_URL=queues.url, STUDIO_JOB_RETRIES=RETRIES,
                             **overrides)
        studio.sqs_env = queues.settings(s3_endpoint, VISIBILITY)
        return studio, queues
    return make


def usage_counts(studio) -> tuple[int, int]:
    """Return the tasks and completed tasks counted in the usage, all accounts and days."""
    with studio.app.app_context():
        row = db.session.execute(select(func.coalesce(func.sum(DailyUsage.tasks), 0),
                                        func.coalesce(func.sum(DailyUsage.completed_tasks), 0))).one()
        return int(row[0]), int(row[1])


def test_a_batch_of_photos_completes_through_sqs(sqs_studio, photo):
    studio, queues = sqs_studio()
    task_ids = [studio.upload(photo) for _ in range(3)]
    assert queues.count(queues.url) == 3
    assert studio.queued_ids() == []  # nothing went to RQ

    studio.start_worker(**studio.sqs_env)

    for task_id in task_ids:
        task = studio.wait_for_status(task_id, "COMPLETED", "FAILED")
        assert (task.status, task.attempts) == ("COMPLETED", 1), task.error
    assert sorted(path.name for path in studio.result_files()) == sorted(f"{task_id}.png" for task_id in task_ids)
    wait_until(lambda: queues.count(queues.url) == 0, "every message is deleted", diagnostics=studio.logs)
    assert usage_counts(studio) == (3, 3)


def test_a_worker_killed_mid_job_leaves_a_message_that_completes_its_task_exactly_once(sqs_studio, photo):
    studio, queues = sqs_studio()
    first = studio.start_worker(STUDIO_FAULT_INJECTION="sleep=600", **studio.sqs_env)
    task_id = studio.upload(photo)
    studio.wait_for_status(task_id, "PROCESSING")
    wait_until(lambda: f"task {task_id}: fault injection: sleeping" in first.output(), "the job sleeps",
               diagnostics=first.output)
    # Longer than the visibility timeout: the heartbeat thread keeps the message hidden while the job runs.
    assert queues.client.receive_message(QueueUrl=queues.url, WaitTimeSeconds=VISIBILITY + 2).get("Messages") is None

    first.kill()
    studio.start_worker(**studio.sqs_env)

    task = studio.wait_for_status(task_id, "COMPLETED", "FAILED")
    assert (task.status, task.attempts, task.error) == ("COMPLETED", 2, None)
    assert [path.name for path in studio.result_files()] == [f"{task_id}.png"]
    wait_until(lambda: queues.count(queues.url) == 0, "the message is deleted", diagnostics=studio.logs)
    assert usage_counts(studio) == (1, 1)


def test_a_photo_that_always_fails_ends_in_the_dead_letter_queue_and_failed(sqs_studio, photo):
    studio, queues = sqs_studio()
    studio.start_worker(STUDIO_FAULT_INJECTION="fail-every-attempt", **studio.sqs_env)
    task_id = studio.upload(photo)

    task = studio.wait_for_status(task_id, "FAILED", "COMPLETED")
    assert task.status == "FAILED"
    assert task.attempts == RETRIES + 1
    assert task.error.startswith(f"Processing failed after {RETRIES + 1} attempts; the error was logged as error-")
    wait_until(lambda: [body["task_id"] for body in queues.dead_letter_bodies()] == [task_id],
               "the message is in the dead-letter queue", diagnostics=studio.logs)
    assert queues.count(queues.url) == 0
    assert studio.result_files() == []
    assert usage_counts(studio) == (1, 0)


def test_a_duplicate_message_of_a_finished_task_does_nothing(sqs_studio, photo):
    studio, queues = sqs_studio()
    worker = studio.start_worker(**studio.sqs_env)
    task_id = studio.upload(photo)
    done = studio.wait_for_status(task_id, "COMPLETED")
    wait_until(lambda: queues.count(queues.url) == 0, "the message is deleted", diagnostics=studio.logs)

    queues.client.send_message(QueueUrl=queues.url, MessageBody=json.dumps({"task_id": task_id, "attempt": 0}),
                               MessageGroupId="duplicates", MessageDeduplicationId="a-second-delivery")
    wait_until(lambda: queues.count(queues.url) == 0, "the duplicate is consumed and deleted",
               diagnostics=studio.logs)

    task = studio.task(task_id)
    assert (task.status, task.attempts, task.finished_at, task.outputs) == (
        "COMPLETED", 1, done.finished_at, done.outputs)
    assert [path.name for path in studio.result_files()] == [f"{task_id}.png"]
    assert usage_counts(studio) == (1, 1)
    assert worker.exited() is None


def test_the_reconciler_sends_again_only_the_message_that_was_lost(sqs_studio, photo):
    studio, queues = sqs_studio()
    kept, lost = studio.upload(photo), studio.upload(photo)
    # The second upload's message never reached SQS (the queue purged, or its send failed): no marker says sent.
    queues.client.purge_queue(QueueUrl=queues.url)
    queues.client.send_message(QueueUrl=queues.url, MessageBody=json.dumps({"task_id": kept, "attempt": 0}),
                               MessageGroupId="kept", MessageDeduplicationId="kept")
    Redis.from_url(studio.redis.url).delete(f"studio:sqs:sent:{lost}")

    assert reconcile_tasks()["requeued"] == 1
    assert reconcile_tasks()["requeued"] == 0

    studio.start_worker(**studio.sqs_env)
    for task_id in (kept, lost):
        assert studio.wait_for_status(task_id, "COMPLETED", "FAILED").status == "COMPLETED"
    wait_until(lambda: queues.count(queues.url) == 0, "every message is deleted", diagnostics=studio.logs)


def test_a_running_task_cancelled_stops_and_its_message_is_deleted(sqs_studio, photo):
    studio, queues = sqs_studio()
    worker = studio.start_worker(STUDIO_FAULT_INJECTION="sleep=3", **studio.sqs_env)
    task_id = studio.upload(photo)
    wait_until(lambda: f"task {task_id}: fault injection: sleeping" in worker.output(), "the job sleeps",
               diagnostics=worker.output)

    response = studio.client.post(f"/api/v1/tasks/{task_id}/cancel", headers=studio.headers)
    assert response.status_code == 200, response.get_data(as_text=True)

    wait_until(lambda: queues.count(queues.url) == 0, "the message is deleted", diagnostics=studio.logs)
    wait_until(lambda: f"task {task_id}: cancelled or deleted while processing" in worker.output(),
               "the job stops at its next progress report", diagnostics=worker.output)
    assert studio.status(task_id) == "CANCELLED"
    assert studio.result_files() == []


def test_a_photo_past_its_timeout_fails_with_the_reason_and_is_not_retried(sqs_studio, photo):
    studio, queues = sqs_studio(STUDIO_JOB_TIMEOUT=2)
    studio.start_worker(STUDIO_FAULT_INJECTION="sleep=600", **studio.sqs_env)
    task_id = studio.upload(photo)

    task = studio.wait_for_status(task_id, "FAILED", "COMPLETED")
    assert (task.status, task.attempts) == ("FAILED", 1)
    assert task.error == "Processing failed after 1 attempt; it took longer than 2 seconds."
    wait_until(lambda: queues.count(queues.url) == 0, "the message is deleted", diagnostics=studio.logs)
    assert queues.dead_letter_bodies() == []


def test_a_worker_given_queues_serves_them_on_rq_for_the_periodic_jobs_and_webhooks(sqs_studio):
    studio, _ = sqs_studio()
    queue = studio.app.config["STUDIO_QUEUE"]
    worker = studio.start_worker(queue, studio.app.config["STUDIO_WEBHOOK_QUEUE"], **studio.sqs_env)
    assert "Listening on SQS" not in worker.output()
    assert f"Listening on {queue}" in worker.output()
