"""Periodic jobs: definitions are valid, and reconciling with rq-scheduler (on real Redis) is idempotent."""

from __future__ import annotations

from datetime import timedelta

import pytest
from rq import Queue
from rq.job import Job
from rq.utils import import_attribute
from rq_scheduler import Scheduler

from jobs.scheduled import PERIODIC_JOBS, PeriodicJob, reconcile_schedule

pytestmark = pytest.mark.integration

EVERY_MINUTE = PeriodicJob(id="periodic-every-minute", func="os.getcwd", description="test", interval_seconds=60)
NIGHTLY = PeriodicJob(id="periodic-nightly", func="os.getpid", description="test", cron="0 3 * * *")


def scheduled_times(scheduler: Scheduler) -> dict[str, float]:
    """Return the scheduler's job ids with their next run times."""
    return {job.id: when.timestamp() for job, when in scheduler.get_jobs(with_times=True)}


@pytest.mark.parametrize("periodic", PERIODIC_JOBS, ids=lambda periodic: periodic.id)
def test_every_periodic_job_names_an_importable_function(periodic: PeriodicJob) -> None:
    assert callable(import_attribute(periodic.func))


def test_periodic_job_ids_are_unique() -> None:
    assert len({periodic.id for periodic in PERIODIC_JOBS}) == len(PERIODIC_JOBS)


def test_a_periodic_job_needs_exactly_one_schedule() -> None:
    with pytest.raises(ValueError):
        PeriodicJob(id="periodic-both", func="os.getcwd", description="", interval_seconds=5, cron="* * * * *")
    with pytest.raises(ValueError):
        PeriodicJob(id="periodic-neither", func="os.getcwd", description="")
    with pytest.raises(ValueError):
        PeriodicJob(id="unprefixed", func="os.getcwd", description="", interval_seconds=5)


def test_reconcile_schedules_missing_jobs_once(redis_connection) -> None:
    scheduler = Scheduler(connection=redis_connection)
    reconcile_schedule(scheduler, (EVERY_MINUTE, NIGHTLY))
    first = scheduled_times(scheduler)
    assert set(first) == {EVERY_MINUTE.id, NIGHTLY.id}
    assert Job.fetch(NIGHTLY.id, connection=redis_connection).meta["cron_string"] == "0 3 * * *"

    reconcile_schedule(scheduler, (EVERY_MINUTE, NIGHTLY))

    # Same jobs, same next run times: a restart neither repeats nor postpones them.
    assert scheduled_times(scheduler) == first


def test_reconcile_cancels_jobs_no_longer_defined_and_keeps_others(redis_connection) -> None:
    scheduler = Scheduler(connection=redis_connection)
    reconcile_schedule(scheduler, (EVERY_MINUTE, NIGHTLY))
    one_off = scheduler.enqueue_in(timedelta(hours=1), "os.getcwd")

    reconcile_schedule(scheduler, (NIGHTLY,))

    assert set(scheduled_times(scheduler)) == {NIGHTLY.id, one_off.id}
    assert not Job.exists(EVERY_MINUTE.id, connection=redis_connection)


def test_reconcile_reschedules_a_changed_job(redis_connection) -> None:
    scheduler = Scheduler(connection=redis_connection)
    reconcile_schedule(scheduler, (EVERY_MINUTE,))
    hourly = PeriodicJob(id=EVERY_MINUTE.id, func=EVERY_MINUTE.func, description="test", interval_seconds=3600)

    reconcile_schedule(scheduler, (hourly,))

    assert set(scheduled_times(scheduler)) == {hourly.id}
    assert Job.fetch(hourly.id, connection=redis_connection).meta["interval"] == 3600


def test_the_scheduler_enqueues_a_due_interval_job_and_keeps_it_scheduled(redis_connection) -> None:
    scheduler = Scheduler(connection=redis_connection, queue_name="default")
    reconcile_schedule(scheduler, (EVERY_MINUTE,))

    scheduler.run(burst=True)

    assert Queue("default", connection=redis_connection).job_ids == [EVERY_MINUTE.id]
    assert EVERY_MINUTE.id in scheduler
