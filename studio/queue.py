"""The job queue: the Redis connection, the RQ queue and the one helper that enqueues a task."""

from __future__ import annotations

import logging
from typing import Any, Mapping

from flask import Flask, current_app
from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from redis.retry import Retry as RedisRetry
from rq import Callback, Queue, Retry
from rq.command import send_stop_job_command
from rq.rate_limit import RateLimit
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from studio import logs, plans
from studio.models import Task, WebhookStatus

logger = logging.getLogger(__name__)

JOB_FUNCTION = "jobs.process_image.process_task"
FAILURE_CALLBACK = "jobs.process_image.on_failure"
STOPPED_CALLBACK = "jobs.process_image.on_stopped"
CLEAN_FUNCTION = "jobs.process_image.clean_cancelled_task"
CLEAN_FAILURE_CALLBACK = "jobs.process_image.on_cleaning_failed"
WEBHOOK_FUNCTION = "jobs.webhooks.deliver_webhook"
WEBHOOK_FAILURE_CALLBACK = "jobs.webhooks.on_delivery_failure"
_EXTENSION_KEY = "studio.redis"
# Short socket timeouts: an upload must not hang on a dead Redis, it stays PENDING for the reconciler instead.
_SOCKET_TIMEOUT_SECONDS = 5
# Jobs that RQ will still run (again): a task that has one must not get another.
LIVE_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.RATE_LIMITED,
                           JobStatus.STARTED})
# Jobs that have not started yet: deleting their task cancels them.
WAITING_STATUSES = frozenset({JobStatus.QUEUED, JobStatus.SCHEDULED, JobStatus.DEFERRED, JobStatus.RATE_LIMITED})
_ENQUEUE_LOCK = "studio:enqueue:{}"
_ENQUEUE_LOCK_SECONDS = 10


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


def outage_retry(seconds: float, base: float = 0.1, cap: float = 2.0) -> RedisRetry:
    """Return redis-py's retry policy that repeats a failed command, with backoff, for about `seconds`.

    redis-py's own default gives up after about a second, so a Redis restart caught a worker in the middle of
    its bookkeeping and killed it (RQ only waits out connection errors in its dequeue loop).
    """
    backoff = ExponentialBackoff(cap=cap, base=base)
    retries, waited = 0, 0.0
    while waited < seconds:
        retries += 1
        waited += backoff.compute(retries)
    return RedisRetry(backoff, retries)


def outage_tolerant_redis(url: str, outage_seconds: float) -> Redis:
    """Return a connection for long-running processes (worker, scheduler) that rides out a Redis outage.

    Only connection and timeout errors are retried; no socket timeout is set, since RQ picks one that suits its
    blocking dequeue. The web app keeps get_redis's short timeouts instead: a request must not hang on Redis.
    """
    return Redis.from_url(url, retry=outage_retry(outage_seconds))


def get_queue(app: Flask | None = None, name: str | None = None) -> Queue:
    """Return the processing queue named by STUDIO_QUEUE, or the named one."""
    app = app or current_app._get_current_object()
    return Queue(name or app.config["STUDIO_QUEUE"], connection=get_redis(app))


def retry_policy(config: dict) -> Retry | None:
    """Return RQ's Retry for the configured attempts, or None when retries are off."""
    retries = config["STUDIO_JOB_RETRIES"]
    if retries < 1:
        return None
    return Retry(max=retries, interval=list(config["STUDIO_JOB_RETRY_INTERVALS"]) or 0)


def job_status(task_id: str, connection: Redis) -> JobStatus | None:
    """Return the status of the task's RQ job, or None when Redis holds no job for it."""
    try:
        return Job.fetch(task_id, connection=connection).get_status()
    except NoSuchJobError:
        return None


