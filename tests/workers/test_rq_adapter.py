"""Each RQ behaviour the worker relies on beyond RQ's public API (processes/rq_adapter.py), against a real Redis: an
RQ upgrade that changes one fails here, by name."""

from __future__ import annotations

from typing import Iterator

import pytest
from redis import Redis
from rq import Queue, Retry, Worker
from rq.command import handle_stop_job_command
from rq.job import JobStatus
from rq.rate_limit import RateLimit
from rq.worker.base import BaseWorker

from processes import rq_adapter

pytestmark = pytest.mark.integration


@pytest.fixture
def connection(redis_url: str) -> Iterator[Redis]:
    """An empty Redis database, emptied again afterwards."""
    client = Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


def test_the_installed_rq_has_everything_the_worker_relies_on() -> None:
    from rq_worker import PreloadedWorker, ReusingWorker

    for worker_class in (Worker, PreloadedWorker, ReusingWorker):
        rq_adapter.check(worker_class)


def test_a_missing_piece_stops_the_worker_at_start_and_is_named(monkeypatch) -> None:
    monkeypatch.delattr(BaseWorker, "get_current_job_id")  # where RQ defines it

    with pytest.raises(rq_adapter.IncompatibleRQ, match=r"lacks Worker\.get_current_job_id, which rq_worker.py"):
        rq_adapter.check()


def test_a_job_put_back_at_the_front_keeps_its_slot_and_goes_before_its_accounts_waiting_photos(connection) -> None:
    queue = Queue("photos", connection=connection)
    share = RateLimit("account:1", 1)
    first = queue.enqueue("os.getpid", job_id="first", rate_limit=share)
    second = queue.enqueue("os.getpid", job_id="second", rate_limit=share)
    assert second.get_status() == JobStatus.RATE_LIMITED  # the account's one slot is the first job's
    assert queue.pop_job_id() == "first"  # a worker takes it, then hands it back (a cold shutdown)

    rq_adapter.enqueue_at_front(queue, first)

    assert queue.job_ids == ["first"]
    assert (first.get_status(), second.get_status()) == (JobStatus.QUEUED, JobStatus.RATE_LIMITED)


def test_rqs_public_enqueue_still_makes_a_job_that_holds_its_slot_wait_for_one(connection) -> None:
    # Why enqueue_at_front uses Queue._enqueue_job: RQ's public Queue.enqueue_job sends a rate-limited job through
    # its waiting set, where a job that already holds its account's slot waits for a second one.
    queue = Queue("photos", connection=connection)
    share = RateLimit("account:1", 1)
    first = queue.enqueue("os.getpid", job_id="first", rate_limit=share)
    queue.enqueue("os.getpid", job_id="second", rate_limit=share)
    assert queue.pop_job_id() == "first"

    queue.enqueue_job(first, at_front=True)

    assert (queue.job_ids, first.get_status()) == ([], JobStatus.RATE_LIMITED), (
        "RQ's public Queue.enqueue_job now puts back a job that holds its slot: use it in "
        "processes/rq_adapter.enqueue_at_front instead of Queue._enqueue_job")


def _started_by(worker: Worker, queue: Queue, job_id: str):
    """Start a job as a worker does, up to the point where its process would run it."""
    job = queue.enqueue("os.getpid", job_id=job_id, retry=Retry(max=1))
    queue.pop_job_id()
    worker.prepare_execution(job)
    worker.prepare_job_execution(job)
    return job


def test_a_worker_takes_over_what_a_dead_worker_of_its_name_had_started(connection) -> None:
    queue = Queue("photos", connection=connection)
    dead = Worker([queue], name="slot-0", connection=connection)
    dead.register_birth()
    job = _started_by(dead, queue, "held")
    # Killed here: no death registered, its job STARTED with a heartbeat that has not lapsed.
    successor = Worker([queue], name="slot-0", connection=connection)

    assert rq_adapter.take_over(successor) == ["held"]

    job.refresh()
    assert (job.get_status(), job.retries_left) == (JobStatus.QUEUED, 0)  # RQ's abandoned-job rule: one retry used
    assert queue.job_ids == ["held"]
    # Nothing of the dead worker's execution is left for the job's next run to trip on when it finishes.
    assert job.get_executions() == []
    successor.register_birth()  # RQ lets the name be registered again


def test_a_worker_leaves_alone_a_namesake_that_stopped_cleanly_and_a_stranger(connection) -> None:
    queue = Queue("photos", connection=connection)
    stopped = Worker([queue], name="slot-0", connection=connection)
    stopped.register_birth()
    stopped.register_death()
    stranger = Worker([queue], name="slot-1", connection=connection)
    stranger.register_birth()
    job = _started_by(stranger, queue, "theirs")

    assert rq_adapter.take_over(Worker([queue], name="slot-0", connection=connection)) is None
    assert rq_adapter.take_over(Worker([queue], name="slot-2", connection=connection)) is None
    assert job.get_status() == JobStatus.STARTED


def test_rqs_stop_job_command_reaches_kill_horse_for_the_running_job_only(connection) -> None:
    # ReusingWorker has no horse: its kill_horse stops the job running in its own process (rq_worker.py).
    calls = []

    class Recording(Worker):
        def kill_horse(self, sig=None) -> None:
            calls.append(self.get_current_job_id())

    queue = Queue("photos", connection=connection)
    worker = Recording([queue], name="slot-0", connection=connection)
    worker.prepare_execution(queue.enqueue("os.getpid", job_id="running"))

    handle_stop_job_command(worker, {"job_id": "running"})
    handle_stop_job_command(worker, {"job_id": "another"})

    assert calls == ["running"]


def test_a_redis_restart_between_loading_and_running_a_script_does_not_end_the_worker(
        connection, monkeypatch, caplog) -> None:
    # RQ's registry clean-up runs Lua scripts: redis-py loads a missing one and runs it again, and a Redis that
    # restarted in between (the command retried through the outage) refuses it with NoScriptError.
    from rq_worker import PreloadedWorker

    queue = Queue("photos", connection=connection)
    queue.enqueue("os.getpid", rate_limit=RateLimit("account:1", 1))  # an account's slots: a registry to clean
    worker = PreloadedWorker([queue], connection=connection)
    load = connection.script_load

    def load_then_restart(script: str) -> str:
        sha = load(script)
        connection.script_flush()
        return sha

    monkeypatch.setattr(connection, "script_load", load_then_restart)
    connection.script_flush()

    worker.run_maintenance_tasks()  # no NoScriptError out of the worker's loop

    assert "worker maintenance refused by Redis" in caplog.text
    assert worker.should_run_maintenance_tasks  # tried again at the next turn of the loop
    monkeypatch.setattr(connection, "script_load", load)
    worker.run_maintenance_tasks()
    assert not worker.should_run_maintenance_tasks
