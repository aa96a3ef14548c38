"""A Redis outage ends neither the worker nor the periodic jobs, whatever they were doing when it began."""

from __future__ import annotations

import multiprocessing
import time

import pytest
from redis import Redis
from rq_scheduler import Scheduler

from jobs.scheduled import PERIODIC_JOBS, SCHEDULER_INTERVAL_SECONDS, run_scheduler
from studio.queue import outage_retry
from tests.support.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PERIODIC_IDS = sorted(periodic.id for periodic in PERIODIC_JOBS)


def test_the_retry_policy_covers_the_outage_it_is_asked_for():
    for seconds in (1, 30, 300):
        retry = outage_retry(seconds)
        waited = sum(retry._backoff.compute(failure) for failure in range(1, retry.get_retries() + 1))
        assert seconds <= waited < seconds + 2.5  # one more backoff step (at most 2 s) past the outage
    assert outage_retry(0).get_retries() == 0


def test_a_worker_rides_out_a_redis_outage_in_the_middle_of_a_job(make_studio, photo):
    studio = make_studio()
    # The worker renews RQ's heartbeats every second here, so it talks to Redis while Redis is gone.
    worker = studio.start_worker(STUDIO_FAULT_INJECTION="sleep=3")
    task_id = studio.upload(photo)
    studio.wait_for_status(task_id, "PROCESSING")

    studio.redis.stop()
    time.sleep(6)  # the job finishes and its horse and worker do their bookkeeping, all without Redis
    assert worker.exited() is None, worker.output()
    studio.redis.start()  # empty: whatever RQ held is gone, the database still knows the task

    assert studio.wait_for_status(task_id, "COMPLETED").attempts == 1
    after = studio.upload(photo)
    assert studio.wait_for_status(after, "COMPLETED").attempts == 1
    assert worker.exited() is None


def test_the_periodic_reconciler_comes_back_after_redis_lost_it_and_recovers_the_lost_upload(make_studio, photo):
    studio = make_studio()
    worker = studio.start_worker("--with-scheduler", STUDIO_PENDING_GRACE_SECONDS=0)
    redis = Redis.from_url(studio.redis.url)

    def scheduled() -> list[str]:
        return sorted(job.id for job in Scheduler(connection=redis).get_jobs())

    wait_until(lambda: scheduled() == PERIODIC_IDS, "the periodic jobs are scheduled", diagnostics=studio.logs)

    studio.redis.stop()
    task_id = studio.upload(photo)  # accepted and recorded; no job anywhere
    studio.redis.start()  # empty: the queue and the periodic jobs are gone
    redis.connection_pool.disconnect()

    # Nobody runs the reconciler by hand: the scheduler puts its periodic job back and that job finds the task.
    assert studio.wait_for_status(task_id, "COMPLETED").attempts == 1
    assert scheduled() == PERIODIC_IDS
    assert worker.exited() is None


def test_the_scheduler_outlives_an_outage_longer_than_its_retries_and_puts_its_jobs_back(redis_server):
    # A one-second retry budget against an outage longer than a round: rq-scheduler's loop meets it and ends, and
    # run_scheduler starts it again.
    process = multiprocessing.get_context("fork").Process(
        target=run_scheduler, args=(redis_server.url, "studio-test", 1), daemon=True)
    process.start()
    redis = Redis.from_url(redis_server.url)

    def scheduled() -> list[str]:
        return sorted(job.id for job in Scheduler(connection=redis).get_jobs())

    try:
        wait_until(lambda: scheduled() == PERIODIC_IDS, "the periodic jobs are scheduled")
        redis_server.stop()
        time.sleep(SCHEDULER_INTERVAL_SECONDS + 2)
        redis_server.start()  # empty
        redis.connection_pool.disconnect()
        assert scheduled() == []
        wait_until(lambda: scheduled() == PERIODIC_IDS, "the periodic jobs are back",
                   timeout=3 * SCHEDULER_INTERVAL_SECONDS)
        assert process.is_alive()
    finally:
        process.terminate()
        process.join(10)
