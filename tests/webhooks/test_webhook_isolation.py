"""One account's slow webhook receiver does not delay anyone else's: per-account fairness on the webhook queue, a
connect timeout of its own, and a circuit breaker per receiving host, shared through Redis, with real receivers
that never answer or never accept, a real RQ worker and Redis."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from typing import Callable, Iterator

import pytest
import requests
from redis import Redis
from rq import Queue, SimpleWorker
from rq.job import Job, JobStatus

from studio import queue
from studio.breaker import Breaker
from studio.extensions import db
from studio.models import Task, User, utcnow
from studio.outbound import check_url, post
from studio.queue import webhook_job_id
from tests.support.studio import load_task, run_worker
from tests.support.receiver import NeverAccepting, Receiver

pytestmark = pytest.mark.integration

HUNG = 6


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    made: list[Receiver] = []

    def make(*args, **kwargs) -> Receiver:
        made.append(Receiver(*args, **kwargs))
        return made[-1]

    yield make
    for receiver in made:
        receiver.close()


@pytest.fixture
def never_accepting() -> Iterator[NeverAccepting]:
    server = NeverAccepting()
    yield server
    server.close()


def _finished_tasks(app, user: User, url: str, count: int = 1) -> list[str]:
    """Store finished tasks whose webhook to `url` is due and queue their deliveries, in this order."""
    ids = []
    with app.app_context():
        for number in range(count):
            task = Task(user_id=user.id, model="u2netp", input_key=f"in/{number}", input_content_type="image/png",
                        status="COMPLETED", progress=100, finished_at=utcnow(), webhook_url=url,
                        webhook_status="PENDING")
            db.session.add(task)
            db.session.commit()
            assert queue.enqueue_webhook(task)
            ids.append(task.id)
    return ids


def _hook_app(make_app, **settings):
    return make_app(**{"STUDIO_WEBHOOK_ALLOW_PRIVATE": True, "STUDIO_WEBHOOK_RETRIES": 0,
                       "STUDIO_WEBHOOK_TIMEOUT_SECONDS": 1, **settings})


def test_another_accounts_webhook_is_delivered_while_six_hang(make_app, make_user, receivers):
    # Breaker out of the way: this is the queue's fairness alone.
    app = _hook_app(make_app, STUDIO_WEBHOOK_BREAKER_FAILURES=100)
    events: list[tuple[str, str]] = []
    hanging, prompt = receivers("A", events), receivers("B", events)
    hanging.silent = True
    hung = _finished_tasks(app, make_user(), hanging.url, HUNG)
    [single] = _finished_tasks(app, make_user(), prompt.url)

    run_worker(app, [app.config["STUDIO_WEBHOOK_QUEUE"]])

    # A's first delivery holds A's one slot; B's is next, before A's second call (one queue without the share would
    # keep it waiting for all six calls to time out).
    calls_of_a = [index for index, event in enumerate(events) if event == ("call", "A")]
    assert len(calls_of_a) == HUNG
    assert events.index(("call", "B")) < calls_of_a[1], events
    assert load_task(app, single).webhook_status == "DELIVERED"
    for task_id in hung:
        task = load_task(app, task_id)
        assert (task.webhook_status, task.webhook_response) == ("FAILED", "no answer in time")


def test_another_accounts_webhook_is_delivered_while_six_cannot_connect(
        make_app, make_user, receivers, never_accepting):
    app = _hook_app(make_app, STUDIO_WEBHOOK_BREAKER_FAILURES=100, STUDIO_WEBHOOK_CONNECT_TIMEOUT_SECONDS=1)
    hung = _finished_tasks(app, make_user(), never_accepting.url, HUNG)
    [single] = _finished_tasks(app, make_user(), receivers().url)

    run_worker(app, [app.config["STUDIO_WEBHOOK_QUEUE"]])

    delivered = load_task(app, single)
    assert delivered.webhook_status == "DELIVERED"
    given_up = sorted(load_task(app, task_id).updated_at for task_id in hung)
    assert all(load_task(app, task_id).webhook_response == "no connection in time" for task_id in hung)
    # Recorded by the same worker, one after the other: B's delivery came right after A's first attempt.
    assert given_up[0] < delivered.webhook_delivered_at < given_up[1]


def test_an_accounts_deliveries_wait_in_rqs_concurrency_registry_beyond_its_share(make_app, make_user, receivers):
    app = _hook_app(make_app, STUDIO_WEBHOOK_ACCOUNT_CONCURRENCY=2)
    waiting = _finished_tasks(app, make_user(), receivers().url, 4)
    with app.app_context():
        statuses = [Job.fetch(webhook_job_id(task_id), connection=queue.get_redis()).get_status()
                    for task_id in waiting]
    assert statuses == [JobStatus.QUEUED] * 2 + [JobStatus.RATE_LIMITED] * 2


def test_a_host_that_never_accepts_is_given_up_on_after_the_connect_timeout(never_accepting, receivers):
    silent = receivers()
    silent.silent = True
    ended: list[str] = []

    def call_the_silent_one() -> None:
        with pytest.raises(requests.ReadTimeout):
            post(check_url(silent.url, allow_private=True), b"{}", {}, timeout=5, allow_private=True)
        ended.append("no answer from the one that accepts")

    other = threading.Thread(target=call_the_silent_one)
    other.start()
    # Thirty seconds for the whole call, one to connect: it ends first, well before the other's five.
    with pytest.raises(requests.ConnectTimeout):
        post(check_url(never_accepting.url, allow_private=True), b"{}", {}, timeout=30, connect_timeout=1,
             allow_private=True)
    ended.append("no connection to the one that never accepts")
    other.join()
    assert ended == ["no connection to the one that never accepts", "no answer from the one that accepts"]


def test_a_delivery_to_a_host_that_never_accepts_says_so(make_app, make_user, never_accepting):
    app = _hook_app(make_app, STUDIO_WEBHOOK_TIMEOUT_SECONDS=20, STUDIO_WEBHOOK_CONNECT_TIMEOUT_SECONDS=1)
    [task_id] = _finished_tasks(app, make_user(), never_accepting.url)

    run_worker(app, [app.config["STUDIO_WEBHOOK_QUEUE"]])

    task = load_task(app, task_id)
    assert (task.webhook_status, task.webhook_attempts, task.webhook_response) == \
        ("FAILED", 1, "no connection in time")


def _run_when_due(app, task_ids: list[str]) -> None:
    """Run a burst worker with RQ's scheduler, which first moves the due scheduled jobs onto the queue, until none of
    the deliveries is scheduled any more."""
    name = app.config["STUDIO_WEBHOOK_QUEUE"]
    connection = Redis.from_url(app.config["REDIS_URL"])
    registry = Queue(name, connection=connection).scheduled_job_registry
    while set(registry.get_job_ids()) & {webhook_job_id(task_id) for task_id in task_ids}:
        time.sleep(0.2)
        SimpleWorker([name], connection=connection).work(burst=True, with_scheduler=True)


def test_the_breaker_opens_after_failures_in_a_row_defers_without_calling_then_a_probe_closes_it(
        make_app, make_user, receivers):
    app = _hook_app(make_app, STUDIO_WEBHOOK_BREAKER_FAILURES=2, STUDIO_WEBHOOK_BREAKER_COOLDOWN_SECONDS=1,
                    STUDIO_WEBHOOK_RETRIES=1, STUDIO_WEBHOOK_RETRY_INTERVALS=[0], STUDIO_WEBHOOK_ACCOUNT_CONCURRENCY=10)
    receiver = receivers()
    receiver.silent = True
    deliveries = _finished_tasks(app, make_user(), receiver.url, 3)

    run_worker(app, [app.config["STUDIO_WEBHOOK_QUEUE"]])

    # Two calls without an answer open the breaker; then neither their retries nor the third delivery call the
    # host: they wait for the cool-down, and that wait is not an attempt.
    assert len(receiver.calls) == 2
    tasks = [load_task(app, task_id) for task_id in deliveries]
    assert [task.webhook_attempts for task in tasks] == [1, 1, 0]
    assert all(task.webhook_status == "PENDING" and task.webhook_response.startswith("waiting: 127.0.0.1")
               for task in tasks), [task.webhook_response for task in tasks]
    with app.app_context():
        jobs = [Job.fetch(webhook_job_id(task_id), connection=queue.get_redis()) for task_id in deliveries]
        assert [job.get_status() for job in jobs] == [JobStatus.SCHEDULED] * 3
        assert [job.retries_left for job in jobs] == [0, 0, 1]

    receiver.silent = False  # the host is back
    _run_when_due(app, deliveries)

    # After the cool-down one call probes the host; its answer closes the breaker and the others go through.
    tasks = [load_task(app, task_id) for task_id in deliveries]
    assert [task.webhook_status for task in tasks] == ["DELIVERED"] * 3
    assert [task.webhook_attempts for task in tasks] == [2, 2, 1]
    assert len(receiver.calls) == 5


def _breaker(redis_url: str, cooldown: float = 0.5) -> Breaker:
    # Each its own connection, as in separate worker processes.
    return Breaker(Redis.from_url(redis_url), "webhook:hooks.example.com:443", threshold=2,
                   cooldown_seconds=cooldown, probe_seconds=30)


def test_the_breaker_state_is_shared_and_lets_exactly_one_probe_through(make_app):
    app = make_app()
    workers = [_breaker(app.config["REDIS_URL"]) for _ in range(4)]
    assert workers[0].failed() is False
    assert workers[1].admit() is None  # one failure: still closed
    workers[1].answered()
    assert workers[1].failed() is False  # the count started again after the answer
    assert workers[2].failed() is True  # two in a row, counted by different processes: open
    assert all(worker.admit() > 0 for worker in workers)

    time.sleep(0.6)
    verdicts = [worker.admit() for worker in workers]
    assert verdicts.count(None) == 1, verdicts  # exactly one probe, the others wait for it
    assert workers[verdicts.index(None)].failed() is True  # a failed probe opens it again at once
    assert all(worker.admit() > 0 for worker in workers)

    time.sleep(0.6)
    verdicts = [worker.admit() for worker in workers]
    workers[verdicts.index(None)].answered()
    assert [worker.admit() for worker in workers] == [None] * 4


def test_the_webhook_worker_runs_the_deliveries_that_wait(make_app, make_user, receivers, tmp_path):
    app = _hook_app(make_app, STUDIO_WEBHOOK_RETRIES=1, STUDIO_WEBHOOK_RETRY_INTERVALS=[1])
    receiver = receivers()
    receiver.answers = [500, 204]
    [task_id] = _finished_tasks(app, make_user(), receiver.url)
    config = app.config
    environment = {**os.environ, "SECRET_KEY": "test-secret", "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
                   "REDIS_URL": config["REDIS_URL"], "STUDIO_WEBHOOK_QUEUE": config["STUDIO_WEBHOOK_QUEUE"],
                   "STUDIO_WEBHOOK_ALLOW_PRIVATE": "true", "STUDIO_WEBHOOK_RETRIES": "1",
                   "STUDIO_WEBHOOK_RETRY_INTERVALS": "1", "STUDIO_STORAGE_DIR": str(tmp_path)}
    # The webhook worker as deployed: its queue only, no --with-scheduler.
    with (tmp_path / "worker.log").open("w") as log:
        worker = subprocess.Popen([sys.executable, "rq_worker.py", config["STUDIO_WEBHOOK_QUEUE"]], env=environment,
                                  stdout=log, stderr=subprocess.STDOUT)
    try:
        for _ in range(300):
            if load_task(app, task_id).webhook_status != "PENDING" or worker.poll() is not None:
                break
            time.sleep(0.2)
    finally:
        worker.terminate()
        worker.wait(30)
    assert len(receiver.calls) == 2, (tmp_path / "worker.log").read_text()[-2000:]
    assert load_task(app, task_id).webhook_status == "DELIVERED"
