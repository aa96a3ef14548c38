"""Real processes for crash-recovery tests: a PostgreSQL cluster and a Redis server of our own (so tests may stop and
restart them), real `python rq_worker.py` processes, and an app that uploads through the API and runs the reconciler.
"""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import psutil
import pytest
from flask import Flask
from redis import Redis
from redis.exceptions import RedisError
from sqlalchemy import func, select

from jobs.maintenance import reconcile_tasks
from studio.extensions import db
from studio.models import DailyUsage, Task
from studio.queue import JOB_FUNCTION, get_queue, photo_queues
from tests.support.network import free_port
from tests.support.services import require
from tests.support.sqs import Queues
from tests.support.studio import load_task, upload

ROOT = Path(__file__).resolve().parents[2]
PHOTO = "rifle2.jpeg"  # 290x173: a job takes well under a second
WORKER_START_SECONDS = 120
SERVER_START_SECONDS = 30
# Each bounded wait gives up after this long; nothing here should take more than a few seconds.
WAIT_SECONDS = 60
T = TypeVar("T")


def wait_until(condition: Callable[[], T], what: str, timeout: float = WAIT_SECONDS,
               diagnostics: Callable[[], str] = lambda: "") -> T:
    """Poll condition until it returns something truthy and return that; fail after timeout seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"not within {timeout}s: {what}\n{diagnostics()}")
        time.sleep(0.1)


class RedisServer:
    """A redis-server of our own without persistence: stopping it loses every job, as a crash would."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        """Start the server and wait until it answers."""
        executable = shutil.which("redis-server")
        require(executable is not None, "redis-server is not installed")
        self.process = subprocess.Popen(
            [executable, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--maxmemory-policy", "noeviction", "--dir", str(self.workdir)],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        client = Redis.from_url(self.url, socket_connect_timeout=1)
        wait_until(lambda: self._answers(client), f"redis-server on port {self.port} answers", SERVER_START_SECONDS)
        client.close()

    @staticmethod
    def _answers(client: Redis) -> bool:
        try:
            return bool(client.ping())
        except RedisError:
            return False

    def stop(self) -> None:
        """Kill the server: whatever it held is gone."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=30)

    def restart(self) -> None:
        """Kill the server and start an empty one on the same port."""
        self.stop()
        self.start()


