"""What the worker needs from RQ beyond its public API, in one place: an RQ upgrade that changes it fails here.

rq_worker.py subclasses RQ's workers and overrides some of their methods (OVERRIDDEN); everything else it needs that
RQ does not document goes through the functions below. check() runs as the worker starts and names what a new RQ
no longer has; tests/workers/test_rq_adapter.py holds a test for each behaviour relied on here.
"""

from __future__ import annotations

import logging

from redis import Redis
from rq import Worker
from rq.exceptions import NoSuchJobError
from rq.executions import Execution
from rq.job import Job
from rq.queue import Queue
from rq.registry import StartedJobRegistry
from rq.utils import parse_composite_key

logger = logging.getLogger(__name__)

# RQ's worker methods that rq_worker.py overrides or calls: renamed or gone, the worker would silently do RQ's
# default (or fail mid-job), so their absence stops it at start instead.
OVERRIDDEN = ("get_heartbeat_ttl", "request_stop", "request_force_stop", "kill_horse", "get_current_job_id",
              "execute_job", "main_work_horse", "handle_execution_ended", "prepare_execution", "perform_job",
              "cleanup_execution", "maintain_heartbeats", "handle_work_horse_killed", "handle_job_failure",
              "teardown", "set_state", "register_death", "executions_key", "key", "run_maintenance_tasks",
              "should_run_maintenance_tasks")


class IncompatibleRQ(RuntimeError):
    """Raised when the installed RQ lacks something the worker relies on."""


def check(worker_class: type[Worker] = Worker) -> None:
    """Raise IncompatibleRQ, naming each missing piece, when this RQ lacks what the worker relies on."""
    missing = [f"{worker_class.__name__}.{name}" for name in OVERRIDDEN if not hasattr(worker_class, name)]
    missing += [f"Queue.{name}" for name in ("_enqueue_job",) if not hasattr(Queue, name)]
    if missing:
        raise IncompatibleRQ(f"this RQ ({_version()}) lacks {', '.join(missing)}, which rq_worker.py relies on: "
                             "see processes/rq_adapter.py")


def enqueue_at_front(queue: Queue, job: Job) -> None:
    """Put a job straight onto the front of its queue, past its concurrency limit (it already holds its slot).

    RQ's public ways back onto a queue (StartedJobRegistry.requeue, Queue.enqueue_job) make a job with a
    concurrency limit queue for its slot again, behind its account's other photos.
    """
    queue._enqueue_job(job, at_front=True)


def take_over(worker: Worker) -> list[str] | None:
    """Hand back the jobs that a dead worker of this worker's name left started; return their ids, or None when no
    worker of this name died.

    A worker's name belongs to one live process at a time (a slot of the launcher, a pod): a new process that
    finds the name still registered knows its predecessor died without unregistering (SIGKILL, the OOM killer). Its
    started jobs are marked expired in RQ's started registries and RQ's own abandoned-job handling runs at once
    (the failure callback, then a retry or a failure), instead of after the heartbeat's TTL and the next
    maintenance; then the dead worker's executions are deleted (RQ's own clean-up leaves them in each job's
    execution registry a minute longer than the executions themselves live, and a job that finishes meanwhile fails
    its bookkeeping on them) and the dead worker is unregistered, so RQ lets this one register under the same name.
    """
    connection: Redis = worker.connection
    if not connection.exists(worker.key) or connection.hexists(worker.key, "death"):
        return None  # nobody of this name, or one that stopped cleanly
    entries = [member.decode() for member in connection.smembers(worker.executions_key)]
    job_ids = sorted({StartedJobRegistry.parse_job_id(entry) for entry in entries})
    for queue in worker.queues:
        registry = StartedJobRegistry(queue.name, connection=connection, job_class=worker.job_class,
                                      serializer=worker.serializer)
        if entries:
            # Only entries still there (xx): a job its predecessor finished is left alone.
            connection.zadd(registry.key, {entry: 0 for entry in entries}, xx=True)
        registry.cleanup()
    for entry in entries:
        _delete_execution(worker, *parse_composite_key(entry))
    worker.register_death()
    return job_ids


def _delete_execution(worker: Worker, job_id: str, execution_id: str) -> None:
    """Delete a dead worker's execution of a job from every registry that lists it."""
    try:
        job = worker.job_class.fetch(job_id, connection=worker.connection, serializer=worker.serializer)
    except NoSuchJobError:
        return
    execution = Execution(execution_id, job_id, connection=worker.connection, worker_name=worker.name)
    with worker.connection.pipeline() as pipeline:
        execution.delete(job, pipeline=pipeline)
        pipeline.execute()


def _version() -> str:
    from rq.version import VERSION

    return VERSION
