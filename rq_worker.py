"""The processing worker: `python rq_worker.py [QUEUE...] [--with-scheduler] [--burst] [--name NAME] [--simple]`.

It builds the Flask app and loads the model sessions once, before taking any job, so no job loads weights.

How it runs its jobs (STUDIO_WORKER_JOBS_PER_PROCESS, docs/production.md "One process per job, or many"):
- By default (1000) in its own process, one after another (ReusingWorker, RQ's SimpleWorker), and after that many
  jobs it replaces itself with a fresh start (exec, the same pid), so a leak cannot grow. A thread keeps RQ's
  heartbeats fresh while a job runs; a job that ignores its timeout alarm (stuck in native code) or RQ's stop-job
  command is ended by starting the worker afresh, as a forking worker kills a horse; a crash ends the worker with
  the job (its supervisor starts it again, and the job is found abandoned and retried). No fork per job, so no
  photo pays for a new process (the figures are in docs/production.md).
- With 1, RQ's forking Worker (PreloadedWorker): each job runs in a work horse forked from this preloaded process,
  so the model weights are shared copy-on-write and a job that crashes in native code takes down only its horse.
  Two things do not survive fork and are handled explicitly:
  - SQLAlchemy's pool: the horse would share the parent's PostgreSQL sockets, so it disposes of the inherited pool
    (close=False leaves the parent's connections open) and opens its own.
  - libgomp, torch's CPU thread pool: once a parallel region has run in a process, a forked child that computes
    with more than one thread deadlocks. The parent therefore loads the models, and runs its one warm-up photo
    (warm_up), with one thread: no parallel region ever runs in it. Each horse sets STUDIO_TORCH_THREADS threads
    (default 1, with one worker per core).
- On a CUDA machine the CUDA context cannot be used after fork, so the worker runs every job in-process without
  replacing itself, as `--simple` does everywhere.

With STUDIO_QUEUE_BACKEND=sqs and no queue named it consumes the Amazon SQS queue instead (processes/sqs_adapter.py),
each job in this process; everything below is about RQ, which still runs the periodic jobs and the webhooks
(`python rq_worker.py --with-scheduler STUDIO_QUEUE STUDIO_WEBHOOK_QUEUE` beside the SQS workers).

Crash recovery (see jobs/maintenance.py for the other half):
- RQ marks a started job abandoned once its worker has missed its heartbeat for a fixed 60 s; the grace here is
  STUDIO_WORKER_HEARTBEAT_GRACE_SECONDS, so a killed worker's job is found sooner where that is wanted.
- SIGTERM is RQ's warm shutdown (the current photo finishes); a second SIGTERM is the cold one: RQ kills the horse,
  and this worker hands the interrupted job back to the front of the queue, the attempt not counted, instead of
  leaving it STARTED until someone finds it abandoned.
- A Redis outage: every Redis command of the worker, its horses and its scheduler is retried with backoff for
  STUDIO_WORKER_REDIS_OUTAGE_SECONDS, so a restart of Redis (even one that lost the queue: the reconciler puts
  the tasks back) does not end the worker, whatever it was doing at the time.
"""

from __future__ import annotations

import argparse
import gc
import io
import logging
import multiprocessing
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any, Callable, Mapping

import torch
from flask import Flask
from PIL import Image
from redis import Redis
from redis.exceptions import RedisError, ResponseError
from rq import SimpleWorker, Worker
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue
from rq.registry import CanceledJobRegistry, FailedJobRegistry
from rq.worker import WorkerStatus

from jobs.context import bind_app
from jobs.process_image import on_work_horse_killed, release_interrupted_task
from jobs.scheduled import run_scheduler
from ml.edits import matting
from ml.operations import DEFAULT_OPERATION, get_operation
from ml.registry import available_model_names
from ml.runner import process
from ml.sessions import configure, preload
from processes import memory, rq_adapter
from processes.sqs_adapter import SqsWorker
from processes.parent_death import die_with_parent
from studio import create_app, logs, metrics, settings, sqs_queue, worker_deaths
from studio.extensions import db
from studio.queue import HARD_LIMIT_MARGIN, outage_tolerant_redis, photo_queues
from studio.storage import get_storage
from studio.tasks.service import limits as operator_limits

logger = logging.getLogger("rq_worker")

