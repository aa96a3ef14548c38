"""Usage per account, per day (UTC) and per operation: tasks, megapixels in and out, the work done (what a plan's
megapixels count, Task.work_pixels), processing seconds.

A task is counted once, when it reaches its final status (COMPLETED, FAILED or CANCELLED), inside the same
transaction as that status change (studio/tasks/lifecycle.py calls record()). RQ's retries happen before that
point, so a job that failed twice and then completed counts one task, with the seconds of its last attempt. The rows
are an account's own, not the tasks': deleting a task, by its owner or by retention, leaves them as they are.
An administrator's retry of a FAILED task takes its earlier outcome back (take_back) unless that was in an earlier,
closed month, so the task still counts once; the seconds it ran stay counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import Iterable

from sqlalchemy import func, select
from sqlalchemy.dialects import postgresql, sqlite

from studio.extensions import db
from studio.models import DailyUsage, Task, TaskStatus, UNFINISHED_STATUSES

PIXELS_PER_MEGAPIXEL = 1_000_000


@dataclass(frozen=True)
class Outcome:
    """What a finished task adds to its account's usage, and on which day."""

    user_id: int
    day: date
    operation: str
    completed: bool
    pixels_in: int
    pixels_out: int
    seconds: float
    work_pixels: int = 0


@dataclass(frozen=True)
class Totals:
    """Usage added up over some days and operations."""

    tasks: int = 0
    completed_tasks: int = 0
    pixels_in: int = 0
    pixels_out: int = 0
    processing_seconds: float = 0.0
    work_pixels: int = 0

    @property
    def megapixels_in(self) -> float:
        """Return the input pixels in megapixels."""
        return self.pixels_in / PIXELS_PER_MEGAPIXEL

    @property
    def megapixels_out(self) -> float:
        """Return the output pixels in megapixels."""
        return self.pixels_out / PIXELS_PER_MEGAPIXEL


def utc_day(moment: datetime) -> date:
    """Return the UTC date of a moment (SQLite hands back naive datetimes, which are UTC here)."""
    if moment.tzinfo is None:
        return moment.date()
    return moment.astimezone(timezone.utc).date()


def today() -> date:
    """Return today's date in UTC."""
    return datetime.now(timezone.utc).date()


def month_start(day: date) -> date:
    """Return the first day of the day's month."""
    return day.replace(day=1)


def next_month_start(day: date) -> date:
    """Return the first day of the month after the day's."""
    return (day.replace(day=28) + timedelta(days=4)).replace(day=1)


def finished_outcome(task_id: str) -> Outcome | None:
    """Return what the task, as the database has it now (finished), adds to the usage; None if it is gone."""
    row = db.session.execute(select(
        Task.user_id, Task.operation, Task.status, Task.input_width, Task.input_height, Task.output_pixels,
        Task.work_pixels, Task.started_at, Task.finished_at, Task.reused_from,
    ).where(Task.id == task_id)).one_or_none()
    if row is None or row.finished_at is None:
        return None
    completed = row.status == TaskStatus.COMPLETED.value
    # The final attempt's run: from its start to the transition (for a cancelled task, only what ran).
    seconds = (row.finished_at - row.started_at).total_seconds() if row.started_at else 0.0
    if row.reused_from:
        # A duplicate that reused an earlier result ran no model: a task, but no processing time and no work.
        return Outcome(user_id=row.user_id, day=utc_day(row.finished_at), operation=row.operation, completed=completed,
                       pixels_in=(row.input_width or 0) * (row.input_height or 0),
                       pixels_out=(row.output_pixels or 0) if completed else 0, seconds=0.0, work_pixels=0)
    return Outcome(user_id=row.user_id, day=utc_day(row.finished_at), operation=row.operation, completed=completed,
                   pixels_in=(row.input_width or 0) * (row.input_height or 0),
                   pixels_out=(row.output_pixels or 0) if completed else 0, seconds=max(seconds, 0.0),
                   work_pixels=row.work_pixels or 0)


def record(task_id: str) -> None:
    """Count a task that has just reached its final status (the caller's transaction commits it)."""
    outcome = finished_outcome(task_id)
    if outcome is not None:
        _add(outcome, tasks=1)


