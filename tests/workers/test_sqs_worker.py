"""STUDIO_QUEUE_BACKEND=sqs: real `python rq_worker.py` processes consuming a real SQS endpoint (moto's server).

The web app sends one message per task to a FIFO queue with a dead-letter queue; the workers long-poll it, extend
a message's visibility while its job runs and delete it once the task's final state is committed. What both
backends must do alike (a batch, crashes, timeouts, shutdown, cancel, duplicates) is tested on each in
test_worker_crashes.py; here is only what SQS alone has: the dead-letter queue, the visibility heartbeat, the
reconciler's re-send of a lost message, and the RQ queues a worker still serves when given them.
"""

from __future__ import annotations

import pytest
from redis import Redis

from jobs.maintenance import reconcile_tasks
from tests.support.processes import wait_until
from tests.support.sqs import VISIBILITY
from tests.support.studio import JOB_RETRIES

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_photo_that_always_fails_ends_in_the_dead_letter_queue_and_failed(make_sqs_studio, photo):
    studio = make_sqs_studio()
    queues = studio.queues
    studio.start_worker(STUDIO_FAULT_INJECTION="fail-every-attempt")
    task_id = studio.upload(photo)

    task = studio.wait_for_status(task_id, "FAILED", "COMPLETED")
    assert task.status == "FAILED"
    assert task.attempts == JOB_RETRIES + 1
    assert task.error.startswith(f"Processing failed after {JOB_RETRIES + 1} attempts; the error was logged as "
                                 "error-")
    wait_until(lambda: [body["task_id"] for body in queues.dead_letter_bodies()] == [task_id],
               "the message is in the dead-letter queue", diagnostics=studio.logs)
    assert queues.count(queues.url) == 0
    assert studio.result_files() == []
    assert studio.usage_counts() == (1, 0)


def test_a_worker_killed_on_the_last_attempt_leaves_its_message_to_the_dead_letter_queue(make_sqs_studio, photo):
    studio = make_sqs_studio(STUDIO_JOB_RETRIES=0)
    first = studio.start_worker(STUDIO_FAULT_INJECTION="sleep=600")
    task_id = studio.upload(photo)
    wait_until(lambda: f"task {task_id}: fault injection: sleeping" in first.output(), "the job sleeps",
               diagnostics=first.output)

    first.kill()
    second = studio.start_worker()

    # The redrive policy allows one delivery more than the attempts: the worker that gets it fails the task.
    assert studio.wait_for_status(task_id, "FAILED").attempts == 1
    wait_until(lambda: [body["task_id"] for body in studio.queues.dead_letter_bodies()] == [task_id],
               "the message is in the dead-letter queue", diagnostics=studio.logs)
    assert "its consumer died on its last attempt" in second.output()


def test_a_running_jobs_message_stays_hidden_past_its_visibility_timeout(make_sqs_studio, photo):
    studio = make_sqs_studio()
    queues = studio.queues
    worker = studio.start_worker(STUDIO_FAULT_INJECTION="sleep=600")
    task_id = studio.upload(photo)
    wait_until(lambda: f"task {task_id}: fault injection: sleeping" in worker.output(), "the job sleeps",
               diagnostics=worker.output)

    # Longer than the visibility timeout: the heartbeat thread keeps the message hidden while the job runs.
    assert queues.client.receive_message(QueueUrl=queues.url, WaitTimeSeconds=VISIBILITY + 2).get("Messages") is None
    assert queues.count(queues.url) == 1
    assert studio.status(task_id) == "PROCESSING"


def test_the_reconciler_sends_again_only_the_message_that_was_lost(make_sqs_studio, photo):
    studio = make_sqs_studio()
    queues = studio.queues
    kept, lost = studio.upload(photo), studio.upload(photo)
    # The second upload's message never reached SQS (the queue purged, or its send failed): no marker says sent.
    queues.client.purge_queue(QueueUrl=queues.url)
    queues.send_task(kept, group="kept")
    Redis.from_url(studio.redis.url).delete(f"studio:sqs:sent:{lost}")

    assert reconcile_tasks()["requeued"] == 1
    assert reconcile_tasks()["requeued"] == 0

    studio.start_worker()
    for task_id in (kept, lost):
        assert studio.wait_for_status(task_id, "COMPLETED", "FAILED").status == "COMPLETED"
    wait_until(lambda: queues.count(queues.url) == 0, "every message is deleted", diagnostics=studio.logs)


def test_a_worker_given_queues_serves_them_on_rq_for_the_periodic_jobs_and_webhooks(make_sqs_studio):
    studio = make_sqs_studio()
    queue = studio.app.config["STUDIO_QUEUE"]
    worker = studio.start_worker(queue, studio.app.config["STUDIO_WEBHOOK_QUEUE"])
    assert "Listening on SQS" not in worker.output()
    assert f"Listening on {queue}" in worker.output()


def test_an_sqs_worker_starts_afresh_after_so_many_jobs_as_an_rq_worker_does(make_sqs_studio, photo):
    studio = make_sqs_studio()
    worker = studio.start_worker(STUDIO_WORKER_JOBS_PER_PROCESS="2")
    ids = [studio.upload(photo) for _ in range(3)]

    tasks = [studio.wait_for_status(task_id, "COMPLETED") for task_id in ids]

    assert [task.attempts for task in tasks] == [1, 1, 1]
    log = worker.log.read_text()
    assert "ran 2 jobs in this process (STUDIO_WORKER_JOBS_PER_PROCESS): starting afresh" in log
    assert log.count("Listening on SQS queue") == 2
    assert worker.exited() is None  # the same process (pid) all along, as its supervisor sees it
    wait_until(lambda: studio.backlog() == 0, "every message is deleted", diagnostics=studio.logs)
