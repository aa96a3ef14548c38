"""The Lambda worker (jobs/lambda_handler.py), invoked with SQS events built from messages received from a real
SQS endpoint (moto's server), in the shape the Lambda service's event source mapping passes them."""

from __future__ import annotations

import json
import time

import pytest

from jobs import lambda_handler, sqs_job
from studio.extensions import db
from studio.models import Task
from studio.queue import get_redis
from studio.tasks import lifecycle
from tests.support.processes import PHOTO
from tests.support.sqs import lambda_event, make_queues
from tests.support.studio import upload

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RETRIES = 2
VISIBILITY = 1  # seconds: a handed-back record can be received again soon
PLENTY_MS = 900_000  # Lambda's longest run: 15 minutes
BAD = "bad.jpeg"


class Context:
    """The part of Lambda's context object the handler reads: the time left, in milliseconds."""

    def __init__(self, remaining_ms: int) -> None:
        self.remaining_ms = remaining_ms

    def get_remaining_time_in_millis(self) -> int:
        return self.remaining_ms


@pytest.fixture
def lambda_app(make_app, s3_endpoint, model_ready, monkeypatch):
    """Return a factory of an app whose tasks go to a fresh SQS queue, bound as the handler's, and the queues."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", s3_endpoint)
    monkeypatch.setattr(lambda_handler, "_app", None)

    def make(fifo: bool = False, **overrides):
        overrides = {"STUDIO_JOB_RETRIES": RETRIES, **overrides}
        queues = make_queues(s3_endpoint, max_receive_count=sqs_job.max_receive_count(overrides),
                             visibility=VISIBILITY, fifo=fifo)
        app = make_app(STUDIO_QUEUE_BACKEND="sqs", STUDIO_SQS_QUEUE_URL=queues.url, **overrides)
        lambda_handler.init(app)
        return app, queues
    return make


def send(app, make_user, make_token, photo: bytes, *filenames: str) -> list[str]:
    """Upload the photo under each filename through the API; return the task ids."""
    headers = make_token(make_user())
    client = app.test_client()
    ids = []
    for filename in filenames:
        response = upload(client, headers, photo, filename=filename)
        assert response.status_code == 202, response.get_data(as_text=True)
        ids.append(response.get_json()["id"])
    return ids


def receive_all(queues, expected: int) -> list[dict]:
    """Receive the expected number of messages (waiting out their visibility), as Lambda's poller would."""
    messages: list[dict] = []
    deadline = time.monotonic() + 30
    while len(messages) < expected and time.monotonic() < deadline:
        messages += queues.receive(count=expected - len(messages))
    assert len(messages) == expected
    return messages


def tasks(app, ids: list[str]) -> dict[str, Task]:
    with app.app_context():
        found = {task_id: db.session.get(Task, task_id) for task_id in ids}
        for task in found.values():
            db.session.expunge(task)
        return found


def failures(result: dict) -> list[str]:
    return [item["itemIdentifier"] for item in result["batchItemFailures"]]


def invoke(queues, messages: list[dict], remaining_ms: int = PLENTY_MS) -> list[str]:
    """Invoke the handler with the messages' event, settle them as Lambda does; return the handed-back ids."""
    result = lambda_handler.handler(lambda_event(messages, queues.arn), Context(remaining_ms))
    queues.settle(messages, result)
    return failures(result)


def test_a_batch_with_one_failing_photo_hands_back_only_that_record(lambda_app, make_user, make_token,
                                                                    photo_bytes):
    app, queues = lambda_app(STUDIO_FAULT_INJECTION=f"fail-every-attempt@{BAD}")
    first, bad, last = send(app, make_user, make_token, photo_bytes(PHOTO), "one.jpeg", BAD, "two.jpeg")
    messages = receive_all(queues, 3)
    by_task = {json.loads(message["Body"])["task_id"]: message["MessageId"] for message in messages}

    assert invoke(queues, messages) == [by_task[bad]]
    found = tasks(app, [first, bad, last])
    assert [found[task_id].status for task_id in (first, bad, last)] == ["COMPLETED", "PROCESSING", "COMPLETED"]

    # SQS delivers the failed one again until its attempts are spent: then FAILED, and dead-lettered.
    for attempt in range(2, RETRIES + 2):
        again = receive_all(queues, 1)
        assert int(again[0]["Attributes"]["ApproximateReceiveCount"]) == attempt
        assert invoke(queues, again) == [again[0]["MessageId"]]
    task = tasks(app, [bad])[bad]
    assert (task.status, task.attempts) == ("FAILED", RETRIES + 1)
    assert task.error.startswith(f"Processing failed after {RETRIES + 1} attempts")
    # One delivery more than the attempts (for a worker that died on the last): nothing runs, it is handed back.
    past = receive_all(queues, 1)
    assert invoke(queues, past) == [past[0]["MessageId"]]
    assert tasks(app, [bad])[bad].attempts == RETRIES + 1
    time.sleep(VISIBILITY + 0.5)
    assert queues.receive(count=10) == []  # the next receive moved it to the dead-letter queue
    assert [body["task_id"] for body in queues.dead_letter_bodies()] == [bad]


