"""The heartbeat of a running job: tasks.heartbeat_at, written from a thread while the photo is processed.

Progress reports are too sparse to prove a job is alive (one forward pass of a large photo may take minutes), so
the reconciler could not tell a long photo from a dead worker. A thread in the work horse writes heartbeat_at
every STUDIO_HEARTBEAT_SECONDS instead: it dies with the horse, and its silence is what "stale" means.
"""

from __future__ import annotations

import logging
import threading
from types import TracebackType

from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import SQLAlchemyError

from studio.models import Task, TaskStatus, utcnow

logger = logging.getLogger(__name__)


class Heartbeat:
    """Write the task's heartbeat_at every interval seconds until the with-block ends."""

    def __init__(self, engine: Engine, task_id: str, interval_seconds: float) -> None:
        self.engine = engine
        self.task_id = task_id
        self.interval_seconds = max(interval_seconds, 0.1)
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"heartbeat-{task_id}", daemon=True)

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc_value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        self._stopped.set()
        self._thread.join()

    def beat(self) -> None:
        """Record that the job is alive, in a transaction of its own (the job's session is not thread-safe)."""
        with self.engine.begin() as connection:
            connection.execute(
                update(Task)
                .where(Task.id == self.task_id, Task.status == TaskStatus.PROCESSING.value)
                .values(heartbeat_at=utcnow())
            )

    def _run(self) -> None:
        while not self._stopped.wait(self.interval_seconds):
            try:
                self.beat()
            except SQLAlchemyError as error:
                # The database may be restarting: the job itself will fail or carry on; keep beating meanwhile.
                logger.warning("task %s: could not record the heartbeat: %s", self.task_id, error.__class__.__name__)