# The warm-up's made-up photo: small, so it takes a fraction of a real photo's time (U2Net's input is 320x320 whatever
# the photo's size, so its kernels are the ones real photos need).
WARM_UP_PHOTO_SIZE = (160, 120)
# Set in the environment of a worker that replaced itself after STUDIO_WORKER_JOBS_PER_PROCESS jobs.
RECYCLED = "STUDIO_WORKER_RECYCLED"
# How long a job in the worker's own process has to stop by itself after RQ's stop-job command (it does at its next
# progress report) before the worker ends it by starting afresh.
STOP_GRACE_SECONDS = 5


def file_as_cancelled(job: Job, connection: Redis) -> None:
    """Move a stopped job from RQ's failed jobs to its cancelled ones (what /admin/rq counts)."""
    try:
        with connection.pipeline() as pipeline:
            FailedJobRegistry(job.origin, connection, job_class=type(job), serializer=job.serializer).remove(
                job, pipeline=pipeline)
            CanceledJobRegistry(job.origin, connection, job_class=type(job), serializer=job.serializer).add(
                job, pipeline=pipeline)
            pipeline.execute()
    except RedisError as error:
        logger.warning("task %s: could not file its stopped job as cancelled: %s", job.id, error)


class StudioWorker:
    """What both workers share: short heartbeats kept fresh while a job runs, and a cold shutdown that puts the job
    it interrupts back on its queue, uncounted."""

    app: Flask
    connection: Redis
    executions: dict[str, Execution]
    job_monitoring_interval: int
    heartbeat_grace_seconds: int = 60
    cold_shutdown_started: bool = False
    # Set by the first SIGTERM or SIGINT (RQ's warm shutdown).
    stopping: bool = False

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """Return how long the job's execution stays alive without a heartbeat (RQ adds a fixed 60 s)."""
        remaining = self.job_monitoring_interval
        if job.timeout and job.timeout > 0:
            remaining = min(job.timeout - working_time, remaining)
        return int(max(remaining, 1)) + self.heartbeat_grace_seconds

    def handle_job_failure(self, job: Job, queue: Queue, started_job_registry: Any = None, exc_string: str = "",
                           execution: Execution | None = None) -> None:
        """RQ's failure handling; a job stopped on request (a cancelled task) is then filed as cancelled, not failed.

        RQ marks a stopped job STOPPED but lists it in the FailedJobRegistry, so /admin/rq counted every cancel as a
        failure; it is moved to the CanceledJobRegistry, where a job cancelled before it started would be.
        """
        stopped = self._stopped_job_id == job.id  # type: ignore[attr-defined] - RQ's, reset by the call below
        super().handle_job_failure(job, queue, started_job_registry=started_job_registry,  # type: ignore[misc]
                                   exc_string=exc_string, execution=execution)
        if stopped:
            file_as_cancelled(job, self.connection)

    def run_maintenance_tasks(self) -> None:
        """RQ's maintenance (registry clean-up), where a command that Redis refuses does not end the worker.

        A Redis restart between RQ loading one of its Lua scripts and running it (the retried command reaches the
        new, empty server) answers NoScriptError; RQ would let it end the worker. The clean-up is tried again at
        the next maintenance instead, which loads the script afresh. A Redis that does not answer at all is
        still the outage budget's to ride out, and past it ends the worker, as before.
        """
        try:
            super().run_maintenance_tasks()  # type: ignore[misc] - RQ's, next in the workers' MRO
        except ResponseError as error:
            logger.warning("worker maintenance refused by Redis (%s); tried again at the next", error)

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """Warm shutdown, as RQ does it; remember it, so main does not start the worker afresh after it."""
        self.stopping = True
        super().request_stop(signum, frame)  # type: ignore[misc] - RQ's, next in the workers' MRO

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """Cold shutdown: RQ stops the job (kills the horse, if any); hand the interrupted job back, then exit."""
        if self.cold_shutdown_started:
            return  # a third signal must not interrupt the hand-back
        interrupted = list(self.executions.values())
        try:
            super().request_force_stop(signum, frame)  # type: ignore[misc] - RQ's, next in the workers' MRO
        except SystemExit:
            self.cold_shutdown_started = True
            # A context (and so a database session) of its own: a job in this process may be inside a query.
            with self.app.app_context():
                for execution in interrupted:
                    self.requeue_interrupted(execution)
            self.exit_after_cold_shutdown()

    def exit_after_cold_shutdown(self) -> None:
        """End the worker once the interrupted job is back on its queue."""
        raise NotImplementedError

    def requeue_interrupted(self, execution: Execution) -> None:
        """Put a job whose horse this worker killed back at the front of its queue, without using a retry."""
        try:
            job = self.job_class.fetch(execution.job_id, connection=self.connection, serializer=self.serializer)
            if job.get_status() != JobStatus.STARTED:
                return
            # The database first: once the job is queued another worker may start it at once.
            release_interrupted_task(job.id)
            queue = self.queue_class(job.origin, connection=self.connection, job_class=self.job_class,
                                     serializer=self.serializer)
            # Queued before the execution is dropped: stopped in between, the job is queued and the leftover
            # execution is ignored by RQ's cleanup (which only takes STARTED jobs), never the other way round.
            # Straight onto the queue: the job still holds its account's concurrency slot (studio/queue.py).
            rq_adapter.enqueue_at_front(queue, job)
            with self.connection.pipeline() as pipeline:
                self.cleanup_execution(job, pipeline=pipeline, execution=execution)
                pipeline.execute()
            logger.warning("task %s: interrupted by a cold shutdown; queued again", job.id)
        except Exception:  # noqa: BLE001 - shutting down: RQ's abandoned-job check and the reconciler remain
            logger.exception("could not queue the interrupted job %s again", execution.job_id)