def test_a_record_whose_time_runs_out_is_handed_back_before_it_starts(lambda_app, make_user, make_token,
                                                                      photo_bytes):
    app, queues = lambda_app()
    (task_id,) = send(app, make_user, make_token, photo_bytes(PHOTO), "late.jpeg")
    timeout_ms = app.config["STUDIO_JOB_TIMEOUT"] * 1000
    messages = receive_all(queues, 1)

    assert invoke(queues, messages, timeout_ms) == [messages[0]["MessageId"]]
    task = tasks(app, [task_id])[task_id]
    assert (task.status, task.attempts, task.outputs) == ("PENDING", 0, {})

    again = receive_all(queues, 1)
    assert invoke(queues, again) == []
    assert tasks(app, [task_id])[task_id].status == "COMPLETED"


def test_a_record_that_never_fits_the_time_fails_unstarted_on_its_last_delivery(lambda_app, make_user,
                                                                                make_token, photo_bytes):
    app, queues = lambda_app()
    (task_id,) = send(app, make_user, make_token, photo_bytes(PHOTO), "huge.jpeg")
    short_ms = app.config["STUDIO_JOB_TIMEOUT"] * 1000

    for attempt in range(1, RETRIES + 2):
        messages = receive_all(queues, 1)
        handed_back = invoke(queues, messages, short_ms)
        assert handed_back == ([] if attempt == RETRIES + 1 else [messages[0]["MessageId"]])

    task = tasks(app, [task_id])[task_id]
    assert (task.status, task.attempts) == ("FAILED", 0)
    assert "longer than this worker can run" in task.error
    assert queues.count(queues.url) == 0


def die_mid_record(app, task_id: str) -> None:
    """Do what an invocation that dies mid-record (out of memory) has done by then, as sqs_job.handle does it: taken
    the task's lock (a short one here, to lapse soon), counted the deaths before it, marked its attempt and started
    it; the record is neither settled nor handed back (it comes back after the visibility timeout)."""
    lock = sqs_job.RunningLock(get_redis(app), task_id, 1)
    assert lock.acquire()
    lock.count_deaths()
    lock.begin_attempt()
    with app.app_context():
        lifecycle.started(task_id)
        db.session.remove()


def test_a_record_whose_invocation_died_is_run_again(lambda_app, make_user, make_token, photo_bytes):
    app, queues = lambda_app()
    (task_id,) = send(app, make_user, make_token, photo_bytes(PHOTO), "big.jpeg")
    receive_all(queues, 1)
    die_mid_record(app, task_id)

    assert invoke(queues, receive_all(queues, 1)) == []
    task = tasks(app, [task_id])[task_id]
    assert (task.status, task.attempts) == ("COMPLETED", 2)


def test_a_record_whose_invocation_died_twice_fails_with_the_reason_and_is_not_run(lambda_app, make_user,
                                                                                   make_token, photo_bytes):
    app, queues = lambda_app(STUDIO_JOB_RETRIES=3)
    (task_id,) = send(app, make_user, make_token, photo_bytes(PHOTO), "huge.jpeg")
    for _ in range(2):
        receive_all(queues, 1)
        die_mid_record(app, task_id)

    assert invoke(queues, receive_all(queues, 1)) == []  # settled: deleted, not retried
    task = tasks(app, [task_id])[task_id]
    assert (task.status, task.attempts) == ("FAILED", 2)
    assert task.error == ("Processing failed after 2 attempts; its worker was killed each time, most likely because "
                          "the photo needed more memory than a worker has.")
    assert queues.count(queues.url) == 0


def test_on_a_fifo_queue_the_records_after_a_failed_one_are_handed_back_too(lambda_app, make_user, make_token,
                                                                            photo_bytes):
    app, queues = lambda_app(fifo=True, STUDIO_FAULT_INJECTION=f"fail-every-attempt@{BAD}")
    first, bad, last = send(app, make_user, make_token, photo_bytes(PHOTO), "one.jpeg", BAD, "two.jpeg")
    messages = receive_all(queues, 3)
    assert [json.loads(message["Body"])["task_id"] for message in messages] == [first, bad, last]

    assert invoke(queues, messages) == [messages[1]["MessageId"], messages[2]["MessageId"]]
    found = tasks(app, [first, bad, last])
    assert [found[task_id].status for task_id in (first, bad, last)] == ["COMPLETED", "PROCESSING", "PENDING"]


def test_the_models_are_loaded_once_per_execution_environment(lambda_app, monkeypatch):
    import ml.sessions

    calls = []
    monkeypatch.setattr(ml.sessions, "preload", lambda names, model_dir: calls.append(names))
    monkeypatch.setattr(lambda_handler, "_app", None)
    app, _ = lambda_app()
    assert lambda_handler.init() is app
    assert lambda_handler.init() is app
    assert len(calls) == 1 and calls[0]