def take_back(outcome: Outcome | None) -> None:
    """Remove a task's earlier outcome before it runs again (an administrator's retry); the caller commits.

    The seconds stay: that attempt did run. A closed month is never changed (it may have been billed already), so
    an outcome from an earlier month stays counted there.
    """
    if outcome is None or month_start(outcome.day) != month_start(today()):
        return
    _add(Outcome(outcome.user_id, outcome.day, outcome.operation, outcome.completed, -outcome.pixels_in,
                 -outcome.pixels_out, 0.0, -outcome.work_pixels), tasks=-1)


def _add(outcome: Outcome, tasks: int) -> None:
    """Add to the account's row for the day and operation, creating it if needed: one upsert, safe under races."""
    values = {"user_id": outcome.user_id, "day": outcome.day, "operation": outcome.operation, "tasks": tasks,
              "completed_tasks": tasks if outcome.completed else 0, "pixels_in": outcome.pixels_in,
              "pixels_out": outcome.pixels_out, "processing_seconds": outcome.seconds,
              "work_pixels": outcome.work_pixels}
    dialect = db.session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    statement = insert(DailyUsage).values(**values)
    table = DailyUsage.__table__
    counters = ("tasks", "completed_tasks", "pixels_in", "pixels_out", "processing_seconds", "work_pixels")
    db.session.execute(statement.on_conflict_do_update(
        index_elements=[table.c.user_id, table.c.day, table.c.operation],
        set_={name: table.c[name] + statement.excluded[name] for name in counters}))


def rows(start: date, end: date, user_id: int | None = None) -> list[DailyUsage]:
    """Return the usage rows from start to end (both included), of one account or all, by day and operation."""
    query = select(DailyUsage).where(DailyUsage.day >= start, DailyUsage.day <= end)
    if user_id is not None:
        query = query.where(DailyUsage.user_id == user_id)
    return list(db.session.scalars(query.order_by(DailyUsage.user_id, DailyUsage.day, DailyUsage.operation)))


def add_up(usage_rows: Iterable[DailyUsage]) -> Totals:
    """Return the totals of some usage rows."""
    tasks = completed = pixels_in = pixels_out = work = 0
    seconds = 0.0
    for row in usage_rows:
        tasks += row.tasks
        completed += row.completed_tasks
        pixels_in += row.pixels_in
        pixels_out += row.pixels_out
        seconds += row.processing_seconds
        work += row.work_pixels
    return Totals(tasks, completed, pixels_in, pixels_out, seconds, work)


def by_operation(usage_rows: Iterable[DailyUsage]) -> dict[str, Totals]:
    """Return the totals of each operation, by name."""
    grouped: dict[str, list[DailyUsage]] = {}
    for row in usage_rows:
        grouped.setdefault(row.operation, []).append(row)
    return {operation: add_up(items) for operation, items in sorted(grouped.items())}


def tasks_by_day(usage_rows: Iterable[DailyUsage], start: date, end: date) -> list[tuple[date, int]]:
    """Return the finished tasks of each day from start to end, days without any included (for a chart)."""
    counts: dict[date, int] = {}
    for row in usage_rows:
        counts[row.day] = counts.get(row.day, 0) + row.tasks
    return [(start + timedelta(days=offset), counts.get(start + timedelta(days=offset), 0))
            for offset in range((end - start).days + 1)]


def month_totals(user_id: int, day: date | None = None) -> Totals:
    """Return what the account has used in the month of the day (default: this month), finished tasks only."""
    start = month_start(day or today())
    return add_up(rows(start, next_month_start(start) - timedelta(days=1), user_id))


def unfinished(user_id: int) -> tuple[int, int]:
    """Return how many tasks the account has waiting or processing, and their work in pixels."""
    count, pixels = db.session.execute(
        select(func.count(), func.coalesce(func.sum(Task.work_pixels), 0))
        .where(Task.user_id == user_id, Task.status.in_([status.value for status in UNFINISHED_STATUSES]))).one()
    return int(count), int(pixels)