class PreloadedWorker(StudioWorker, Worker):
    """RQ's forking worker whose horses reset what must not be shared with the preloaded parent."""

    torch_threads: int

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        """Prepare the freshly forked horse, then run the job as RQ does."""
        # Killed with its worker (SIGKILL, the OOM killer), the horse must not run on: a restarted worker of the
        # same name takes its job over at once (processes/rq_adapter.take_over).
        die_with_parent(self.pid)
        # Its metrics go to its worker's files, not to new ones per horse (one per job would pile up).
        metrics.work_horse_started()
        with self.app.app_context():
            db.engine.dispose(close=False)
        torch.set_num_threads(self.torch_threads)
        super().main_work_horse(job, queue)

    def exit_after_cold_shutdown(self) -> None:
        """RQ has killed the horse: exit as RQ does."""
        raise SystemExit()


class ReusingWorker(StudioWorker, SimpleWorker):
    """RQ's SimpleWorker: jobs run one after another in this process, no fork (STUDIO_WORKER_JOBS_PER_PROCESS > 1,
    --simple, CUDA).

    It saves what a new process per job costs (see docs/production.md). What a
    forking worker does for a job stuck where its timeout alarm cannot reach it (native code), killing the horse at
    RQ's hard limit (the timeout + 60 s), this worker's heartbeat thread does to the whole process: it records the
    attempt as a killed horse's (retried, or failed with the timeout as reason) and starts the worker afresh (exec,
    the same pid); a job that RQ's stop-job command does not stop within STOP_GRACE_SECONDS alike (kill_horse). A
    crash takes the worker down with the job (its supervisor starts it again; RQ and the reconciler
    find the job abandoned). main() replaces the process after its jobs, so a leak cannot grow.
    """

    jobs_done: int = 0
    _beating: threading.Event | None = None
    # The job running now, with its queue and execution (None between jobs); guarded by _beat_lock.
    _current: tuple[Job, Queue, Execution] | None = None
    # Called, from the heartbeat thread, to replace this process by a fresh start (main sets it).
    start_afresh: Callable[[str], None]

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._beat_lock = threading.Lock()

    def execute_job(self, job: Job, queue: Queue) -> None:
        """Run the job here, as SimpleWorker does, its heartbeats kept from a thread; count it."""
        execution = self.prepare_execution(job)
        self._current = (job, queue, execution)
        # A forking worker's parent refreshes the heartbeats while its horse works; here the job holds the main
        # thread, so a thread does it (the same short TTLs, so a killed worker's job is found as soon).
        self._beating = threading.Event()
        threading.Thread(target=self._keep_alive, args=(job, queue, execution, self._beating, time.monotonic()),
                         daemon=True, name=f"rq-heartbeat-{job.id}").start()
        try:
            self.perform_job(job, queue, execution)
        finally:
            self._stop_beating()
        self.set_state(WorkerStatus.IDLE)
        self.jobs_done += 1

    def handle_execution_ended(self, job: Job, queue: Queue, heartbeat_ttl: int) -> None:
        """Stop the heartbeats before RQ records the end: a late one would put the job back among the started."""
        self._stop_beating()
        super().handle_execution_ended(job, queue, heartbeat_ttl)

    def _keep_alive(self, job: Job, queue: Queue, execution: Execution, stopped: threading.Event,
                    started: float) -> None:
        while not stopped.wait(self.job_monitoring_interval):
            with self._beat_lock:
                if stopped.is_set():
                    return
                if job.timeout and job.timeout > 0 and time.monotonic() - started > job.timeout + HARD_LIMIT_MARGIN:
                    self._give_up_stuck_job(job, queue, execution)
                try:
                    self.maintain_heartbeats(job, execution)
                except RedisError as error:  # the next beat tries again; the job goes on
                    logger.warning("job %s: could not refresh its heartbeat: %s", job.id, error)

    def kill_horse(self, sig: signal.Signals = signal.SIGKILL) -> None:
        """RQ's stop-job command for the job running in this process, which has no horse to kill.

        RQ calls this only for the job it runs now (a stop-job or stop-execution command). A cancelled task's job
        stops by itself at its next progress report (studio.queue.stop_task_job); one still running
        STOP_GRACE_SECONDS later (a long step that reports nothing) is ended as a forking worker ends a stopped
        horse's job: STOPPED, its stopped callback run, and this process started afresh.
        """
        job_id = self.get_current_job_id()
        if job_id:
            timer = threading.Timer(STOP_GRACE_SECONDS, self._force_stop, args=(job_id,))
            timer.daemon = True
            timer.start()

    def _force_stop(self, job_id: str) -> None:
        with self._beat_lock:
            if self._current is None or self._current[0].id != job_id:
                return  # it stopped by itself
            job, queue, execution = self._current
            logger.warning("task %s: still running %s s after its job was stopped; ending it and starting the worker "
                           "afresh", job_id, STOP_GRACE_SECONDS)

            def record() -> None:
                # What RQ's forking worker does once it has killed a stopped job's horse; the stopped callback runs
                # without RQ's alarm, which only the main thread may set (this is a timer's thread).
                if job.stopped_callback is not None:
                    job.stopped_callback(job, self.connection)
                self.handle_job_failure(job, queue=queue, execution=execution,
                                        exc_string="Job stopped by user; the worker started afresh.")

            self._end_here(job.id, record, "was stopped")

    def _give_up_stuck_job(self, job: Job, queue: Queue, execution: Execution) -> None:
        """End a job that ignored its timeout alarm as RQ ends a horse it kills: record the attempt, retry or fail
        its task, then replace this process (the job's thread cannot be stopped any other way)."""
        logger.error("task %s: still running %s s past its %s s timeout, where the alarm cannot stop it; ending this "
                     "attempt and starting the worker afresh", job.id, HARD_LIMIT_MARGIN, job.timeout)

        def record() -> None:
            self.handle_work_horse_killed(job, os.getpid(), None, None)
            self.handle_job_failure(job, queue=queue, execution=execution,
                                    exc_string=f"Stuck past the hard limit (the timeout + {HARD_LIMIT_MARGIN} s)")

        self._end_here(job.id, record, "was stuck past its hard time limit")

    def _end_here(self, job_id: str, record: Callable[[], None], what: str) -> None:
        """Record the end of the job this process cannot stop, unregister the worker, then start afresh."""
        try:
            record()
            self.teardown()
        except Exception:  # noqa: BLE001 - starting afresh matters most: RQ and the reconciler find the job
            logger.exception("could not record the end of job %s", job_id)
        self.start_afresh(f"job {job_id} {what}")

    def _stop_beating(self) -> None:
        """Stop the heartbeat thread; once this returns no beat is under way or to come."""
        if self._beating is not None:
            self._beating.set()
        with self._beat_lock:
            self._beating = self._current = None

    def exit_after_cold_shutdown(self) -> None:
        """The job runs in this very process: exit at once, never back into it.

        RQ's SimpleWorker raises SystemExit from the signal handler, inside the job, where RQ's own handler takes
        it for the job's failure and spends an attempt on it.
        """
        try:
            self.teardown()
        except Exception:  # noqa: BLE001 - RQ's worker key expires on its own
            logger.exception("could not unregister the worker")
        logging.shutdown()
        os._exit(0)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description="Process Photo Studio tasks from the RQ queue.")
    parser.add_argument("queues", nargs="*", help="queues to listen on, the first served first (default: "
                                                  "STUDIO_QUEUE then STUDIO_SLOW_QUEUE, quick work first)")
    parser.add_argument("--with-scheduler", action="store_true",
                        help="also run RQ's scheduler (it requeues delayed retries) and rq-scheduler's periodic jobs "
                             "(the task reconciler); run at least one such worker")
    parser.add_argument("--burst", action="store_true", help="quit when the queues are empty")
    parser.add_argument("--name", help="worker name, one live process's at a time: a worker started under the name "
                                       "of one that died takes over its jobs at once (default: STUDIO_WORKER_NAME, "
                                       "else random)")
    parser.add_argument("--simple", action="store_true", help="run jobs in this process instead of forking")
    parser.add_argument("--quick-only", action="store_true",
                        help="serve only quick work (STUDIO_QUEUE): a worker that slow jobs (upscaling) never hold, "
                             "so quick ones start while they run")
    return parser.parse_args(argv)


