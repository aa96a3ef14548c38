"""What /metrics reads when scraped: queue depth and age, RQ workers alive and busy, the services /readyz checks.

Read in the process that answers the scrape, with short timeouts, so a hung Redis makes a scrape slow by a second
or two, never stuck; gauges that cannot be read are left out of that scrape rather than reported as zero.

With STUDIO_QUEUE_BACKEND=sqs the SQS task queue joins the RQ queues (which still carry the periodic jobs and the
webhooks) under its own name: waiting messages in studio_queue_jobs, and gauges of its own for the messages in
flight, delayed and in its dead-letter queue, from studio/sqs_state.py's cached read (the one /readyz's check
made). SQS's API does not say how old its oldest message is, so its studio_queue_oldest_job_age_seconds is the
age of the oldest PENDING task in the database.
"""

from __future__ import annotations

import logging
from datetime import datetime, timezone
from typing import Iterable, Iterator

from flask import Flask
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from rq import Queue, Worker
from rq.job import Job
from rq.utils import utcparse
from rq.worker import WorkerStatus

from studio import health, sqs_queue, sqs_state
from studio.extensions import db
from studio.models import Task, TaskStatus, as_utc
from studio.queue import photo_queues

logger = logging.getLogger(__name__)

_SOCKET_TIMEOUT_SECONDS = 1.0
_EXTENSION_KEY = "studio.metrics.redis"
# The oldest waiting job is near the head: RQ appends at the tail and only webhooks (short, recent) jump the
# line. Looking at the first hundred keeps a scrape to two round trips whatever the backlog.
OLDEST_JOB_SCAN = 100
# Queue names come from the studio's own processes, never from a request; the cap keeps a Redis shared with
# something that makes queues by the thousand from turning each scrape into thousands of series.
MAX_QUEUES = 32


def _redis(app: Flask) -> Redis:
    connection = app.extensions.get(_EXTENSION_KEY)
    if connection is None:
        connection = app.extensions[_EXTENSION_KEY] = Redis.from_url(
            app.config["REDIS_URL"], socket_connect_timeout=_SOCKET_TIMEOUT_SECONDS,
            socket_timeout=_SOCKET_TIMEOUT_SECONDS)
    return connection


def queue_names(connection: Redis, configured: list[str]) -> list[str]:
    """Return the RQ queues Redis knows of (at most MAX_QUEUES), and the configured ones even before their first
    job."""
    prefix = Queue.redis_queue_namespace_prefix
    keys = {key.decode() for key in connection.smembers(Queue.redis_queues_keys)}
    others = sorted({key[len(prefix):] for key in keys if key.startswith(prefix)} - set(configured))
    return sorted([*configured, *others[:MAX_QUEUES - len(configured)]])


def _oldest_age(connection: Redis, job_ids: list[bytes], now: datetime) -> float:
    with connection.pipeline(transaction=False) as pipeline:
        for job_id in job_ids:
            pipeline.hget(Job.key_for(job_id.decode()), "enqueued_at")
        stamps = [utcparse(value.decode()) for value in pipeline.execute() if value]
    return max((now - min(stamps)).total_seconds(), 0.0) if stamps else 0.0


def queue_depth_families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
    """Return the empty families of waiting jobs and of the oldest one's age, per queue (RQ's and SQS's)."""
    return (GaugeMetricFamily("studio_queue_jobs", "Jobs waiting in the queue.", labels=["queue"]),
            GaugeMetricFamily("studio_queue_oldest_job_age_seconds",
                              "Seconds the oldest waiting job has waited (0 when none waits).", labels=["queue"]))


def add_rq_queues(depth: GaugeMetricFamily, age: GaugeMetricFamily, connection: Redis,
                  configured_queues: list[str]) -> None:
    """Add each RQ queue's waiting jobs and the age of the oldest of them to the families."""
    now = datetime.now(timezone.utc)
    for name in queue_names(connection, configured_queues):
        key = Queue(name, connection=connection).key
        with connection.pipeline(transaction=False) as pipeline:
            length, head = pipeline.llen(key).lrange(key, 0, OLDEST_JOB_SCAN - 1).execute()
        depth.add_metric([name], length)
        age.add_metric([name], _oldest_age(connection, head, now))


