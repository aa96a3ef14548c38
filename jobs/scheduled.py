"""Periodic jobs as data, with deterministic ids, reconciled with rq-scheduler on every round of the scheduler.

Reconciling makes Redis match PERIODIC_JOBS: jobs no longer defined (or defined differently) are cancelled,
missing ones are scheduled, and jobs already scheduled as defined keep their next run time, so restarting a
worker neither postpones nor repeats them, and a Redis that lost its data gets them back within one round.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime, timezone

from redis.exceptions import RedisError
from rq.job import Job
from rq_scheduler import Scheduler

from studio.queue import outage_tolerant_redis

logger = logging.getLogger(__name__)

# Every periodic job's id starts with this; reconciling never touches other scheduled jobs (one-off delays).
ID_PREFIX = "periodic-"
SCHEDULER_INTERVAL_SECONDS = 10


@dataclass(frozen=True)
class PeriodicJob:
    """A function the scheduler enqueues every interval_seconds, or on a cron schedule.

    rq-scheduler 0.14 reads cron strings on the server's local clock (UTC in the containers), whatever its
    use_local_timezone says; prefer intervals.
    """

    id: str
    func: str
    description: str
    interval_seconds: int | None = None
    cron: str | None = None
    timeout: int | None = None

    def __post_init__(self) -> None:
        if not self.id.startswith(ID_PREFIX):
            raise ValueError(f"periodic job id {self.id!r} must start with {ID_PREFIX!r}")
        if (self.interval_seconds is None) == (self.cron is None):
            raise ValueError(f"periodic job {self.id!r} needs exactly one of interval_seconds and cron")

    def matches(self, job: Job) -> bool:
        """Return True when the scheduled RQ job is this definition, unchanged."""
        return (
            job.func_name == self.func
            and job.meta.get("interval") == self.interval_seconds
            and job.meta.get("cron_string") == self.cron
            and job.timeout == self.timeout
        )

    def schedule(self, scheduler: Scheduler) -> Job:
        """Add this job to the scheduler, first run now (interval) or at the next cron time."""
        if self.cron is not None:
            return scheduler.cron(
                self.cron, self.func, id=self.id, description=self.description, timeout=self.timeout
            )
        return scheduler.schedule(
            datetime.now(timezone.utc),
            self.func,
            interval=self.interval_seconds,
            id=self.id,
            description=self.description,
            timeout=self.timeout,
        )


PERIODIC_JOBS: tuple[PeriodicJob, ...] = (
    PeriodicJob(
        id="periodic-reconcile-tasks",
        func="jobs.maintenance.reconcile_tasks",
        description="re-enqueue lost pending tasks, retry or fail stalled ones",
        interval_seconds=60,
        timeout=120,
    ),
    PeriodicJob(
        id="periodic-purge-expired-tasks",
        func="jobs.retention.purge_expired_tasks",
        description="delete tasks, photos and results older than STUDIO_RETENTION_DAYS",
        interval_seconds=24 * 60 * 60,
        timeout=60 * 60,
    ),
    PeriodicJob(
        id="periodic-make-missing-thumbnails",
        func="jobs.thumbnails.make_missing_thumbnails",
        description="make the history's thumbnails of finished tasks that have none (older or failed tasks)",
        interval_seconds=5 * 60,
        timeout=10 * 60,
    ),
)


def reconcile_schedule(scheduler: Scheduler, periodic_jobs: tuple[PeriodicJob, ...] = PERIODIC_JOBS) -> None:
    """Make the scheduler hold exactly the given periodic jobs; safe to run any number of times."""
    wanted = {periodic.id: periodic for periodic in periodic_jobs}
    present: set[str] = set()
    for job in scheduler.get_jobs():
        if not job.id.startswith(ID_PREFIX):
            continue
        periodic = wanted.get(job.id)
        if periodic is not None and periodic.matches(job):
            present.add(job.id)
            continue
        logger.info("cancelling periodic job %s: %s", job.id, "changed" if periodic else "no longer defined")
        scheduler.cancel(job)
        job.delete()
    for periodic in periodic_jobs:
        if periodic.id not in present:
            logger.info("scheduling periodic job %s (%s)", periodic.id, periodic.func)
            periodic.schedule(scheduler)


class PeriodicScheduler(Scheduler):
    """rq-scheduler that reconciles the periodic jobs each round it holds the lock, before enqueueing due ones."""

    periodic_jobs: tuple[PeriodicJob, ...] = PERIODIC_JOBS

    def enqueue_jobs(self) -> list[Job]:
        """Put back any periodic job Redis lost (a restart without persistence), then enqueue what is due."""
        reconcile_schedule(self, self.periodic_jobs)
        return super().enqueue_jobs()


def run_scheduler(redis_url: str, queue_name: str, outage_seconds: float = 300) -> None:
    """Enqueue the periodic jobs when due until SIGTERM (blocks: run it in its own process).

    rq-scheduler is not RQ's built-in scheduler (`Worker.work(with_scheduler=True)` only moves delayed retries);
    it installs its own signal handlers, so it needs a process of its own (a multiprocessing.Process will do).
    Each Redis command is retried through an outage of outage_seconds; a longer one ends rq-scheduler's loop,
    and this function starts it again once Redis answers, so the periodic jobs never stop for good.
    """
    connection = outage_tolerant_redis(redis_url, outage_seconds)
    scheduler = PeriodicScheduler(queue_name=queue_name, connection=connection, interval=SCHEDULER_INTERVAL_SECONDS)
    while True:
        try:
            scheduler.run()
            return
        except RedisError as error:
            logger.error("rq-scheduler lost Redis (%s); starting it again", error)
        try:
            scheduler.register_death()  # else its next birth finds this one's key still alive
        except RedisError:
            pass
        time.sleep(SCHEDULER_INTERVAL_SECONDS)