def preload_models(app: Flask) -> list[str]:
    """Load the default model and every other installed model, so horses inherit them all."""
    config = app.config
    configure(cache_bytes=config["STUDIO_MODEL_CACHE_BYTES"], bfloat16=config["STUDIO_BFLOAT16"])
    model_dir, default = config["STUDIO_MODEL_DIR"], config["STUDIO_DEFAULT_MODEL"]
    installed = available_model_names(model_dir)
    if not installed:
        raise RuntimeError(f"no model is installed in {model_dir} (run make install)")
    names = ([default] if default in installed else []) + [name for name in installed if name != default]
    preload(names, model_dir)
    return names


def warm_up(app: Flask) -> bool:
    """Run the default operation with the default model once, on a made-up photo; return False when it could not.

    What a process does the first time it runs an operation (oneDNN creates and compiles the kernel of each
    convolution, PIL loads its codecs, the operation's modules are imported) would otherwise cost the first job, and,
    with a horse forked per job, every job (docs/production.md). Done here once, the horses inherit it. Always on
    one thread, whatever the caller set: a parallel region run here would deadlock every horse that computes with
    more than one (see the module docstring). Other operations still pay their first run in each horse.
    """
    config = app.config
    operation = get_operation(DEFAULT_OPERATION)
    started, threads = time.perf_counter(), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        options = operation.parse({}, models=tuple(available_model_names(config["STUDIO_MODEL_DIR"])),
                                  default_model=config["STUDIO_DEFAULT_MODEL"])
        process(operation, made_up_photo(), options, model_dir=config["STUDIO_MODEL_DIR"],
                limits=operator_limits(config),
                png_compress_level=config["STUDIO_PNG_COMPRESS_LEVEL"])
    except Exception as error:  # noqa: BLE001 - a slower first run in each horse is no reason to stop the worker
        logger.warning("warm-up skipped, each job pays for its first run: %s", error)
        return False
    finally:
        torch.set_num_threads(threads)
    logger.info("warmed up: %s in %.2f s", ", ".join(f"{operation.name} {model}" for model in
                                                     operation.models_for(options)), time.perf_counter() - started)
    return True


