"""The job queues: the Redis connection, the RQ queues (one per cost class) and the one helper that enqueues a task.

An operation's declaration gives its cost class (ml.operations.COST_CLASSES: quick, slow). Each class has a queue of
its own (STUDIO_QUEUE for quick work, STUDIO_SLOW_QUEUE for slow) and every photo worker listens to all of them in
that order, so a worker that comes free takes a cutout before an upscale. Each class also has its own account slots
(account_share), so an account's upscales cannot hold the slots its cutouts need.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, Mapping

from flask import Flask, current_app
from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import RedisError
from redis.retry import Retry as RedisRetry
from rq import Callback, Queue, Retry
from rq.command import send_stop_job_command
from rq.rate_limit import RateLimit, RateLimitRegistry
from rq.exceptions import DuplicateJobError, InvalidJobOperation, NoSuchJobError
from rq.job import Job, JobStatus

from studio import logs, plans, sqs_queue
from studio.models import Task, WebhookStatus

if TYPE_CHECKING:
    from ml.operations import CostClass

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
    """Return the quick work's queue (STUDIO_QUEUE, where the periodic jobs go too), or the named one."""
    app = app or current_app._get_current_object()
    return Queue(name or app.config["STUDIO_QUEUE"], connection=get_redis(app))


def queue_name(cost_class: CostClass, config: Mapping[str, Any]) -> str:
    """Return the name of the queue that a cost class's jobs go on (STUDIO_QUEUE for quick work)."""
    quick = config["STUDIO_QUEUE"]
    if cost_class == "quick":
        return quick
    # Unset, it follows STUDIO_QUEUE: two studios on one Redis, each with its own STUDIO_QUEUE, stay apart.
    return config.get("STUDIO_SLOW_QUEUE") or f"{quick}-slow"


def photo_queues(config: Mapping[str, Any]) -> list[str]:
    """Return the processing queues in the order workers serve them: quick work first."""
    from ml.operations import COST_CLASSES

    return list(dict.fromkeys(queue_name(cost_class, config) for cost_class in COST_CLASSES))


def cost_class(task: Task) -> CostClass:
    """Return the cost class of the task's operation (its declaration's cost_class)."""
    from ml.operations import COST_CLASSES, UnknownOperation, get_operation

    try:
        return get_operation(task.operation).cost_class
    except UnknownOperation:
        return COST_CLASSES[0]  # the job fails at once, with the reason


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
    the reconciler may all call this at once. With STUDIO_QUEUE_BACKEND=sqs it sends the task's SQS message
    instead (studio/sqs_queue.py), where a duplicate is harmless.
    """
    config = current_app.config
    cost = cost_class(task)
    if sqs_queue.enabled(config):
        # The plan's concurrency becomes the account's message groups (studio/sqs_queue.py).
        return sqs_queue.send_task(task, get_redis(), cost, plans.concurrency(task.user_id))
    return _enqueue_once(
        task.id, JOB_FUNCTION, task.id,
        queue_name=queue_name(cost, config),
        description=f"process task {task.id}",
        retry=retry_policy(config),
        job_timeout=job_timeout(task, config),
        on_failure=Callback(FAILURE_CALLBACK),
        on_stopped=Callback(STOPPED_CALLBACK),
        rate_limit=account_share(task.user_id, config, plans.concurrency(task.user_id), cost),
        # The job's log lines carry the id of the request that uploaded the photo (None for the reconciler).
        meta={"request_id": logs.current_request_id()},
    )


# A job still running this many seconds past its timeout is ended by its worker, whatever the queue: RQ's forking
# worker kills its horse then (a fixed margin in RQ), and rq_worker.ReusingWorker and the SQS worker do the same
# to themselves, for a job that its timeout alarm cannot stop (stuck in native code).
HARD_LIMIT_MARGIN = 60


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


def account_share(user_id: int, config: Mapping[str, Any], concurrency: int | None = None,
                  cost_class: CostClass = "quick") -> RateLimit:
    """Return RQ's concurrency limit that keeps one account from holding more than its share of the workers.

    RQ serves a queue first in, first out, so without a limit one account's 40 photos stand in front of everyone
    else's. With this limit at most STUDIO_ACCOUNT_CONCURRENCY of an account's jobs are queued or running at a
    time; the rest wait (status rate_limited) in RQ's own registry and are promoted, oldest first, as the account's
    jobs finish. Another account's photo therefore waits behind at most that many of them. The work queue's length
    stays the number of jobs that could start now: what an autoscaler should read. concurrency: the account's
    plan's own share (studio/plans.py), instead of STUDIO_ACCOUNT_CONCURRENCY.

    Each cost class has slots of its own (the share each): an account's upscales then never hold the slots its
    cutouts need, so a quick job waits for a worker, not for the account's slow ones to finish. Quick work keeps
    the key it always had, so jobs queued before the classes existed still release the right slots.
    """
    share = concurrency if concurrency is not None else config["STUDIO_ACCOUNT_CONCURRENCY"]
    key = f"account:{user_id}" if cost_class == "quick" else f"account:{user_id}:{cost_class}"
    return RateLimit(key, max(int(share), 1))


def queue_position(task: Task) -> int | None:
    """Return how many jobs start before the task's (0: it is next), or None when it waits on no queue.

    Workers serve the queues in priority order (photo_queues), so a job on the slow queue also waits behind every
    job now on the quick one. A job held back by its account's slots (RQ status rate_limited) counts, besides, the
    account's jobs of its class held back before it. None: running, finished, waiting for a retry, or unknown to
    Redis (the reconciler queues it again). A lower bound: quick jobs that arrive later still go first. With
    STUDIO_QUEUE_BACKEND=sqs, which cannot say where a message stands, the database's estimate instead
    (studio.sqs_queue.waiting_ahead).
    """
    if sqs_queue.enabled(current_app.config):
        return sqs_queue.waiting_ahead(task)
    connection = get_redis()
    try:
        job = Job.fetch(task.id, connection=connection)
        status = job.get_status()
        own = Queue(job.origin, connection=connection)
        if status == JobStatus.QUEUED:
            index = connection.lpos(own.key, job.id)
            return None if index is None else _waiting_ahead_of(connection, job.origin) + index
        if status == JobStatus.RATE_LIMITED and job.rate_limit_key:
            rank = connection.zrank(RateLimitRegistry(job.rate_limit_key, connection).rate_limited_key, job.id)
            return None if rank is None else _waiting_ahead_of(connection, job.origin) + own.count + rank
    except NoSuchJobError:
        return None
    except RedisError as error:
        logger.warning("task %s: could not read its place in the queue: %s", task.id, error)
    return None


def _waiting_ahead_of(connection: Redis, origin: str) -> int:
    """Return the jobs waiting on the queues that workers serve before `origin`."""
    names = photo_queues(current_app.config)
    ahead = names[:names.index(origin)] if origin in names else []
    return sum(Queue(name, connection=connection).count for name in ahead)


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
