"""A running job's progress on its task's row: the first report at once, then at most every half second, and the
newest report never lost.

The task page polls the row every second, so writing each of a run's reports (a stylize reports every layer) would
only cost writes. But a report held back by that throttle must still reach the page: the one written last may be
followed by minutes of silence (one Real-ESRGAN tile, a large photo's encoding). So a report too soon after the last
write waits for the end of the interval, written then from a thread of the reporter's own unless a newer one comes
first; the job's thread writes the rest itself, and learns there that its task was cancelled or deleted.
"""

from __future__ import annotations

import logging
import threading
import time
from types import TracebackType

from flask import current_app, has_app_context
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from studio.tasks import lifecycle

logger = logging.getLogger(__name__)

# Progress reaches the database in steps of at least this many points (or with a new stage), and at most this
# often (the task page polls every second); the first report of a run is written at once.
PROGRESS_STEP = 5
PROGRESS_INTERVAL_SECONDS = 0.5


class TaskStopped(Exception):
    """The task was cancelled or deleted while the job ran: stop, keep nothing."""


class ProgressReporter:
    """Record a run's progress on its task's row; a callable (percent, stage) that raises TaskStopped once the task
    is no longer PROCESSING. Use it as a context manager: its thread writes held-back reports until the block ends.
    """

    def __init__(self, engine: Engine, task_id: str, percent: int = 0,
                 interval_seconds: float = PROGRESS_INTERVAL_SECONDS, step: int = PROGRESS_STEP) -> None:
        self.engine, self.task_id = engine, task_id
        self.interval_seconds, self.step = interval_seconds, step
        self._newest: tuple[int, str | None] = (percent, None)
        self._held: tuple[int, str | None] | None = None
        self._written_at: float | None = None  # None: nothing written yet, the next report goes at once
        self._stopped = False
        self._closed = False
        self._lock = threading.Condition()
        # The thread has no app context of its own: its announcements reach Redis through the job's app.
        self._app = current_app._get_current_object() if has_app_context() else None
        self._thread = threading.Thread(target=self._write_held, name=f"progress-{task_id}", daemon=True)

    def __enter__(self) -> ProgressReporter:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc_value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        with self._lock:
            self._closed = True
            self._lock.notify_all()
        self._thread.join()

    def __call__(self, percent: int, stage: str | None = None) -> None:
        """Record a report: at once if the interval since the last write has passed, else once it has."""
        percent = max(0, min(int(percent), 99))
        with self._lock:
            if self._stopped:
                raise TaskStopped()
            newest_percent, newest_stage = self._newest
            if percent - newest_percent < self.step and stage == newest_stage:
                return
            self._newest = (percent, stage)
            if self._written_at is not None and time.monotonic() - self._written_at < self.interval_seconds:
                self._held = self._newest
                self._lock.notify_all()
                return
            self._held = None
            self._written_at = time.monotonic()
            # Written in the job's own session, under the lock: the thread cannot write an older report after it.
            if not lifecycle.progressed(self.task_id, percent, stage):
                self._stopped = True
                raise TaskStopped()

    def _write_held(self) -> None:
        """Write each held-back report once its interval has passed (the reporter's thread)."""
        with self._lock:
            while not self._closed:
                if self._held is None or self._written_at is None:
                    self._lock.wait()
                    continue
                wait = self._written_at + self.interval_seconds - time.monotonic()
                if wait > 0:
                    self._lock.wait(wait)
                    continue
                percent, stage = self._held
                self._held, self._written_at = None, time.monotonic()
                self._stopped = not self._write(percent, stage) or self._stopped

    def _write(self, percent: int, stage: str | None) -> bool:
        """Write a report in a transaction of the thread's own; False when the task is no longer PROCESSING."""
        try:
            with self.engine.begin() as connection:
                moved = lifecycle.progressed(self.task_id, percent, stage, connection=connection)
        except SQLAlchemyError as error:
            # The database may be restarting: the next report tries again, and the job fails or carries on.
            logger.warning("task %s: could not record its progress: %s", self.task_id, error.__class__.__name__)
            return True
        if moved:
            # Committed now: the task's event streams may tell it.
            lifecycle.announce_progress(self.task_id, percent, stage, app=self._app)
        return moved