def load_matting() -> None:
    """Compile (or load from numba's cache) the alpha matting library, so that no job pays for it."""
    try:
        seconds = matting.load()
    except Exception as error:  # noqa: BLE001 - a job asking for matting will fail with the reason; others need none
        logger.warning("alpha matting not loaded: %s", error)
        return
    logger.info("alpha matting loaded in %.2f s (numba cache: %s)", seconds,
                os.environ.get("NUMBA_CACHE_DIR") or "beside pymatting")


def made_up_photo() -> bytes:
    """Return a small JPEG with gradients in it (the most common upload format, so its decoder is loaded)."""
    linear, radial = Image.linear_gradient("L"), Image.radial_gradient("L")
    photo = Image.merge("RGB", (linear, radial, linear.transpose(Image.Transpose.ROTATE_90)))
    buffer = io.BytesIO()
    photo.resize(WARM_UP_PHOTO_SIZE).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def queues_to_serve(config: Mapping[str, Any], arguments: argparse.Namespace) -> list[str]:
    """Return the queues this worker listens to, the first served first: those named, else the processing queues."""
    if arguments.queues:
        return arguments.queues
    queues = photo_queues(config)
    return queues[:1] if arguments.quick_only else queues


def processes_photos(app: Flask, arguments: argparse.Namespace) -> bool:
    """Return True when this worker takes processing jobs (a webhook-only worker needs no model)."""
    return bool(set(photo_queues(app.config)) & set(queues_to_serve(app.config, arguments)))


