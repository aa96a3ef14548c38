"""The service against the CLI on the same photos, in one run: images per second through the API on `make run`'s
stack, and through `flask studio remove-bg` as its own process.

Rounds alternate (service, CLI, service, CLI, ...), so machine noise hits both alike; each prints both figures and
their ratio, then the medians. The same 24 photos on both sides (the 12 fixture photos, twice), the same operation
(remove_background, u2netp, PNG).

- Service: the real stack, started once as `make run` starts it (`python -m processes.launcher`, a temporary
  STUDIO_INSTANCE_DIR, a free PORT; SQLite, local storage and the embedded Redis unless --database-url and
  --redis-url say otherwise), an account made with `flask studio create-user` and a token from POST /api/v1/tokens,
  one untimed pass to warm the workers. The clock runs from the first upload (POST /api/v1/tasks) to the last
  result downloaded; one thread uploads the photos one after another while another waits on the oldest unfinished
  task with GET /api/v1/tasks/<id>?wait=--wait (long polling: the answer comes when it finishes) and downloads each
  result as soon as it is COMPLETED. --wait 0 polls every --poll seconds instead.
- CLI: `flask --app wsgi studio remove-bg --model u2netp --format png --out DIR` over a folder of the photos plus
  one warm-up photo that sorts first, as a process of its own. Its clock runs from the warm-up photo's output
  appearing to the last output appearing (the bench watches the folder every 10 ms), so the CLI is timed without
  its process start-up, model load and first run, as the service's workers have done theirs before its clock
  starts; its CPU time over the same span comes from /proc. Its whole-command figure, start-up included, is
  printed too. (The CLI's second stream may have started a photo before its clock starts: at most one small
  photo's time, a few per cent, in the CLI's favour.)

Then, per service round, where the time went, from the tasks' own timestamps: the upload request (client side),
the wait in the queue (created to started), the job (started to finished), how long the bench took to see a
finished task, the download, and how busy the workers were (the jobs' time over the wall time of all workers); and
the CPU each side spent per photo: the stack's processes by role (from /proc; the work horses through their
workers' ended-children times), the bench's own client, and the CLI over its clocked span.

    .venv/bin/python bench/service.py [--rounds 3] [--workers 0] [--jobs-per-process 1000,1] [--wait 20]
        [--poll 0.25] [--uploaders 1] [--database-url postgresql://...] [--redis-url redis://127.0.0.1:6379/11]
        [--keep]

It runs the rounds on one stack per --jobs-per-process (STUDIO_WORKER_JOBS_PER_PROCESS): by default first as
`make run` does, 1000 jobs in each worker's own process (no fork; the jobs' CPU counts under "workers"), then with a
new process per job (RQ forks a work horse for each; their CPU counts under "jobs"), and ends with both medians.

The bench's stack has the rate limits raised (not off: the limiter's cost stays in the figure), and an account
concurrency equal to the workers, so one account can keep every worker busy.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from queue import Queue

import requests
from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from processes import memory  # noqa: E402 - the bench runs as a script from the repository

PYTHON = ROOT / ".venv" / "bin" / "python"
DEFAULT_PHOTOS = ROOT.parent / "shared" / "fixtures" / "photos"
MODEL_DIR = ROOT / "instance" / "models"
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}
WARM_UP_PHOTO = "rifle2.jpeg"  # the smallest fixture: the CLI's start-up run costs little besides start-up
START_SECONDS = 180.0
ROUND_TIMEOUT_SECONDS = 600.0
OPTIONS = {"operation": "remove_background", "model": "u2netp", "format": "png"}


@dataclass
class TaskTiming:
    """One photo's way through the service, in seconds since the round's clock started (None: not seen)."""

    name: str
    upload_started: float = 0.0
    uploaded: float = 0.0
    created: float | None = None
    started: float | None = None
    finished: float | None = None
    seen: float = 0.0
    downloaded: float = 0.0
    result: bytes = b""


@dataclass
class ServiceRound:
    seconds: float
    tasks: list[TaskTiming] = field(default_factory=list)
    cpu: dict[str, float] = field(default_factory=dict)
    polls: int = 0


def parse_arguments(argv: list[str]) -> argparse.Namespace:
    """Parse the command line."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=Path, default=DEFAULT_PHOTOS, help="folder of photos")
    parser.add_argument("--copies", type=int, default=2, help="how many times each photo is sent (default 2)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=0, help="STUDIO_WORKERS (0: one per core, the default)")
    parser.add_argument("--wait", type=int, default=20,
                        help="seconds each request for the oldest unfinished task may wait for it to finish "
                             "(?wait=, default 20); 0: poll every --poll seconds instead")
    parser.add_argument("--poll", type=float, default=0.25,
                        help="with --wait 0, seconds between two polls of the oldest unfinished task (default 0.25; "
                             "the web page polls every second)")
    parser.add_argument("--uploaders", type=int, default=1, help="uploads in flight at once")
    parser.add_argument("--database-url", help="DATABASE_URL for the stack (default: SQLite in a temporary folder)")
    parser.add_argument("--redis-url", help="REDIS_URL for the stack (default: the embedded Redis); give it a "
                                            "database of its own")
    parser.add_argument("--model-dir", type=Path, default=MODEL_DIR)
    parser.add_argument("--jobs-per-process", type=_counts, default=[1000, 1],
                        help="STUDIO_WORKER_JOBS_PER_PROCESS of each stack, one after the other (default 1000,1: the "
                             "default, 1000 jobs in each worker's own process, then a new process per job)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary folder (logs, results)")
    return parser.parse_args(argv)


def prepare_photos(source: Path, copies: int, work: Path) -> tuple[Path, list[Path]]:
    """Link the photos into a folder `copies` times over, with the warm-up photo; return the folder and the photos
    (without the warm-up photo)."""
    photos = sorted(path for path in source.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
    folder = work / "cli-input"
    folder.mkdir()
    linked = []
    for copy in range(1, copies + 1):
        for photo in photos:
            link = folder / f"{copy}-{photo.name}"
            link.symlink_to(photo)
            linked.append(link)
    # "0-" sorts first, so the CLI processes it first.
    (folder / f"0-{WARM_UP_PHOTO}").symlink_to(source / WARM_UP_PHOTO)
    return folder, linked


def _counts(value: str) -> list[int]:
    return [int(item) for item in value.split(",")]


def stack_environment(arguments: argparse.Namespace, work: Path, port: int, workers: int,
                      jobs_per_process: int) -> dict[str, str]:
    """Return the environment of the bench's stack and CLI: `make run`'s defaults, in a temporary instance. The
    CLI gets the malloc tuning that the launcher gives the stack's processes (processes/memory.py), so both compute
    alike."""
    outside = {"DATABASE_URL", "REDIS_URL", "PORT"}
    env = memory.with_huge_pages({name: value for name, value in os.environ.items()
                                  if not name.startswith("STUDIO_") and name not in outside})
    env.update({
        "STUDIO_INSTANCE_DIR": str(work / "instance"),
        "STUDIO_MODEL_DIR": str(arguments.model_dir),
        "PORT": str(port),
        "SECRET_KEY": secrets.token_hex(16),
        "STUDIO_RATELIMIT_UPLOAD": "100000 per minute",
        "STUDIO_RATELIMIT_READ": "1000000 per minute",
        "STUDIO_ACCOUNT_CONCURRENCY": str(workers),
        "STUDIO_MAX_UNFINISHED_TASKS": "1000",
        "STUDIO_WORKER_JOBS_PER_PROCESS": str(jobs_per_process),
        # The bench sends the same photos again (the warm-up pass, then each photo twice): with reuse on, the
        # service would answer from the earlier results without running a model, and time its cache.
        "STUDIO_REUSE_DUPLICATES": "0",
        # One worker per core, as many photos at once as the CLI's streams: make run's extra quick-only worker
        # would be a third process on the same cores.
        "STUDIO_QUICK_WORKERS": "0",
    })
    if arguments.workers:
        env["STUDIO_WORKERS"] = str(arguments.workers)
    if arguments.database_url:
        env["DATABASE_URL"] = arguments.database_url
    if arguments.redis_url:
        env["REDIS_URL"] = arguments.redis_url
        # A queue of its own, so nothing left in a shared Redis by an earlier run is taken for this run's work.
        suffix = secrets.token_hex(4)
        env["STUDIO_QUEUE"], env["STUDIO_WEBHOOK_QUEUE"] = f"bench-{suffix}", f"bench-webhooks-{suffix}"
    (work / "instance").mkdir()
    return env


class Stack:
    """`make run`'s processes (python -m processes.launcher), an account and its API token."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.env = env
        self.base = f"http://127.0.0.1:{env['PORT']}"
        self.log = log_path.open("wb")
        self.process = subprocess.Popen([str(PYTHON), "-m", "processes.launcher"], env=env, cwd=ROOT,
                                        stdout=self.log, stderr=subprocess.STDOUT, process_group=0)
        self.token = ""

    def wait_until_serving(self) -> None:
        """Wait until the web server answers /livez."""
        deadline = time.monotonic() + START_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"the launcher exited with status {self.process.returncode}; see {self.log.name}")
            try:
                if requests.get(f"{self.base}/livez", timeout=2).ok:
                    return
            except (requests.ConnectionError, requests.Timeout):
                pass  # not listening yet, or a busy machine's gunicorn still starting its workers
            time.sleep(0.2)
        raise RuntimeError(f"the stack did not answer within {START_SECONDS:.0f} s; see {self.log.name}")

    def sign_in(self) -> None:
        """Create an account with the CLI and exchange its password for an API token."""
        email, password = f"bench-{secrets.token_hex(4)}@example.com", secrets.token_urlsafe(16)
        subprocess.run([str(PYTHON), "-m", "flask", "--app", "wsgi", "studio", "create-user", email,
                        "--password-stdin"], input=password + "\n", text=True, env=self.env, cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        answer = requests.post(f"{self.base}/api/v1/tokens", json={"email": email, "password": password}, timeout=30)
        answer.raise_for_status()
        self.token = answer.json()["token"]

    def session(self) -> requests.Session:
        """Return an HTTP session (kept-alive connections) bearing the token."""
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {self.token}"
        return session

    def stop(self) -> None:
        """Stop the launcher as Ctrl-C would (it stops its children in order), then anything left."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        self.log.close()


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def _process_table() -> dict[int, tuple[int, float, float]]:
    """Return each process's parent, its own CPU seconds and those of its children that have ended (from /proc)."""
    table = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        # After the name: state ppid ...; utime, stime, cutime, cstime are the 14th to 17th fields of the line.
        own, ended = (sum(int(value) for value in fields[index:index + 2]) / CLOCK_TICKS for index in (11, 13))
        table[int(entry.name)] = (int(fields[1]), own, ended)
    return table


def _role(pid: int) -> str:
    try:
        command = (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return "other"
    if "gunicorn" in command:
        return "web"
    if "redis-server" in command:
        return "redis"
    return "workers" if "rq_worker.py" in command else "other"


def stack_cpu_seconds(launcher: int) -> dict[str, float]:
    """Return the CPU seconds used so far under the launcher by role: web, workers (the RQ workers' own loops and
    their scheduler), jobs (the work horses, once ended), redis; and the bench's own as "client"."""
    table = _process_table()
    children: dict[int, list[int]] = {}
    for pid, (parent, _, _) in table.items():
        children.setdefault(parent, []).append(pid)
    totals = {"web": 0.0, "workers": 0.0, "jobs": 0.0, "redis": 0.0, "other": 0.0}
    for top in children.get(launcher, []):
        role, pending = _role(top), [top]
        while pending:
            pid = pending.pop()
            _, own, ended = table[pid]
            totals[role] += own
            # A worker's ended children are its work horses; anything else's are counted as its own.
            totals["jobs" if role == "workers" else role] += ended
            pending.extend(children.get(pid, []))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    totals["client"] = usage.ru_utime + usage.ru_stime
    return totals


def _server_seconds(value: str | None, epoch: datetime, offset: float) -> float | None:
    if value is None:
        return None
    return (datetime.fromisoformat(value) - epoch).total_seconds() + offset


def service_round(stack: Stack, photos: list[Path], arguments: argparse.Namespace) -> ServiceRound:
    """Upload the photos, wait until every task is COMPLETED, download each result; return the timings."""
    timings = [TaskTiming(photo.name) for photo in photos]
    task_ids: list[Queue] = [Queue(maxsize=1) for _ in photos]
    payloads = [photo.read_bytes() for photo in photos]
    failures: list[BaseException] = []
    cpu_before = stack_cpu_seconds(stack.process.pid)
    clock = time.perf_counter()
    epoch = datetime.now().astimezone()

    def upload(indices: range) -> None:
        session = stack.session()
        try:
            for index in indices:
                timings[index].upload_started = time.perf_counter() - clock
                answer = session.post(f"{stack.base}/api/v1/tasks", data=OPTIONS, timeout=60,
                                      files={"image": (photos[index].name, payloads[index])})
                timings[index].uploaded = time.perf_counter() - clock
                answer.raise_for_status()
                task_ids[index].put(answer.json()["id"])
        except BaseException as error:  # noqa: BLE001 - reported by the poller, which would wait forever
            failures.append(error)
            for queue in task_ids:
                if queue.empty():
                    queue.put(None)

    uploaders = arguments.uploaders
    threads = [threading.Thread(target=upload, args=(range(start, len(photos), uploaders),), daemon=True)
               for start in range(uploaders)]
    for thread in threads:
        thread.start()
    session = stack.session()
    deadline = time.monotonic() + ROUND_TIMEOUT_SECONDS
    polls = 0
    for index, timing in enumerate(timings):
        task_id = task_ids[index].get(timeout=ROUND_TIMEOUT_SECONDS)
        if task_id is None:
            raise RuntimeError(f"an upload failed: {failures[0]!r}")
        task, asked = _poll_until_finished(session, stack.base, task_id, arguments, deadline)
        polls += asked
        timing.seen = time.perf_counter() - clock
        answer = session.get(task["result_url"], timeout=60)
        answer.raise_for_status()
        timing.downloaded = time.perf_counter() - clock
        timing.result = answer.content
        timing.created = _server_seconds(task["created_at"], epoch, 0.0)
        timing.started = _server_seconds(task["started_at"], epoch, 0.0)
        timing.finished = _server_seconds(task["finished_at"], epoch, 0.0)
    seconds = time.perf_counter() - clock
    for thread in threads:
        thread.join()
    cpu = stack_cpu_seconds(stack.process.pid)
    return ServiceRound(seconds, timings, {role: cpu[role] - cpu_before[role] for role in cpu}, polls)


def _poll_until_finished(session: requests.Session, base: str, task_id: str, arguments: argparse.Namespace,
                         deadline: float) -> tuple[dict, int]:
    """Return the finished task and how many requests it took."""
    asked, url = 0, f"{base}/api/v1/tasks/{task_id}" + (f"?wait={arguments.wait}" if arguments.wait else "")
    while True:
        asked += 1
        sent = time.monotonic()
        answer = session.get(url, timeout=30 + arguments.wait)
        answer.raise_for_status()
        task = answer.json()
        if task["status"] == "COMPLETED":
            return task, asked
        if task["status"] in ("FAILED", "CANCELLED"):
            raise RuntimeError(f"task {task_id} {task['status']}: {task['error']}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"task {task_id} still {task['status']} after {ROUND_TIMEOUT_SECONDS:.0f} s")
        if not arguments.wait or time.monotonic() - sent < 1:  # polling, or the server had no place to wait
            time.sleep(arguments.poll)


@dataclass
class CliRound:
    whole: float  # the whole command
    seconds: float  # from the warm-up photo's output to the last output
    cpu: float  # the CLI's CPU seconds over that span


def cli_round(env: dict[str, str], photos: Path, out: Path, count: int) -> CliRound:
    """Run `flask studio remove-bg` over the folder as its own process, watching its outputs appear."""
    shutil.rmtree(out, ignore_errors=True)
    command = [str(PYTHON), "-m", "flask", "--app", "wsgi", "studio", "remove-bg", "--model", OPTIONS["model"],
               "--format", OPTIONS["format"], "--out", str(out), str(photos)]
    started = time.perf_counter()
    process = subprocess.Popen(command, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    marks: list[tuple[float, float]] = []  # (time, CPU seconds) when the first and when the last output appeared
    while process.poll() is None and len(marks) < 2:
        done = sum(1 for path in out.iterdir() if path.suffix == ".png") if out.is_dir() else 0
        if done >= (1 if not marks else count + 1):
            marks.append((time.perf_counter(), _cpu_seconds(process.pid)))
        time.sleep(0.01)
    _, errors = process.communicate()
    if process.returncode != 0 or len(marks) < 2:
        raise RuntimeError(f"the CLI failed (status {process.returncode}): {errors.decode()[-2000:]}")
    (first, first_cpu), (last, last_cpu) = marks
    return CliRound(time.perf_counter() - started, last - first, last_cpu - first_cpu)


def _cpu_seconds(pid: int) -> float:
    fields = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def check_results(service: ServiceRound, cli_out: Path) -> None:
    """Check that both sides made a PNG of the same size from each photo (the same work, not a shortcut)."""
    for timing in service.tasks:
        with Image.open(cli_out / (Path(timing.name).stem + ".png")) as ours_cli:
            cli_size = ours_cli.size
        with Image.open(io.BytesIO(timing.result)) as result:
            if result.format != "PNG" or result.size != cli_size:
                raise RuntimeError(f"{timing.name}: the service made a {result.format} of {result.size}, "
                                   f"the CLI a PNG of {cli_size}")


def breakdown(service: ServiceRound, workers: int) -> dict[str, float]:
    """Return the mean milliseconds of each step of a photo's way, and how busy the workers were."""
    tasks = service.tasks

    def mean_ms(values: list[float]) -> float:
        return 1000 * statistics.fmean(values)

    job_seconds = sum(timing.finished - timing.started for timing in tasks)
    return {
        "upload": mean_ms([timing.uploaded - timing.upload_started for timing in tasks]),
        "queued": mean_ms([timing.started - timing.created for timing in tasks]),
        "job": mean_ms([timing.finished - timing.started for timing in tasks]),
        "seen after": mean_ms([timing.seen - timing.finished for timing in tasks]),
        "download": mean_ms([timing.downloaded - timing.seen for timing in tasks]),
        "uploads done": tasks and max(timing.uploaded for timing in tasks),
        "workers busy %": 100 * job_seconds / (service.seconds * workers),
        "polls": service.polls / len(tasks),
    }


def describe(arguments: argparse.Namespace, photos: int, workers: int) -> None:
    """Print what is compared, and how."""
    print(f"{photos} photos, {OPTIONS['operation']} {OPTIONS['model']} {OPTIONS['format']}. Service: {workers} "
          f"workers (one torch thread each), account concurrency {workers}, "
          f"{'the given database' if arguments.database_url else 'SQLite'}, "
          f"{'the given Redis' if arguments.redis_url else 'the embedded Redis'}, local storage; the bench "
          f"{f'waits on each task (?wait={arguments.wait})' if arguments.wait else f'polls every {arguments.poll} s'}, "
          f"{arguments.uploaders} upload(s) at a time. CLI: one process, "
          f"{len(os.sched_getaffinity(0))} photos at a time.")
    print(f"CLI img/s: {photos} photos over the time from its warm-up photo's output to its last output, so without "
          f"its start-up, model load and first run; 'whole': {photos + 1} photos over the whole command.", flush=True)


def run_round(stack: Stack, env: dict[str, str], inputs: tuple[Path, list[Path]], work: Path,
              arguments: argparse.Namespace, workers: int) -> dict[str, float]:
    """Run the service, then the CLI; return the figures of the round."""
    cli_input, photos = inputs
    service = service_round(stack, photos, arguments)
    cli = cli_round(env, cli_input, work / "cli-out", len(photos))
    check_results(service, work / "cli-out")
    count = len(photos)
    figures = {"service": count / service.seconds, "cli": count / cli.seconds, "whole": (count + 1) / cli.whole,
               "cli cpu": 1000 * cli.cpu / count}
    figures["ratio"] = figures["service"] / figures["cli"]
    figures.update(breakdown(service, workers))
    figures.update({f"cpu {role}": 1000 * seconds / count for role, seconds in service.cpu.items()})
    figures["cpu total"] = sum(figures[f"cpu {role}"] for role in service.cpu)
    if arguments.keep:
        rows = [{key: value for key, value in vars(timing).items() if key != "result"} for timing in service.tasks]
        (work / f"service-round-{len(list(work.glob('service-round-*')))+1}.json").write_text(json.dumps(rows))
    return figures


THROUGHPUT_COLUMNS = [("service img/s", "service", ".2f"), ("CLI img/s", "cli", ".2f"), ("ratio", "ratio", ".2f"),
                      ("CLI whole", "whole", ".2f")]
TIME_COLUMNS = [("upload", "upload", ".0f"), ("queued", "queued", ".0f"), ("job", "job", ".0f"),
                ("seen", "seen after", ".0f"), ("download", "download", ".0f"),
                ("uploads done s", "uploads done", ".2f"), ("busy %", "workers busy %", ".0f"),
                ("polls/photo", "polls", ".1f")]
CPU_COLUMNS = [("web", "cpu web", ".0f"), ("workers", "cpu workers", ".0f"), ("jobs", "cpu jobs", ".0f"),
               ("redis", "cpu redis", ".0f"),
               ("bench", "cpu client", ".0f"), ("total", "cpu total", ".0f"), ("CLI", "cli cpu", ".0f")]


def print_table(title: str, columns: list[tuple[str, str, str]], rows: list[dict[str, float]],
                median: bool) -> None:
    """Print one row per round (and the medians) of the chosen figures."""
    print(f"\n{title}")
    print(f"{'round':>6} " + " ".join(f"{heading:>{max(len(heading), 6)}}" for heading, _, _ in columns))
    named = [(str(number), row) for number, row in enumerate(rows, 1)]
    if median:
        named.append(("median", {key: statistics.median(row[key] for row in rows) for _, key, _ in columns}))
    for name, row in named:
        print(f"{name:>6} " + " ".join(f"{row[key]:>{max(len(heading), 6)}{spec}}" for heading, key, spec in columns))


def main(argv: list[str] | None = None) -> int:
    """Run the rounds of each stack and print the tables."""
    arguments = parse_arguments(sys.argv[1:] if argv is None else argv)
    workers = arguments.workers or len(os.sched_getaffinity(0))
    work = Path(tempfile.mkdtemp(prefix="studio-bench-service-"))
    try:
        inputs = prepare_photos(arguments.photos, arguments.copies, work)
        describe(arguments, len(inputs[1]), workers)
        ratios = {count: run_stack(arguments, inputs, work / f"jobs-{count}", workers, count)
                  for count in arguments.jobs_per_process}
        print("\nservice/CLI, medians: " + "; ".join(f"{_jobs(count)} {ratio:.2f}" for count, ratio in ratios.items()))
    finally:
        if arguments.keep:
            print(f"kept {work}", file=sys.stderr)
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _jobs(count: int) -> str:
    return "a new process per job" if count == 1 else f"{count} jobs per worker process"


def run_stack(arguments: argparse.Namespace, inputs: tuple[Path, list[Path]], work: Path, workers: int,
              jobs_per_process: int) -> float:
    """Start a stack, run its rounds against the CLI, print its tables; return the median ratio."""
    work.mkdir()
    env = stack_environment(arguments, work, _free_port(), workers, jobs_per_process)
    stack = Stack(env, work / "stack.log")
    try:
        stack.wait_until_serving()
        stack.sign_in()
        # Untimed: the workers start once the web server answers, and load their models.
        service_round(stack, inputs[1][:len(inputs[1]) // arguments.copies], arguments)
        print(f"\n== STUDIO_WORKER_JOBS_PER_PROCESS={jobs_per_process}: {_jobs(jobs_per_process)}", flush=True)
        rows = []
        for number in range(1, arguments.rounds + 1):
            rows.append(run_round(stack, env, inputs, work, arguments, workers))
            row = rows[-1]
            print(f"round {number}: service {row['service']:.2f} img/s, CLI {row['cli']:.2f} img/s, ratio "
                  f"{row['ratio']:.2f}", flush=True)
    finally:
        stack.stop()
    print_table("Throughput (images per second) and service/CLI", THROUGHPUT_COLUMNS, rows, median=True)
    print_table("Service: mean ms per photo of each step (the tasks' own timestamps; 'seen': finished until the "
                "bench saw it), when the last upload returned, and how busy the workers were",
                TIME_COLUMNS, rows, median=True)
    outside = " (a PostgreSQL or Redis given by URL is not counted)" if arguments.database_url or \
        arguments.redis_url else ""
    print_table(f"CPU ms per photo: the service's processes by role{outside}, the bench's own client, their "
                f"total; the CLI's over its clocked span", CPU_COLUMNS, rows, median=True)
    return statistics.median(row["ratio"] for row in rows)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
