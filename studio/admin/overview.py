"""The dashboard's overview: tasks by status and operation over the last hours and days, the queues and workers
(from Redis, and with STUDIO_QUEUE_BACKEND=sqs from SQS, as /metrics reads them), the failure rate, the slowest
recent tasks and the storage in use."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

from flask import current_app
from redis.exceptions import RedisError
from rq import Queue, Worker
from sqlalchemy import func, select
from sqlalchemy.sql.elements import ColumnElement

from studio import charts, sqs_queue, sqs_state, worker_deaths
from studio.extensions import db
from studio.queue import get_redis, photo_queues
from studio.models import Task, TaskStatus, User
from studio.usage import utc_day

logger = logging.getLogger(__name__)

HOURS = 24
DAYS = 14
SLOWEST = 10
STATUSES = tuple(status.value for status in TaskStatus)
STATUS_TITLES = {"PENDING": "Waiting", "PROCESSING": "Processing", "COMPLETED": "Completed", "FAILED": "Failed",
                 "CANCELLED": "Cancelled"}


@dataclass
class QueueState:
    """One RQ queue: waiting, running, scheduled (retries waiting for their time) and failed jobs."""

    name: str
    waiting: int
    running: int
    scheduled: int
    failed: int


@dataclass
class WorkerState:
    """One RQ worker and what it is doing."""

    name: str
    state: str
    queues: list[str]
    job_id: str | None
    task: Task | None
    successful: int
    failed: int
    busy_seconds: float


@dataclass
class Live:
    """What Redis says now; error when it could not be read."""

    queues: list[QueueState] = field(default_factory=list)
    # Photos waiting on every processing queue (quick and slow work).
    photos_waiting: int = 0
    workers: list[WorkerState] = field(default_factory=list)
    # Workers that died without stopping in the last day (killed, out of memory), newest first.
    deaths: list[worker_deaths.WorkerDeath] = field(default_factory=list)
    error: str | None = None
    # With STUDIO_QUEUE_BACKEND=sqs: the SQS queue and its dead-letter queue, or why they are unknown.
    sqs: sqs_state.SqsState | None = None
    sqs_error: str | None = None


def _bucket(unit: str) -> ColumnElement[Any]:
    """Return the SQL for the start of a task's hour or day (UTC), in the database's own dialect."""
    if db.session.get_bind().dialect.name == "postgresql":
        return func.date_trunc(unit, func.timezone("UTC", Task.created_at))
    return func.strftime("%Y-%m-%d %H:00:00" if unit == "hour" else "%Y-%m-%d 00:00:00", Task.created_at)


def _as_datetime(value: Any) -> datetime:
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(tzinfo=None) if moment.tzinfo is None else \
        moment.astimezone(timezone.utc).replace(tzinfo=None)


def counts(unit: str, since: datetime) -> dict[tuple[datetime, str, str], int]:
    """Return how many tasks were created in each hour or day since then, by status and operation."""
    bucket = _bucket(unit).label("bucket")
    query = (select(bucket, Task.status, Task.operation, func.count())
             .where(Task.created_at >= since).group_by(bucket, Task.status, Task.operation))
    return {(_as_datetime(start), status, operation): number
            for start, status, operation, number in db.session.execute(query)}


def _columns(found: dict[tuple[datetime, str, str], int], starts: list[datetime], label: str):
    columns = []
    for start in starts:
        values: dict[str, int] = {}
        for (bucket, status, _), number in found.items():
            if bucket == start:
                values[status] = values.get(status, 0) + number
        columns.append((start.strftime(label), values))
    return columns


def by_operation(found: dict[tuple[datetime, str, str], int]) -> dict[str, dict[str, int]]:
    """Return the counts added up per operation and status."""
    table: dict[str, dict[str, int]] = {}
    for (_, status, operation), number in found.items():
        row = table.setdefault(operation, {})
        row[status] = row.get(status, 0) + number
    return dict(sorted(table.items()))


def activity(now: datetime | None = None) -> dict[str, Any]:
    """Return the hourly (last 24 hours) and daily (last 14 days) charts and the per-operation tables."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None)
    this_hour = now.replace(minute=0, second=0, microsecond=0)
    hours = [this_hour - timedelta(hours=offset) for offset in range(HOURS - 1, -1, -1)]
    today = now.replace(hour=0, minute=0, second=0, microsecond=0)
    days = [today - timedelta(days=offset) for offset in range(DAYS - 1, -1, -1)]
    hourly = counts("hour", hours[0].replace(tzinfo=timezone.utc))
    daily = counts("day", days[0].replace(tzinfo=timezone.utc))
    return {
        "hourly": charts.bar_chart("Tasks created per hour, last 24 hours (UTC)", _columns(hourly, hours, "%H:00"),
                                   STATUSES, STATUS_TITLES),
        "daily": charts.bar_chart("Tasks created per day, last 14 days (UTC)", _columns(daily, days, "%d %b"),
                                  STATUSES, STATUS_TITLES),
        "hourly_operations": by_operation(hourly),
        "daily_operations": by_operation(daily),
    }