def jobs_per_process(app: Flask, arguments: argparse.Namespace) -> int | None:
    """Return how many jobs one process runs: 1 forks a process per job; None runs them all in this one."""
    if arguments.simple or torch.cuda.is_available():
        return None
    return app.config["STUDIO_WORKER_JOBS_PER_PROCESS"]


def build_worker(app: Flask, arguments: argparse.Namespace, torch_threads: int, limit: int | None) -> Worker:
    """Return the worker for the queues: forking, or running the jobs in this process (limit: jobs_per_process)."""
    queues = queues_to_serve(app.config, arguments)
    connection = outage_tolerant_redis(app.config["REDIS_URL"], app.config["STUDIO_WORKER_REDIS_OUTAGE_SECONDS"])
    options = dict(name=arguments.name or app.config["STUDIO_WORKER_NAME"] or None, connection=connection,
                   work_horse_killed_handler=on_work_horse_killed,
                   job_monitoring_interval=app.config["STUDIO_WORKER_MONITOR_SECONDS"],
                   maintenance_interval=app.config["STUDIO_WORKER_MAINTENANCE_SECONDS"])
    if limit != 1:
        torch.set_num_threads(torch_threads)
        worker: ReusingWorker | PreloadedWorker = ReusingWorker(queues, **options)
    else:
        worker = PreloadedWorker(queues, **options)
        worker.torch_threads = torch_threads
    worker.app = app
    worker.heartbeat_grace_seconds = app.config["STUDIO_WORKER_HEARTBEAT_GRACE_SECONDS"]
    return worker


def start_periodic_scheduler(arguments: argparse.Namespace) -> multiprocessing.Process:
    """Run rq-scheduler's loop (periodic jobs) in a child process that ends with this worker."""
    # Forked first thing, before torch or the database are touched, so the child inherits neither. rq-scheduler
    # takes a Redis lock, so several workers started with --with-scheduler still enqueue each periodic job once.
    config = settings.from_environment()
    queue = queues_to_serve(config, arguments)[0]
    process = multiprocessing.get_context("fork").Process(
        target=_scheduler_main,
        args=(os.getpid(), config["REDIS_URL"], queue, config["STUDIO_WORKER_REDIS_OUTAGE_SECONDS"]),
        name="rq-scheduler", daemon=True)
    process.start()
    return process


def _scheduler_main(worker_pid: int, redis_url: str, queue: str, outage_seconds: float) -> None:
    """Run the periodic scheduler until the worker ends, however it ends (daemon covers only a clean exit)."""
    die_with_parent(worker_pid)
    run_scheduler(redis_url, queue, outage_seconds)


def take_over_predecessor(worker: Worker) -> None:
    """Take over the jobs of a dead worker of the same name, and report its death (log, metric, /admin)."""
    job_ids = rq_adapter.take_over(worker)
    if job_ids is None:
        return
    logger.error("worker %s: its previous process died without stopping (killed, out of memory?); handed its "
                 "jobs back: %s", worker.name, ", ".join(job_ids) or "none")
    metrics.worker_died()
    worker_deaths.record(worker.connection, worker.name, job_ids)


def warn_if_redis_is_down(app: Flask) -> None:
    """Say so at once when Redis does not answer, instead of waiting for it in silence."""
    client = Redis.from_url(app.config["REDIS_URL"], socket_connect_timeout=2, socket_timeout=2)
    try:
        client.ping()
    except RedisError as error:
        logger.warning("Redis does not answer (%s); waiting up to %s s for it", error,
                       app.config["STUDIO_WORKER_REDIS_OUTAGE_SECONDS"])
    finally:
        client.close()


