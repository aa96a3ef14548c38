"""The processing worker: `python rq_worker.py [QUEUE...] [--with-scheduler] [--burst] [--name NAME] [--simple]`.

It builds the Flask app and loads the model sessions once, before taking any job, so no job loads weights.

Why RQ's forking Worker (the default here) and not SimpleWorker: each job runs in a work horse forked from this
preloaded process, so the model weights are shared copy-on-write and cost nothing per job, while a job that
leaks memory, crashes in native code or overruns its timeout only takes its horse down (the parent kills it and
RQ retries the job); fork costs milliseconds against about a second of inference. Two things do not survive
fork and are handled explicitly:
- SQLAlchemy's pool: the horse would share the parent's PostgreSQL sockets, so it disposes of the inherited pool
  (close=False leaves the parent's connections open) and opens its own.
- libgomp, torch's CPU thread pool: once a parallel region has run in a process, a forked child that computes
  with more than one thread deadlocks. The parent therefore loads the models, and runs its one warm-up photo
  (warm_up), with one thread: no parallel region ever runs in it. Each horse sets STUDIO_TORCH_THREADS threads
  (default 1, with one worker per core).
On a CUDA machine the CUDA context cannot be used after fork, so the worker runs jobs in-process (SimpleWorker),
as `--simple` does everywhere.

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
import sys
import time
from types import FrameType

import torch
from flask import Flask
from PIL import Image
from redis import Redis
from redis.exceptions import RedisError
from rq import SimpleWorker, Worker
from rq.executions import Execution
from rq.job import Job, JobStatus
from rq.queue import Queue

from jobs.context import bind_app
from jobs.process_image import on_work_horse_killed, release_interrupted_task
from jobs.scheduled import run_scheduler
from ml.operations import DEFAULT_OPERATION, Limits, get_operation
from ml.operations.runner import process
from ml.registry import available_model_names
from ml.sessions import configure, preload
from studio import create_app, logs, metrics, settings
from studio.extensions import db
from studio.queue import outage_tolerant_redis
from studio.storage import get_storage

logger = logging.getLogger("rq_worker")

# The warm-up's made-up photo: small, so it takes a fraction of a real photo's time (U2Net's input is 320x320 whatever
# the photo's size, so its kernels are the ones real photos need).
WARM_UP_PHOTO_SIZE = (160, 120)


class PreloadedWorker(Worker):
    """RQ's forking worker whose horses reset what must not be shared with the preloaded parent."""

    app: Flask
    torch_threads: int
    heartbeat_grace_seconds: int = 60
    cold_shutdown_started: bool = False

    def main_work_horse(self, job: Job, queue: Queue) -> None:
        """Prepare the freshly forked horse, then run the job as RQ does."""
        # Its metrics go to its worker's files, not to new ones per horse (one per job would pile up).
        metrics.work_horse_started()
        with self.app.app_context():
            db.engine.dispose(close=False)
        torch.set_num_threads(self.torch_threads)
        super().main_work_horse(job, queue)

    def get_heartbeat_ttl(self, job: Job, working_time: float = 0.0) -> int:
        """Return how long the job's execution stays alive without a heartbeat (RQ adds a fixed 60 s)."""
        remaining = self.job_monitoring_interval
        if job.timeout and job.timeout > 0:
            remaining = min(job.timeout - working_time, remaining)
        return int(max(remaining, 1)) + self.heartbeat_grace_seconds

    def request_force_stop(self, signum: int, frame: FrameType | None) -> None:
        """Cold shutdown: RQ kills the horse and exits; hand the interrupted job back first."""
        if self.cold_shutdown_started:
            return  # a third signal must not interrupt the hand-back
        interrupted = list(self.executions.values())
        try:
            super().request_force_stop(signum, frame)
        except SystemExit:
            self.cold_shutdown_started = True
            for execution in interrupted:
                self.requeue_interrupted(execution)
            raise

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
            # Straight onto the queue: the job still holds its account's concurrency slot (studio/queue.py), which
            # RQ's enqueue_job would make it wait for again behind the account's other photos.
            queue._enqueue_job(job, at_front=True)
            with self.connection.pipeline() as pipeline:
                self.cleanup_execution(job, pipeline=pipeline, execution=execution)
                pipeline.execute()
            logger.warning("task %s: interrupted by a cold shutdown; queued again", job.id)
        except Exception:  # noqa: BLE001 - shutting down: RQ's abandoned-job check and the reconciler remain
            logger.exception("could not queue the interrupted job %s again", execution.job_id)


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description="Process Photo Studio tasks from the RQ queue.")
    parser.add_argument("queues", nargs="*", help="queues to listen on (default: STUDIO_QUEUE)")
    parser.add_argument("--with-scheduler", action="store_true",
                        help="also run RQ's scheduler (it requeues delayed retries) and rq-scheduler's periodic jobs "
                             "(the task reconciler); run at least one such worker")
    parser.add_argument("--burst", action="store_true", help="quit when the queues are empty")
    parser.add_argument("--name", help="worker name (default: random)")
    parser.add_argument("--simple", action="store_true", help="run jobs in this process instead of forking")
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

    Each job runs in a new process (the forked horse), and what a process does the first time it runs an operation
    (oneDNN creates and compiles the kernel of each convolution, PIL loads its codecs, the operation's modules are
    imported) cost every job again: about 45 ms of CPU on a 520 ms cutout of the fixture photos (with gc.freeze in
    main). Done here once, the horses inherit it. Always on one thread, whatever the caller set: a parallel region
    run here would deadlock every horse that computes with more than one (see the module docstring). Other
    operations still pay their first run in each horse.
    """
    config = app.config
    operation = get_operation(DEFAULT_OPERATION)
    started, threads = time.perf_counter(), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        options = operation.parse({}, models=tuple(available_model_names(config["STUDIO_MODEL_DIR"])),
                                  default_model=config["STUDIO_DEFAULT_MODEL"])
        process(operation, made_up_photo(), options, model_dir=config["STUDIO_MODEL_DIR"],
                limits=Limits(config["STUDIO_MAX_PIXELS"], config["STUDIO_MAX_OUTPUT_PIXELS"]),
                png_compress_level=config["STUDIO_PNG_COMPRESS_LEVEL"])
    except Exception as error:  # noqa: BLE001 - a slower first run in each horse is no reason to stop the worker
        logger.warning("warm-up skipped, each job pays for its first run: %s", error)
        return False
    finally:
        torch.set_num_threads(threads)
    logger.info("warmed up: %s in %.2f s", ", ".join(f"{operation.name} {model}" for model in
                                                     operation.models_for(options)), time.perf_counter() - started)
    return True


def made_up_photo() -> bytes:
    """Return a small JPEG with gradients in it (the most common upload format, so its decoder is loaded)."""
    linear, radial = Image.linear_gradient("L"), Image.radial_gradient("L")
    photo = Image.merge("RGB", (linear, radial, linear.transpose(Image.Transpose.ROTATE_90)))
    buffer = io.BytesIO()
    photo.resize(WARM_UP_PHOTO_SIZE).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


def processes_photos(app: Flask, arguments: argparse.Namespace) -> bool:
    """Return True when this worker takes processing jobs (a webhook-only worker needs no model)."""
    return not arguments.queues or app.config["STUDIO_QUEUE"] in arguments.queues


def build_worker(app: Flask, arguments: argparse.Namespace, torch_threads: int) -> Worker:
    """Return the worker for the queues, forking unless CUDA or --simple says otherwise."""
    queues = arguments.queues or [app.config["STUDIO_QUEUE"]]
    connection = outage_tolerant_redis(app.config["REDIS_URL"], app.config["STUDIO_WORKER_REDIS_OUTAGE_SECONDS"])
    if arguments.simple or torch.cuda.is_available():
        torch.set_num_threads(torch_threads)
        return SimpleWorker(queues, name=arguments.name, connection=connection,
                            maintenance_interval=app.config["STUDIO_WORKER_MAINTENANCE_SECONDS"])
    worker = PreloadedWorker(queues, name=arguments.name, connection=connection,
                             work_horse_killed_handler=on_work_horse_killed,
                             job_monitoring_interval=app.config["STUDIO_WORKER_MONITOR_SECONDS"],
                             maintenance_interval=app.config["STUDIO_WORKER_MAINTENANCE_SECONDS"])
    worker.app = app
    worker.torch_threads = torch_threads
    worker.heartbeat_grace_seconds = app.config["STUDIO_WORKER_HEARTBEAT_GRACE_SECONDS"]
    return worker


def start_periodic_scheduler(arguments: argparse.Namespace) -> multiprocessing.Process:
    """Run rq-scheduler's loop (periodic jobs) in a child process that ends with this worker."""
    # Forked first thing, before torch or the database are touched, so the child inherits neither. rq-scheduler
    # takes a Redis lock, so several workers started with --with-scheduler still enqueue each periodic job once.
    config = settings.from_environment()
    queue = (arguments.queues or [config["STUDIO_QUEUE"]])[0]
    process = multiprocessing.get_context("fork").Process(
        target=run_scheduler, args=(config["REDIS_URL"], queue, config["STUDIO_WORKER_REDIS_OUTAGE_SECONDS"]),
        name="rq-scheduler", daemon=True)
    process.start()
    return process


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
    if arguments.with_scheduler:
        start_periodic_scheduler(arguments)
    torch_threads = torch.get_num_threads()
    # One thread while loading: see the module docstring (libgomp and fork).
    torch.set_num_threads(1)
    app = create_app()
    torch_threads = app.config.get("STUDIO_TORCH_THREADS") or torch_threads
    bind_app(app)
    metrics.init_worker(app)
    get_storage(app)
    if processes_photos(app, arguments):
        try:
            names = preload_models(app)
        except Exception as error:  # noqa: BLE001 - any failure to load means this worker cannot do its job
            logger.error("cannot load the models from %s: %s", app.config["STUDIO_MODEL_DIR"], error)
            return 1
        logger.info("models loaded: %s; %s torch threads per job", ", ".join(names) or "none", torch_threads)
        warm_up(app)
    warn_if_redis_is_down(app)
    worker = build_worker(app, arguments, torch_threads)
    # Everything built so far lives as long as the worker: out of the garbage collector's way, a horse's collections
    # no longer write into those objects' pages, which it would otherwise copy from the parent (copy-on-write).
    gc.freeze()
    worker.work(burst=arguments.burst, with_scheduler=arguments.with_scheduler, logging_level="INFO")
    return 0


if __name__ == "__main__":
    sys.exit(main())
