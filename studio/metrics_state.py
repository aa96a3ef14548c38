"""What /metrics reads when scraped: queue depth and age, RQ workers alive and busy, the services /readyz checks.

Read in the process that answers the scrape, with short timeouts, so a hung Redis makes a scrape slow by a second
or two, never stuck; gauges that cannot be read are left out of that scrape rather than reported as zero.
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
from rq import Queue, Worker
from rq.job import Job
from rq.utils import utcparse
from rq.worker import WorkerStatus

from studio import health
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


def queue_families(connection: Redis, configured_queues: list[str]) -> Iterator[GaugeMetricFamily]:
    """Yield the waiting jobs and the age of the oldest of them, per queue."""
    depth = GaugeMetricFamily("studio_queue_jobs", "Jobs waiting in the queue.", labels=["queue"])
    age = GaugeMetricFamily("studio_queue_oldest_job_age_seconds",
                            "Seconds the oldest waiting job has waited (0 when none waits).", labels=["queue"])
    now = datetime.now(timezone.utc)
    for name in queue_names(connection, configured_queues):
        key = Queue(name, connection=connection).key
        with connection.pipeline(transaction=False) as pipeline:
            length, head = pipeline.llen(key).lrange(key, 0, OLDEST_JOB_SCAN - 1).execute()
        depth.add_metric([name], length)
        age.add_metric([name], _oldest_age(connection, head, now))
    yield depth
    yield age


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
        """Yield studio_dependency_up, then (when Redis answers) the queue and worker gauges."""
        checks = health.run_checks(self.app)
        up = GaugeMetricFamily("studio_dependency_up", "1 when the service answers /readyz's check, else 0.",
                               labels=["dependency"])
        for name, result in sorted(checks.items()):
            up.add_metric([name], 1.0 if result["status"] == "ok" else 0.0)
        yield up
        if checks.get("redis", {}).get("status") != "ok":
            return
        connection = _redis(self.app)
        try:
            families = [*queue_families(connection, photo_queues(self.app.config)), *worker_families(connection)]
        except RedisError as error:
            logger.warning("metrics: could not read the queues from Redis: %s", error)
            return
        yield from families