def enqueue_task(task: Task) -> bool:
    """Give a committed task exactly one live job; return False (task stays PENDING) when Redis is unreachable.

    Idempotent: a task that already has a queued, scheduled or running job keeps it, so the upload, a re-run and
    the reconciler may all call this at once.
    """
    config = current_app.config
    return _enqueue_once(
        task.id, JOB_FUNCTION, task.id,
        description=f"process task {task.id}",
        retry=retry_policy(config),
        job_timeout=job_timeout(task, config),
        on_failure=Callback(FAILURE_CALLBACK),
        on_stopped=Callback(STOPPED_CALLBACK),
        rate_limit=account_share(task.user_id, config, plans.concurrency(task.user_id)),
        # The job's log lines carry the id of the request that uploaded the photo (None for the reconciler).
        meta={"request_id": logs.current_request_id()},
    )


def job_timeout(task: Task, config: Mapping[str, Any]) -> int:
    """Return the seconds one attempt may take: what the operation declares for the photo's size, at least
    STUDIO_JOB_TIMEOUT (an upscale runs for minutes, a cutout for a second)."""
    from ml.operations import InvalidOptions, UnknownOperation, get_operation

    floor = int(config["STUDIO_JOB_TIMEOUT"])
    try:
        operation = get_operation(task.operation)
        if operation.timeout is None:
            return floor
        options = operation.restore(task.options or {})
    except (UnknownOperation, InvalidOptions):
        return floor  # the job fails at once, with the reason
    return max(floor, int(operation.timeout(options, (task.input_width or 1) * (task.input_height or 1))))


def account_share(user_id: int, config: Mapping[str, Any], concurrency: int | None = None) -> RateLimit:
    """Return RQ's concurrency limit that keeps one account from holding more than its share of the workers.

    RQ serves a queue first in, first out, so without a limit one account's 40 photos stand in front of everyone
    else's. With this limit at most STUDIO_ACCOUNT_CONCURRENCY of an account's jobs are queued or running at a
    time; the rest wait (status rate_limited) in RQ's own registry and are promoted, oldest first, as the account's
    jobs finish. Another account's photo therefore waits behind at most that many of them. The work queue's length
    stays the number of jobs that could start now: what an autoscaler should read. concurrency: the account's
    plan's own share (studio/plans.py), instead of STUDIO_ACCOUNT_CONCURRENCY.
    """
    share = concurrency if concurrency is not None else config["STUDIO_ACCOUNT_CONCURRENCY"]
    return RateLimit(f"account:{user_id}", max(int(share), 1))


def cleaning_job_id(task_id: str) -> str:
    """Return the id of the job that cleans the upload of a task cancelled before its job ran."""
    return f"clean-{task_id}"


def enqueue_cleaning(task: Task) -> bool:
    """Queue the cleaning of a cancelled task's upload, once (its own job was deleted before it could); False
    when Redis is unreachable (the upload is then deleted with the task, by its owner or the retention)."""
    config = current_app.config
    return _enqueue_once(
        cleaning_job_id(task.id), CLEAN_FUNCTION, task.id,
        description=f"clean the upload of task {task.id}",
        retry=retry_policy(config),
        job_timeout=job_timeout(task, config),
        on_failure=Callback(CLEAN_FAILURE_CALLBACK),
    )


def webhook_job_id(task_id: str) -> str:
    """Return the id of the job that delivers a task's webhook (one per task, like the processing job)."""
    return f"webhook-{task_id}"


def enqueue_webhook(task: Task) -> bool:
    """Queue the delivery of a finished task's webhook, once; False when Redis is unreachable.

    Nothing is lost then: the task's webhook stays PENDING and the reconciler queues it again.
    """
    if task.webhook_status != WebhookStatus.PENDING.value:
        return True
    config = current_app.config
    retries = max(config["STUDIO_WEBHOOK_RETRIES"], 0)
    timeout = config["STUDIO_WEBHOOK_TIMEOUT_SECONDS"]
    return _enqueue_once(
        webhook_job_id(task.id), WEBHOOK_FUNCTION, task.id,
        queue_name=config["STUDIO_WEBHOOK_QUEUE"],
        description=f"webhook of task {task.id}",
        retry=Retry(max=retries, interval=list(config["STUDIO_WEBHOOK_RETRY_INTERVALS"]) or 0) if retries else None,
        # The call itself is bounded by the timeout; this hard limit (RQ's alarm) also ends a receiver that
        # trickles its headers a byte at a time.
        job_timeout=timeout + 30,
        on_failure=Callback(WEBHOOK_FAILURE_CALLBACK),
        # Fairness as for photos: one account's deliveries to a receiver that hangs cannot take every webhook worker.
        rate_limit=RateLimit(f"webhooks:account:{task.user_id}",
                             max(int(config["STUDIO_WEBHOOK_ACCOUNT_CONCURRENCY"]), 1)),
    )