def main(argv: list[str] | None = None) -> int:
    """Build the app, preload the models, then work the queues."""
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    logs.configure_from(settings.from_environment())
    try:
        rq_adapter.check()
    except rq_adapter.IncompatibleRQ as error:
        logger.error("%s", error)
        return 1
    if not memory.uses_huge_pages(os.environ):
        logger.info("%s does not hold %s: each photo costs about 10%% more CPU (docs/production.md, \"Memory and "
                    "huge pages\"); python -m processes.launcher and the Docker image set it", memory.TUNABLES,
                    memory.HUGE_PAGES_TUNABLE)
    scheduler = start_periodic_scheduler(arguments) if arguments.with_scheduler else None
    torch_threads = torch.get_num_threads()
    # One thread while loading: see the module docstring (libgomp and fork).
    torch.set_num_threads(1)
    app = create_app()
    torch_threads = app.config.get("STUDIO_TORCH_THREADS") or torch_threads
    limit = jobs_per_process(app, arguments)
    if limit is not None and limit < 1:
        logger.error("STUDIO_WORKER_JOBS_PER_PROCESS must be 1 (a process per job) or more, got %s", limit)
        return 2
    bind_app(app)
    # A replaced process (recycle) keeps the metrics its predecessor counted.
    metrics.init_worker(app, clean=RECYCLED not in os.environ)
    get_storage(app)
    photos = processes_photos(app, arguments)
    if photos:
        try:
            names = preload_models(app)
        except Exception as error:  # noqa: BLE001 - any failure to load means this worker cannot do its job
            logger.error("cannot load the models from %s: %s", app.config["STUDIO_MODEL_DIR"], error)
            return 1
        logger.info("models loaded: %s; %s torch threads per job", ", ".join(names) or "none", torch_threads)
        warm_up(app)
        load_matting()
    warn_if_redis_is_down(app)
    # Queues named on the command line stay RQ's: the periodic jobs (the reconciler) and webhooks run there.
    if photos and sqs_queue.enabled(app.config) and not arguments.queues:
        return work_sqs(app, arguments, torch_threads)
    worker = build_worker(app, arguments, torch_threads, limit)
    take_over_predecessor(worker)
    if isinstance(worker, ReusingWorker):
        worker.start_afresh = lambda reason: recycle(reason, scheduler)
    # Everything built so far lives as long as the worker: out of the garbage collector's way, a horse's collections
    # do not write into those objects' pages, which it would otherwise copy from the parent (copy-on-write).
    gc.freeze()
    if limit == 1:
        # What loading and the warm-up freed goes back to the kernel: each horse then maps fresh pages for its
        # photo instead of copying the parent's (processes/memory.py).
        memory.return_free_memory()
    # A webhook-only worker moves its own waiting deliveries (retry intervals, an open breaker) back onto its queue:
    # RQ's scheduler for its queues only (RQ's lock per queue lets replicas share it), not rq-scheduler's periodic jobs.
    worker.work(burst=arguments.burst, with_scheduler=arguments.with_scheduler or not photos, logging_level="INFO",
                max_jobs=limit if limit != 1 else None)
    if limit not in (1, None) and worker.jobs_done >= limit and not worker.stopping:
        recycle(f"ran {worker.jobs_done} jobs in this process (STUDIO_WORKER_JOBS_PER_PROCESS)", scheduler)
    return 0


def work_sqs(app: Flask, arguments: argparse.Namespace, torch_threads: int) -> int:
    """Take the photos' messages from SQS instead of RQ (STUDIO_QUEUE_BACKEND=sqs), each job in this process."""
    if not app.config["STUDIO_SQS_QUEUE_URL"]:
        logger.error("STUDIO_QUEUE_BACKEND=sqs needs STUDIO_SQS_QUEUE_URL")
        return 2
    torch.set_num_threads(torch_threads)
    connection = outage_tolerant_redis(app.config["REDIS_URL"], app.config["STUDIO_WORKER_REDIS_OUTAGE_SECONDS"])
    gc.freeze()
    # No work horse here: 1 (a horse per job on RQ) runs every job in this process, as --simple does.
    limit = jobs_per_process(app, arguments)
    limit = None if limit == 1 else limit
    worker = SqsWorker(app.config, connection, max_jobs=limit,
                       start_afresh=lambda reason: recycle(reason, None))
    worker.work(burst=arguments.burst)
    if limit is not None and worker.jobs_done >= limit and not worker.stopping:
        recycle(f"ran {worker.jobs_done} jobs in this process (STUDIO_WORKER_JOBS_PER_PROCESS)", None)
    return 0


def recycle(reason: str, scheduler: multiprocessing.Process | None) -> None:
    """Replace this process by a fresh start of the same worker (same pid, so its supervisor sees no exit)."""
    logger.info("%s: starting afresh", reason)
    if scheduler is not None:  # the new process starts its own
        scheduler.terminate()
        scheduler.join(10)
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, RECYCLED: "1"})


if __name__ == "__main__":
    sys.exit(main())