def oldest_pending_age(app: Flask) -> float:
    """Return the seconds the oldest PENDING task has waited since it was created (0 when none waits)."""
    with app.app_context():
        try:
            oldest = db.session.scalar(select(func.min(Task.created_at))
                                       .where(Task.status == TaskStatus.PENDING.value))
        finally:
            db.session.remove()
    return max((datetime.now(timezone.utc) - as_utc(oldest)).total_seconds(), 0.0) if oldest else 0.0


def sqs_families(found: sqs_state.SqsState, depth: GaugeMetricFamily, age: GaugeMetricFamily,
                 oldest_age: float | None) -> Iterator[GaugeMetricFamily]:
    """Add the SQS queue to the depth and age families; yield its in-flight, delayed and dead-letter gauges."""
    name = found.queue.name
    depth.add_metric([name], found.queue.waiting)
    if oldest_age is not None:
        age.add_metric([name], oldest_age)
    in_flight = GaugeMetricFamily("studio_queue_in_flight_jobs", "SQS messages received and not yet deleted "
                                  "(running, or hidden until a retry).", labels=["queue"])
    in_flight.add_metric([name], found.queue.in_flight)
    delayed = GaugeMetricFamily("studio_queue_delayed_jobs", "SQS messages sent with a delay that has not passed.",
                                labels=["queue"])
    delayed.add_metric([name], found.queue.delayed)
    yield in_flight
    yield delayed
    if found.dead_letter is not None:
        dead = GaugeMetricFamily("studio_queue_dead_letter_jobs", "Messages in the SQS queue's dead-letter queue "
                                 "(tasks that failed every attempt).", labels=["queue", "dead_letter_queue"])
        dead.add_metric([name, found.dead_letter.name], found.dead_letter.total)
        yield dead


def worker_families(connection: Redis) -> Iterator[GaugeMetricFamily]:
    """Yield the RQ workers alive (registered and not expired) and those busy with a job."""
    keys = Worker.all_keys(connection=connection)
    with connection.pipeline(transaction=False) as pipeline:
        for key in keys:
            pipeline.hget(key, "state")
        states = [value.decode() for value in pipeline.execute() if value is not None]
    yield GaugeMetricFamily("studio_workers_alive", "RQ workers registered in Redis.", value=len(states))
    yield GaugeMetricFamily("studio_workers_busy", "RQ workers running a job now.",
                            value=sum(state == WorkerStatus.BUSY.value for state in states))


class StateCollector(Collector):
    """Collects, at scrape time, whether the services answer and what the queue and the workers look like."""

    def __init__(self, app: Flask) -> None:
        self.app = app

    def collect(self) -> Iterable[GaugeMetricFamily]:
        """Yield studio_dependency_up, then the queue gauges of what answers (RQ's when Redis does, SQS's when it
        is the queue and answers) and, when Redis answers, the worker gauges."""
        checks = health.run_checks(self.app)
        up = GaugeMetricFamily("studio_dependency_up", "1 when the service answers /readyz's check, else 0.",
                               labels=["dependency"])
        for name, result in sorted(checks.items()):
            up.add_metric([name], 1.0 if result["status"] == "ok" else 0.0)
        yield up
        depth, age = queue_depth_families()
        families: list[GaugeMetricFamily] = []
        if checks.get("redis", {}).get("status") == "ok":
            connection = _redis(self.app)
            try:
                add_rq_queues(depth, age, connection, photo_queues(self.app.config))
                families += worker_families(connection)
            except RedisError as error:
                logger.warning("metrics: could not read the queues from Redis: %s", error)
                depth, age = queue_depth_families()
                families = []
        if sqs_queue.enabled(self.app.config) and checks.get("sqs", {}).get("status") == "ok":
            families += self._sqs_families(depth, age, checks)
        if depth.samples:
            yield depth
        if age.samples:
            yield age
        yield from families

    def _sqs_families(self, depth: GaugeMetricFamily, age: GaugeMetricFamily,
                      checks: dict[str, dict]) -> list[GaugeMetricFamily]:
        try:
            found = sqs_state.state(self.app.config)  # the read /readyz's check just made, kept a few seconds
        except Exception as error:  # noqa: BLE001 - the check passed a moment ago; a scrape never fails for it
            logger.warning("metrics: could not read the SQS queue: %s", error)
            return []
        oldest = None
        if checks.get("database", {}).get("status") == "ok":
            try:
                oldest = oldest_pending_age(self.app)
            except SQLAlchemyError as error:
                logger.warning("metrics: could not read the oldest waiting task: %s", error)
        return list(sqs_families(found, depth, age, oldest))
