"""The Flask app that jobs run in: built once per worker process, never once per job."""

from __future__ import annotations

import logging

from flask import Flask
from flask.ctx import AppContext

logger = logging.getLogger(__name__)

_app: Flask | None = None


def bind_app(app: Flask) -> None:
    """Make jobs in this process run in the given app (rq_worker.py calls this before it forks)."""
    global _app
    _app = app


def app_context() -> AppContext:
    """Return a new app context for a job, building the app on first use if no worker bound one."""
    global _app
    if _app is None:
        # Only when jobs run outside rq_worker.py: with `rq worker` that means once per work horse, so use
        # rq_worker.py, which builds the app before forking.
        from studio import create_app

        logger.info("no app bound to this worker process: building one")
        _app = create_app()
    return _app.app_context()