class PostgresCluster:
    """A PostgreSQL cluster of our own in a temporary folder, started and stopped with pg_ctl."""

    def __init__(self) -> None:
        binaries = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda path: int(path.split("/")[4]))
        initdb = binaries[-1] if binaries else shutil.which("initdb")
        require(initdb is not None, "PostgreSQL's initdb is not installed")
        self.bindir = Path(initdb).parent
        self.folder = Path(tempfile.mkdtemp(prefix="studio-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"
        # initdb refuses to run as root: run the server tools as the postgres account then.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.as_user:
            shutil.chown(self.folder, "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync", "-E", "UTF8")

    def _run(self, tool: str, *arguments: str) -> None:
        subprocess.run([*self.as_user, str(self.bindir / tool), *arguments], check=True, cwd=self.folder,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=120)

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-o", options, "-l", str(self.folder / "server.log"), "-w",
                  "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server (fast: disconnect every client at once, as a restart does)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def remove(self) -> None:
        """Stop the server if it runs and delete the cluster."""
        try:
            self.stop("immediate")
        except subprocess.CalledProcessError:
            pass
        shutil.rmtree(self.folder, ignore_errors=True)


class WorkerProcess:
    """A real `python rq_worker.py` in a process group of its own; its output goes to a log file."""

    def __init__(self, env: dict[str, str], log: Path, arguments: list[str], name: str | None = None) -> None:
        self.log = log
        self.name = name or f"worker-{uuid.uuid4().hex[:8]}"
        with open(log, "wb") as output:
            self.process = subprocess.Popen([sys.executable, "rq_worker.py", "--name", self.name, *arguments],
                                            cwd=ROOT, env=env, stdout=output, stderr=subprocess.STDOUT,
                                            process_group=0)
        self._seen: set[int] = set()

    def output(self) -> str:
        """Return what the worker logged so far (the tail)."""
        return f"--- {self.log.name} ---\n" + self.log.read_text(errors="replace")[-6000:]

    def wait_until_listening(self) -> None:
        """Wait until the worker has loaded the model and listens on the queue."""
        wait_until(lambda: self.process.poll() is not None or "Listening on" in self.log.read_text(errors="replace"),
                   "the worker listens", WORKER_START_SECONDS, self.output)
        assert self.process.poll() is None, f"the worker exited early\n{self.output()}"

    def horse_pid(self) -> int | None:
        """Return the pid of the work horse running a job now, if any (the worker's only child process)."""
        try:
            children = psutil.Process(self.process.pid).children()
        except psutil.NoSuchProcess:
            return None
        self._seen.update(child.pid for child in children)
        return children[0].pid if len(children) == 1 else None

    def kill_horse(self) -> int:
        """SIGKILL the work horse only, as the OOM killer would; return its pid."""
        pid = wait_until(self.horse_pid, "a work horse is running", diagnostics=self.output)
        os.kill(pid, signal.SIGKILL)
        return pid

    def kill(self) -> None:
        """SIGKILL the worker and its work horse at once, as a lost machine would."""
        horse = self.horse_pid()
        os.kill(self.process.pid, signal.SIGKILL)
        if horse is not None:
            try:
                os.kill(horse, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)

    def kill_group(self) -> None:
        """SIGKILL the worker's process group (not its horse, which RQ puts in a group of its own), as a supervisor
        or the OOM killer ends a worker."""
        self.horse_pid()  # remember the horse, for close()
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def terminate(self) -> None:
        """Send SIGTERM to the worker (not its horse), as `docker stop` does."""
        self.process.send_signal(signal.SIGTERM)

    def exited(self) -> int | None:
        """Return the exit status once the worker has ended."""
        return self.process.poll()

    def close(self) -> None:
        """Kill whatever is left of the worker: itself, its group, every horse it forked."""
        pids = set(self._seen)
        try:
            pids.update(child.pid for child in psutil.Process(self.process.pid).children(recursive=True))
        except psutil.NoSuchProcess:
            pass
        for pid in [self.process.pid, *pids]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=30)


class Studio:
    """The app (uploads, reads, the reconciler) and the workers of one test, on its own Redis, its tasks queued on
    RQ or, given queues, on SQS."""

    def __init__(self, app: Flask, redis: RedisServer, headers: dict[str, str], tmp_path: Path) -> None:
        self.app = app
        self.redis = redis
        self.client = app.test_client()
        self.headers = headers
        self.tmp_path = tmp_path
        self.workers: list[WorkerProcess] = []
        # The SQS queues the tasks go to (STUDIO_QUEUE_BACKEND=sqs), None on RQ.
        self.queues: Queues | None = None
        # What every worker of this Studio gets in its environment (before a start_worker's own settings): the
        # SQS queue to consume, how many jobs an RQ worker runs in one process.
        self.worker_defaults: dict[str, str] = {}

    def upload(self, photo: bytes, filename: str = PHOTO, **options: str) -> str:
        """Upload a photo through the API (with the operation and options given); return the new task's id."""
        response = upload(self.client, self.headers, photo, filename=filename, **options)
        assert response.status_code == 202, response.get_data(as_text=True)
        return response.get_json()["id"]

    def task(self, task_id: str) -> Task | None:
        """Return the task row as it is now."""
        return load_task(self.app, task_id)

    def status(self, task_id: str) -> str | None:
        """Return the task's status now."""
        task = self.task(task_id)
        return task.status if task else None

    def queued_ids(self) -> list[str]:
        """Return the ids of the jobs waiting in the processing queues, in the order workers take them."""
        with self.app.app_context():
            return [job_id for name in photo_queues(self.app.config) for job_id in get_queue(name=name).job_ids]

    def backlog(self) -> int:
        """Return how many tasks the queue still holds: SQS messages, visible or in flight, or RQ jobs waiting."""
        if self.queues is not None:
            return self.queues.count(self.queues.url)
        return len(self.queued_ids())

    def deliver_again(self, task_id: str) -> None:
        """Queue the task's job once more, as a duplicate delivery: a second SQS message, or the RQ job again."""
        if self.queues is not None:
            self.queues.send_task(task_id, group="duplicates")
            return
        with self.app.app_context():
            get_queue(name=photo_queues(self.app.config)[0]).enqueue(JOB_FUNCTION, task_id, job_id=task_id)

    def usage_counts(self) -> tuple[int, int]:
        """Return the tasks and the completed tasks counted in the usage, all accounts and days together."""
        with self.app.app_context():
            row = db.session.execute(select(func.coalesce(func.sum(DailyUsage.tasks), 0),
                                            func.coalesce(func.sum(DailyUsage.completed_tasks), 0))).one()
            db.session.remove()
            return int(row[0]), int(row[1])

    def result_files(self) -> list[Path]:
        """Return every stored result object."""
        root = Path(self.app.config["STUDIO_STORAGE_DIR"]) / "results"
        return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []

    def worker_env(self, **overrides: Any) -> dict[str, str]:
        """Return the environment of a worker on this test's services and settings."""
        config = self.app.config
        env = {
            **os.environ,
            "PYTHONUNBUFFERED": "1",
            "SECRET_KEY": "test-secret",
            "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": config["REDIS_URL"],
            "STUDIO_QUEUE": config["STUDIO_QUEUE"],
            "STUDIO_SLOW_QUEUE": config.get("STUDIO_SLOW_QUEUE") or "",
            "STUDIO_STORAGE_DIR": config["STUDIO_STORAGE_DIR"],
            "STUDIO_MODEL_DIR": config["STUDIO_MODEL_DIR"],
            "STUDIO_S3_BUCKET": "",
            "STUDIO_TORCH_THREADS": "1",
            "STUDIO_JOB_RETRIES": str(config["STUDIO_JOB_RETRIES"]),
            "STUDIO_JOB_RETRY_INTERVALS": ",".join(str(seconds) for seconds in config["STUDIO_JOB_RETRY_INTERVALS"]),
            "STUDIO_JOB_TIMEOUT": str(config["STUDIO_JOB_TIMEOUT"]),
            "STUDIO_HEARTBEAT_SECONDS": str(config["STUDIO_HEARTBEAT_SECONDS"]),
            # Tests upload one photo many times and mean each upload to run (tests/tasks/test_duplicates.py turns
            # reuse on where it is the subject).
            "STUDIO_REUSE_DUPLICATES": "true" if config["STUDIO_REUSE_DUPLICATES"] else "false",
            "STUDIO_WORKER_MONITOR_SECONDS": "1",
            "STUDIO_WORKER_HEARTBEAT_GRACE_SECONDS": "2",
            "STUDIO_WORKER_MAINTENANCE_SECONDS": "1",
        }
        env.pop("STUDIO_FAULT_INJECTION", None)
        env.update(self.worker_defaults)
        env.update({name: str(value) for name, value in overrides.items()})
        return env

    def start_worker(self, *arguments: str, wait: bool = True, name: str | None = None, **env: Any) -> WorkerProcess:
        """Start `python rq_worker.py` with extra environment (and a name, else a new one); wait until it listens."""
        worker = WorkerProcess(self.worker_env(**env), self.tmp_path / f"worker-{len(self.workers) + 1}.log",
                               list(arguments), name)
        self.workers.append(worker)
        if wait:
            worker.wait_until_listening()
        return worker

    def logs(self) -> str:
        """Return the workers' logs, for failure messages."""
        return "\n".join(worker.output() for worker in self.workers)

    def wait_for_status(self, task_id: str, *statuses: str, timeout: float = WAIT_SECONDS,
                        reconcile: bool = False) -> Task:
        """Wait until the task has one of the statuses (running the reconciler meanwhile, if asked); return it."""
        def reached() -> Task | None:
            if reconcile:
                reconcile_tasks()
            task = self.task(task_id)
            return task if task is not None and task.status in statuses else None
        return wait_until(reached, f"task {task_id} becomes {' or '.join(statuses)} "
                                   f"(now {self.status(task_id)})", timeout, self.logs)

    def close(self) -> None:
        """Kill every worker this test started."""
        for worker in self.workers:
            worker.close()


@dataclass(frozen=True)
class Stack:
    """The queue backend and kind of worker a test runs on (tests/plugins/processes.py, the `stack` fixture)."""

    name: str
    make_studio: Callable[..., Studio]

    @property
    def sqs(self) -> bool:
        """Return True for STUDIO_QUEUE_BACKEND=sqs."""
        return self.name == "sqs"