def _enqueue_once(job_id: str, function: str, *args: Any, queue_name: str | None = None, **options: Any) -> bool:
    """Enqueue the job unless a live job with this id exists; return False when Redis is unreachable."""
    queue = get_queue(name=queue_name)
    connection = queue.connection
    try:
        # The lock makes "look for a live job, else create one" atomic across processes; unique=True (an atomic
        # check-and-enqueue in Redis) is the backstop should anything enqueue this id without the lock.
        with connection.lock(_ENQUEUE_LOCK.format(job_id), timeout=_ENQUEUE_LOCK_SECONDS,
                             blocking_timeout=_ENQUEUE_LOCK_SECONDS):
            status = job_status(job_id, connection)
            if status in LIVE_STATUSES:
                logger.info("job %s: already %s; not enqueued again", job_id, status.value)
                return True
            if status is not None:
                # A finished, failed or stopped job of an earlier round: make way for the new one.
                Job.fetch(job_id, connection=connection).delete()
            # The database holds the outcome; RQ only needs the job until it finishes. unique=True (an atomic
            # check-and-enqueue) backs up the lock where RQ allows it: not with a concurrency limit.
            queue.enqueue(function, *args, job_id=job_id, result_ttl=0, unique=options.get("rate_limit") is None,
                          **options)
    except DuplicateJobError:
        logger.info("job %s: enqueued meanwhile by another process", job_id)
        return True
    except RedisError as error:
        logger.warning("job %s: could not enqueue, the reconciler will try again: %s", job_id, error)
        return False
    logger.info("job %s: enqueued on %s", job_id, queue.name)
    return True


def cancel_task_job(task_id: str) -> bool:
    """Delete the task's job if it has not started yet; return True when one was cancelled.

    A running job is left alone: it notices that its task is gone and discards its result. Redis being down is
    logged, not raised: the job would find no task and do nothing anyway.
    """
    connection = get_redis()
    try:
        with connection.lock(_ENQUEUE_LOCK.format(task_id), timeout=_ENQUEUE_LOCK_SECONDS,
                             blocking_timeout=_ENQUEUE_LOCK_SECONDS):
            try:
                job = Job.fetch(task_id, connection=connection)
            except NoSuchJobError:
                return False
            if job.get_status() not in WAITING_STATUSES:
                return False
            job.delete(remove_from_queue=True)
    except RedisError as error:
        logger.warning("task %s: could not cancel its job: %s", task_id, error)
        return False
    logger.info("task %s: cancelled its waiting job", task_id)
    return True


def stop_task_job(task_id: str) -> bool:
    """Stop the task's job if a worker is running it now; return True when the stop was sent.

    RQ's stop-job command: the worker kills the work horse, marks the job STOPPED (never retried) and runs its
    stopped callback (jobs.process_image.on_stopped). Call it once the task is CANCELLED, so nothing records a
    result meanwhile. A worker that runs its jobs in its own process (STUDIO_WORKER_JOBS_PER_PROCESS > 1, the
    default) has no horse to kill: the job stops by itself at its next progress report that reaches the database
    (written at most every half second), or, still running a few seconds later, the worker ends it as above and
    starts afresh (rq_worker.ReusingWorker.kill_horse).
    """
    connection = get_redis()
    try:
        if job_status(task_id, connection) != JobStatus.STARTED:
            return False
        send_stop_job_command(connection, task_id)
    except (NoSuchJobError, InvalidJobOperation):
        return False  # it ended meanwhile
    except RedisError as error:
        logger.warning("task %s: could not stop its running job: %s", task_id, error)
        return False
    logger.info("task %s: asked its worker to stop the running job", task_id)
    return True
