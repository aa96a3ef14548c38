"""How long a task will take, and where a waiting one stands in line.

An operation's cost is its seconds per megapixel of work (Task.work_pixels) as this server measured it: its last
HISTORY_TASKS completed tasks, from each one's start to its finish (the last attempt: cleaning, model, encoding
and storing included), their seconds over their megapixels. Until MIN_HISTORY tasks have completed, the
declaration's own figure stands (Operation.seconds_per_megapixel). A task's estimate is that cost times its work;
once it runs, what is left of it, or, past it, what its own pace says.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select

from ml.operations import OPERATIONS
from studio import queue
from studio.extensions import db
from studio.models import Task, TaskStatus, as_utc, utcnow

logger = logging.getLogger(__name__)

PIXELS_PER_MEGAPIXEL = 1_000_000
# The completed tasks an operation's cost is measured on, the most recent first, and how many it takes to trust it.
HISTORY_TASKS = 50
MIN_HISTORY = 3
# A process reads the costs again this often: one small query per operation a minute, not one per poll.
CACHE_SECONDS = 60.0
# Past its estimate, a running task's own pace tells what is left once it has done this much.
PACE_FROM_PERCENT = 10


@dataclass(frozen=True)
class Cost:
    """An operation's seconds per megapixel of work, and how many of this server's tasks measured it."""

    seconds_per_megapixel: float
    measured_tasks: int = 0


_costs: dict[str, tuple[float, Cost]] = {}
_lock = threading.Lock()


def measured_cost(operation: str) -> Cost | None:
    """Return the operation's cost measured on its last completed tasks here; None with too few of them."""
    rows = db.session.execute(
        select(Task.work_pixels, Task.started_at, Task.finished_at)
        .where(Task.operation == operation, Task.status == TaskStatus.COMPLETED.value,
               Task.started_at.is_not(None), Task.finished_at.is_not(None), Task.work_pixels > 0)
        .order_by(Task.finished_at.desc()).limit(HISTORY_TASKS)).all()
    work = sum(row.work_pixels for row in rows)
    seconds = sum(max(0.0, (row.finished_at - row.started_at).total_seconds()) for row in rows)
    if len(rows) < MIN_HISTORY or seconds <= 0:
        return None
    # Seconds over megapixels of them all, not the mean of each task's: the large photos, whose wait matters,
    # weigh most, and a tiny photo's fixed start-up cost does not swell the figure.
    return Cost(seconds / (work / PIXELS_PER_MEGAPIXEL), len(rows))


def operation_cost(operation: str) -> Cost:
    """Return the operation's cost: measured here when enough tasks have completed, else its declaration's."""
    now = time.monotonic()
    with _lock:
        cached = _costs.get(operation)
    if cached is not None and now - cached[0] < CACHE_SECONDS:
        return cached[1]
    cost = measured_cost(operation)
    if cost is None:
        declared = OPERATIONS.get(operation)
        cost = Cost(declared.seconds_per_megapixel if declared else 3.0)
    with _lock:
        _costs[operation] = (now, cost)
    return cost


def page_costs() -> dict[str, dict[str, float]]:
    """Return each operation's cost and its work per photo pixel at its default options, for the upload page's
    script to say before an upload how long a photo will take."""
    costs = {}
    for name, operation in OPERATIONS.items():
        work = operation.work_pixels(operation.restore({}), 1000, 1000) / PIXELS_PER_MEGAPIXEL
        costs[name] = {"seconds_per_megapixel": round(operation_cost(name).seconds_per_megapixel, 3),
                       "work_per_pixel": work}
    return costs


def forget_costs() -> None:
    """Drop the costs this process has read (tests; an operator's change)."""
    with _lock:
        _costs.clear()


def estimated_seconds(task: Task) -> float:
    """Return the seconds the task's run should take, from its operation's cost and its work."""
    return operation_cost(task.operation).seconds_per_megapixel * (task.work_pixels or 0) / PIXELS_PER_MEGAPIXEL


def seconds_left(task: Task, now: datetime | None = None) -> int | None:
    """Return about how many seconds the task still needs once running (a waiting one: its whole run, the wait not
    counted); None once it has finished."""
    status = task.task_status
    if status.finished or not task.work_pixels:
        return None  # finished, or a task from before the work was recorded: nothing to go by
    total = estimated_seconds(task)
    if status is TaskStatus.PENDING or task.started_at is None:
        return max(1, round(total))
    elapsed = max(0.0, ((now or utcnow()) - as_utc(task.started_at)).total_seconds())
    left = total - elapsed
    percent = task.progress or 0
    if left < 1 and PACE_FROM_PERCENT <= percent < 100:
        # Slower than the estimate: the run's own pace so far says the rest.
        left = elapsed * (100 - percent) / percent
    return max(1, round(left))


def queue_position(task: Task) -> int | None:
    """Return where a waiting task stands in line (1: next); None when it is not waiting or Redis cannot say.

    An estimate: studio.queue counts the jobs ahead across RQ's queues in the order workers serve them (quick work
    first), or, on SQS, the PENDING tasks created before this one (studio.sqs_queue.waiting_ahead); work that
    arrives later may still go first, and an account at its concurrency waits for its own photos.
    """
    if task.task_status is not TaskStatus.PENDING:
        return None
    ahead = queue.queue_position(task)
    return None if ahead is None else ahead + 1


def timing_fields(task: Task) -> dict[str, int | None]:
    """Return what the API and the task page say of a task's time: seconds left and place in line."""
    return {"estimated_seconds_left": seconds_left(task), "queue_position": queue_position(task)}


def timing_text(task: Task) -> dict[str, str | None]:
    """Return what the task page says of a task's time: "3rd in line", "about 2 min" (None where nothing)."""
    fields = timing_fields(task)
    left, position = fields["estimated_seconds_left"], fields["queue_position"]
    return {"position": f"{ordinal(position)} in line" if position else None,
            "left": f"about {duration_text(left)}" if left else None}


def duration_text(seconds: int) -> str:
    """Return a duration as people say it: "10 s", "45 s", "2 min", "1 h 10 min"."""
    if seconds < 60:
        return f"{seconds if seconds < 10 else 5 * round(seconds / 5)} s"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    return f"{minutes // 60} h {minutes % 60} min" if minutes % 60 else f"{minutes // 60} h"


def ordinal(number: int) -> str:
    """Return 1st, 2nd, 3rd, 4th, 11th, 22nd..."""
    suffix = "th" if 10 <= number % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(number % 10, "th")
    return f"{number}{suffix}"
