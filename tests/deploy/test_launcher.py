"""`make run`'s launcher, for real: embedded Redis, SQLite, gunicorn and a worker, then a clean stop of all of it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Iterator

import psutil
import pytest
from redis import Redis

from tests.support.services import MODEL_DIR
from studio import settings
from tests.support.network import free_port
from tests.support.processes import wait_until
from tests.support.servers import end_process_group

pytestmark = pytest.mark.integration

START_SECONDS = 300


class RunningStudio:
    """A launcher started in its own session, with a temporary instance folder."""

    def __init__(self, tmp_path: Path) -> None:
        self.port = free_port()
        self.instance = tmp_path / "instance"
        self.log = tmp_path / "launcher.log"
        env = {name: value for name, value in os.environ.items()
               if name not in {"REDIS_URL", "DATABASE_URL", "STUDIO_S3_BUCKET", "SECRET_KEY"}}
        env.update(PORT=str(self.port), STUDIO_INSTANCE_DIR=str(self.instance),
                   STUDIO_MODEL_DIR=str(MODEL_DIR))
        with open(self.log, "wb") as log:
            self.process = subprocess.Popen([sys.executable, "-m", "processes.launcher"], env=env,
                                            cwd=settings.PROJECT_ROOT, stdout=log, stderr=subprocess.STDOUT,
                                            start_new_session=True)

    def output(self) -> str:
        """Return what the launcher and its children printed."""
        return self.log.read_text(errors="replace")

    def healthz(self) -> tuple[int, dict] | None:
        """Return /healthz's status and body, or None while nothing answers."""
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/healthz", timeout=5) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())
        except OSError:
            return None

    def wait_until_serving(self) -> dict:
        """Wait for /healthz to say ok; fail with the output if the launcher exits or it never does."""
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"launcher exited early:\n{self.output()}"
            answer = self.healthz()
            if answer and answer[0] == 200:
                return answer[1]
            time.sleep(0.5)
        pytest.fail(f"no healthy /healthz within {START_SECONDS}s:\n{self.output()}")

    def wait_for_workers(self) -> list[psutil.Process]:
        """Wait until the workers run and return the launcher's children: it starts the workers once the web server
        listens, at its next look, a moment after /healthz answers."""
        def launched() -> list[psutil.Process]:
            try:
                children = still_running(psutil.Process(self.process.pid).children())
                return children if any("--with-scheduler" in process.cmdline() for process in children) else []
            except psutil.Error:  # one ended meanwhile: look again
                return []

        return wait_until(launched, "the workers start", diagnostics=self.output)

    def descendants(self) -> list[psutil.Process]:
        """Return every process the launcher started, and theirs."""
        return psutil.Process(self.process.pid).children(recursive=True)

    def wait_for_exit(self) -> int:
        """Wait for the launcher to exit and return its status."""
        return self.process.wait(timeout=120)

    def kill(self) -> None:
        """Kill whatever is left (only after a failed test): the launcher and what it started, each child being in
        a process group of its own."""
        try:
            left = psutil.Process(self.process.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            left = []
        for process in left:
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass
        end_process_group(self.process)


def still_running(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Return the processes that are alive (zombies waiting for their parent's wait() count as gone)."""
    alive = []
    for process in processes:
        try:
            if process.is_running() and process.status() != psutil.STATUS_ZOMBIE:
                alive.append(process)
        except psutil.NoSuchProcess:
            pass
    return alive


@pytest.fixture
def studio(tmp_path: Path) -> Iterator[RunningStudio]:
    """Start the launcher, and make sure nothing of it outlives the test."""
    running = RunningStudio(tmp_path)
    yield running
    running.kill()


def test_the_launcher_serves_on_embedded_services_and_stops_everything_on_ctrl_c(studio: RunningStudio) -> None:
    health = studio.wait_until_serving()
    studio.wait_for_workers()
    children = studio.descendants()
    names = " ".join(" ".join(process.cmdline()) for process in children)

    assert health["status"] == "ok"
    assert "redis-server" in names and "gunicorn" in names and "rq_worker.py --with-scheduler" in names
    # Its children's malloc maps huge pages (processes/memory.py), on top of the environment it was given.
    for process in children:
        if "redis-server" not in " ".join(process.cmdline()):
            assert process.environ().get("GLIBC_TUNABLES") == "glibc.malloc.hugetlb=1", process.cmdline()
    assert f"http://127.0.0.1:{studio.port}" in studio.output()
    # SQLite and the embedded Redis live in the instance folder it was given.
    assert (studio.instance / "studio.sqlite3").is_file()
    config = (studio.instance / "redis" / "redis.conf").read_text()
    assert "maxmemory-policy noeviction" in config
    port = next(line.split()[1] for line in config.splitlines() if line.startswith("port "))
    password = next(line.split()[1] for line in config.splitlines() if line.startswith("requirepass "))
    redis = Redis(host="127.0.0.1", port=int(port), password=password)
    assert redis.config_get("maxmemory-policy") == {"maxmemory-policy": "noeviction"}
    redis.close()

    studio.process.send_signal(signal.SIGINT)

    assert studio.wait_for_exit() == 0
    assert psutil.wait_procs(still_running(children), timeout=10)[1] == []


def test_the_launcher_starts_a_dead_worker_again_and_stops_everything_when_the_web_server_dies(
        studio: RunningStudio) -> None:
    studio.wait_until_serving()
    launched = studio.wait_for_workers()
    worker = next(process for process in launched if "--with-scheduler" in process.cmdline())

    worker.kill()  # as a job that crashes a worker running it in its own process, or the OOM killer

    wait_until(lambda: "worker exited unexpectedly with status -9" in studio.output()
               and "started worker again" in studio.output(), "the worker started again", diagnostics=studio.output)
    replacement = next(process for process in still_running(psutil.Process(studio.process.pid).children())
                       if "--with-scheduler" in process.cmdline())
    assert replacement.pid != worker.pid
    assert studio.process.poll() is None
    children = studio.descendants()
    web = next(process for process in launched if "gunicorn" in " ".join(process.cmdline()))

    web.kill()

    assert studio.wait_for_exit() == 1
    assert "web server exited unexpectedly" in studio.output()
    assert psutil.wait_procs(still_running(children), timeout=10)[1] == []


def test_a_worker_that_keeps_dying_is_started_again_later_and_later_and_never_given_up() -> None:
    from processes import launcher

    child = launcher.Child("worker", [sys.executable, "-c", "raise SystemExit(3)"], os.environ, restartable=True)
    statuses, delays = [], []
    for _ in range(len(launcher.RESTART_DELAYS) + 2):
        statuses.append(child.process.wait(timeout=60))
        delays.append(child.died())
        child.restart_at = 0.0  # due now: the test does not wait the delay out
        assert child.restart_if_due()

    assert statuses == [3] * len(delays)
    assert delays == [*launcher.RESTART_DELAYS, launcher.RESTART_DELAYS[-1], launcher.RESTART_DELAYS[-1]]
    assert delays == sorted(delays) and delays[0] == 0.0
    child.kill_group()
    web = launcher.Child("web server", [sys.executable, "-c", ""], os.environ)
    web.process.wait(timeout=60)
    assert web.died() is None


class StopAfterDeaths:
    """A stop request that arrives once the child has died that many times."""

    def __init__(self, child, deaths: int) -> None:
        self.child, self.deaths = child, deaths

    @property
    def signal(self) -> int | None:
        return signal.SIGTERM if len(self.child.deaths) >= self.deaths else None


def test_a_worker_that_keeps_dying_never_stops_the_web_server(monkeypatch) -> None:
    from processes import launcher

    monkeypatch.setattr(launcher, "RESTART_DELAYS", (0.0,))
    web = launcher.Child("web server", [sys.executable, "-c", "import time; time.sleep(600)"], os.environ)
    worker = launcher.Child("worker", [sys.executable, "-c", "raise SystemExit(3)"], os.environ, restartable=True)
    try:
        status = launcher.supervise([web, worker], free_port(), StopAfterDeaths(worker, 12))

        assert status == 0  # stopped by the signal, not by the dying worker
        assert web.exited() is None
    finally:
        launcher.stop_all([web, worker], grace_seconds=5)


def test_a_launcher_killed_outright_leaves_nothing_running(studio: RunningStudio) -> None:
    studio.wait_until_serving()
    studio.wait_for_workers()
    children = studio.descendants()
    names = " ".join(" ".join(process.cmdline()) for process in children)
    assert "redis-server" in names and "gunicorn" in names and "rq_worker.py" in names

    studio.process.kill()  # as the OOM killer, or a `kill -9` of `make run`
    studio.process.wait()

    try:
        assert psutil.wait_procs(still_running(children), timeout=60)[1] == []
    finally:
        for process in still_running(children):  # orphans, should the test fail: none may outlive it
            try:
                process.kill()
            except psutil.NoSuchProcess:
                pass


def test_the_launcher_refuses_a_bad_port(tmp_path: Path) -> None:
    env = dict(os.environ, PORT="eighty", STUDIO_INSTANCE_DIR=str(tmp_path))
    result = subprocess.run([sys.executable, "-m", "processes.launcher"], env=env, cwd=settings.PROJECT_ROOT,
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 1
    assert "PORT must be a number" in result.stderr


def test_make_run_starts_one_photo_worker_per_core_and_a_webhook_worker():
    from processes.launcher import LauncherError, worker_commands, worker_count

    assert worker_count({"STUDIO_WORKERS": 3}) == 3
    assert worker_count({"STUDIO_WORKERS": 0}) == len(__import__("os").sched_getaffinity(0))
    with pytest.raises(LauncherError, match="STUDIO_WORKERS must be 0"):
        worker_count({"STUDIO_WORKERS": -1})
    commands = [command[1:] for command in worker_commands(3, "hooks", prefix="here")]
    assert commands == [["rq_worker.py", "--with-scheduler", "--name", "here-photos-0"],
                        ["rq_worker.py", "--name", "here-photos-1"], ["rq_worker.py", "--name", "here-photos-2"],
                        ["rq_worker.py", "hooks", "--name", "here-webhooks"]]
    # Quick-only workers come besides, under names of their own.
    quick = [command[1:] for command in worker_commands(2, "hooks", prefix="here", quick=1)]
    assert quick[2] == ["rq_worker.py", "--quick-only", "--name", "here-quick-0"]
    assert len({command[-1] for command in worker_commands(2, quick=2)}) == 5
    # Each slot keeps its name when started again; two launchers' names differ.
    assert worker_commands(1) == worker_commands(1)
    assert len({command[-1] for command in worker_commands(4)}) == 5
