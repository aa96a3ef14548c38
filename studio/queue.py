"""The job queue: the Redis connection, the RQ queue and the one helper that enqueues a task."""

from __future__ import annotations

import logging

from flask import Flask, current_app
from redis import Redis
from redis.exceptions import RedisError
from rq import Callback, Queue, Retry

from studio.models import Task

logger = logging.getLogger(__name__)

JOB_FUNCTION = "jobs.process_image.process_task"
FAILURE_CALLBACK = "jobs.process_image.on_failure"
_EXTENSION_KEY = "studio.redis"
# Short socket timeouts: an upload must not hang on a dead Redis, it stays PENDING for the reconciler instead.
_SOCKET_TIMEOUT_SECONDS = 5


def get_redis(app: Flask | None = None) -> Redis:
    """Return the app's Redis connection (a pool), created once per app."""
    app = app or current_app._get_current_object()
    connection = app.extensions.get(_EXTENSION_KEY)
    if connection is None:
        connection = app.extensions[_EXTENSION_KEY] = Redis.from_url(
            app.config["REDIS_URL"], socket_connect_timeout=_SOCKET_TIMEOUT_SECONDS,
            socket_timeout=_SOCKET_TIMEOUT_SECONDS, health_check_interval=30,
        )
    return connection


def get_queue(app: Flask | None = None) -> Queue:
    """Return the processing queue named by STUDIO_QUEUE."""
    app = app or current_app._get_current_object()
    return Queue(app.config["STUDIO_QUEUE"], connection=get_redis(app))


def retry_policy(config: dict) -> Retry | None:
    """Return RQ's Retry for the configured attempts, or None when retries are off."""
    retries = config["STUDIO_JOB_RETRIES"]
    if retries < 1:
        return None
    return Retry(max=retries, interval=list(config["STUDIO_JOB_RETRY_INTERVALS"]) or 0)


def enqueue_task(task: Task) -> bool:
    """Queue a committed task for processing; return False (task stays PENDING) when Redis is unreachable."""
    config = current_app.config
    try:
        get_queue().enqueue(
            JOB_FUNCTION,
            task.id,
            job_id=task.id,
            description=f"process task {task.id}",
            retry=retry_policy(config),
            job_timeout=config["STUDIO_JOB_TIMEOUT"],
            on_failure=Callback(FAILURE_CALLBACK),
            # The database holds the result; RQ only needs the job until it finishes.
            result_ttl=0,
        )
    except RedisError as error:
        logger.warning("task %s: could not enqueue, it stays PENDING for the reconciler: %s", task.id, error)
        return False
    logger.info("task %s: enqueued on %s", task.id, config["STUDIO_QUEUE"])
    return True
