"""Test-only fault injection for the crash-recovery tests: never set STUDIO_FAULT_INJECTION in production.

STUDIO_FAULT_INJECTION is a comma-separated list of POINT[@FILENAME] entries. Each fires on a task's first
attempt only (so the retry shows the recovery), and only for tasks uploaded as FILENAME when one is given:
- sleep=SECONDS: sleep once the task is PROCESSING, before the photo is processed (a long photo, a hung job);
- sleep-every-attempt=SECONDS: the same on every attempt (a photo that kills each worker that takes it);
- ignore-timeout: block SIGALRM in the work horse first, so RQ's timeout alarm cannot stop it (a job stuck in
  native code that never returns to Python);
- fail-every-attempt: raise an ordinary error before the photo is processed, on every attempt (a photo that
  always fails: each attempt is retried until none is left);
- after-store: end the work horse with os._exit(1) after the result is stored, before the database commit.
Unset (the default), every hook is a no-op.
"""

from __future__ import annotations

import logging
import os
import signal
import time

from flask import current_app

from studio.models import Task

logger = logging.getLogger(__name__)

# The suffix of a point that fires on every attempt, not only the first.
EVERY_ATTEMPT = "-every-attempt"


def _armed(point: str, task: Task) -> str | None:
    """Return the argument of the entry for this point that applies to this task, or None."""
    spec = current_app.config.get("STUDIO_FAULT_INJECTION")
    if not spec or (task.attempts != 1 and not point.endswith(EVERY_ATTEMPT)):
        return None
    for entry in spec.split(","):
        name_and_argument, _, filename = entry.strip().partition("@")
        name, _, argument = name_and_argument.partition("=")
        if name == point and (not filename or filename == task.original_filename):
            return argument
    return None


def before_processing(task: Task) -> None:
    """Ignore the timeout alarm, fail or sleep here when those faults are armed for this task."""
    if _armed("ignore-timeout", task) is not None:
        logger.warning("task %s: fault injection: blocking the timeout alarm", task.id)
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
    if _armed("fail" + EVERY_ATTEMPT, task) is not None:
        raise RuntimeError("fault injection: this attempt fails")
    seconds = _armed("sleep", task) or _armed("sleep" + EVERY_ATTEMPT, task)
    if seconds is not None:
        logger.warning("task %s: fault injection: sleeping %s seconds", task.id, seconds)
        time.sleep(float(seconds))


def after_store(task: Task) -> None:
    """Exit the work horse here, result stored but not recorded, when the `after-store` fault is armed."""
    if _armed("after-store", task) is not None:
        logger.warning("task %s: fault injection: exiting after storing the result", task.id)
        logging.shutdown()
        os._exit(1)