def failure_rate(hours: int = HOURS) -> dict[str, Any]:
    """Return the tasks that completed and failed in the last hours, and the share that failed (None: none)."""
    since = datetime.now(timezone.utc) - timedelta(hours=hours)
    found = dict(db.session.execute(
        select(Task.status, func.count()).where(Task.finished_at >= since,
                                                Task.status.in_([TaskStatus.COMPLETED.value, TaskStatus.FAILED.value]))
        .group_by(Task.status)).all())
    completed, failed = found.get(TaskStatus.COMPLETED.value, 0), found.get(TaskStatus.FAILED.value, 0)
    return {"completed": completed, "failed": failed,
            "rate": failed / (completed + failed) if completed + failed else None}


def _duration() -> ColumnElement[Any]:
    if db.session.get_bind().dialect.name == "postgresql":
        return func.extract("epoch", Task.finished_at - Task.started_at)
    return (func.julianday(Task.finished_at) - func.julianday(Task.started_at)) * 86400


def slowest(hours: int = HOURS, limit: int = SLOWEST) -> list[tuple[Task, float]]:
    """Return the tasks that took longest among those completed in the last hours, with their seconds."""
    since = datetime.now(timezone.utc) - timedelta(hours=hours)
    duration = _duration().label("seconds")
    query = (select(Task, duration).where(Task.status == TaskStatus.COMPLETED.value, Task.finished_at >= since,
                                          Task.started_at.is_not(None))
             .order_by(duration.desc()).limit(limit))
    return [(task, float(seconds or 0)) for task, seconds in db.session.execute(query)]


def storage() -> dict[str, Any]:
    """Return the bytes the accounts keep (what the bucket or the disk holds for them) and, on local disk, the
    disk's size and free space."""
    used = int(db.session.scalar(select(func.coalesce(func.sum(User.storage_bytes), 0))) or 0)
    accounts = int(db.session.scalar(select(func.count()).select_from(User)) or 0)
    config = current_app.config
    disk = None
    if not config.get("STUDIO_S3_BUCKET"):
        try:
            disk = shutil.disk_usage(config["STUDIO_STORAGE_DIR"])
        except OSError:
            disk = None
    return {"used": used, "accounts": accounts, "bucket": config.get("STUDIO_S3_BUCKET"),
            "disk_total": disk.total if disk else None, "disk_free": disk.free if disk else None}


def live() -> Live:
    """Return the queues and the workers as Redis has them now (an error message instead when it cannot)."""
    app = current_app._get_current_object()
    connection = get_redis(app)
    config = app.config
    state = Live()
    if sqs_queue.enabled(config):
        try:
            state.sqs = sqs_state.state(config)  # logged by sqs_state when it fails
        except Exception:  # noqa: BLE001 - the page says so; it never fails for it
            state.sqs_error = "SQS cannot be reached: the photo queue is unknown right now."
    try:
        for name in (*photo_queues(config), config["STUDIO_WEBHOOK_QUEUE"]):
            queue = Queue(name, connection=connection)
            state.queues.append(QueueState(name, queue.count, queue.started_job_registry.count,
                                           queue.scheduled_job_registry.count, queue.failed_job_registry.count))
        state.photos_waiting = sum(queue.waiting for queue in state.queues[:-1]) + \
            (state.sqs.queue.waiting if state.sqs else 0)
        workers = sorted(Worker.all(connection=connection), key=lambda worker: worker.name)
        jobs = {worker.name: worker.get_current_job_id() for worker in workers}
        state.deaths = worker_deaths.recent(connection)
    except RedisError as error:
        logger.warning("admin overview: could not read the queues from Redis: %s", error)
        return Live(error="Redis cannot be reached: the queues and workers are unknown right now.",
                    sqs=state.sqs, sqs_error=state.sqs_error)
    tasks = {task.id: task for task in db.session.scalars(
        select(Task).where(Task.id.in_([job for job in jobs.values() if job])))}
    for worker in workers:
        job_id = jobs[worker.name]
        state.workers.append(WorkerState(worker.name, worker.get_state(), worker.queue_names(), job_id,
                                         tasks.get(job_id or ""), worker.successful_job_count,
                                         worker.failed_job_count, float(worker.total_working_time or 0)))
    return state


def overview() -> dict[str, Any]:
    """Return everything the overview shows."""
    return {"activity": activity(), "failures": failure_rate(), "slowest": slowest(), "storage": storage(),
            "live": live(), "today": utc_day(datetime.now(timezone.utc))}
