"""gunicorn's settings for the web app: `gunicorn -c deploy/gunicorn.conf.py --bind ADDRESS wsgi:app`.

Flags on the command line win over these (the launcher and the tests pass --bind, some --workers).
"""

import os
import tempfile

# Every worker counts into one folder that /metrics adds up. Without STUDIO_METRICS_DIR, a private one: set before
# studio is imported below, since prometheus_client reads it when imported (and the workers inherit it).
if not os.environ.get("STUDIO_METRICS_DIR"):
    os.environ["STUDIO_METRICS_DIR"] = tempfile.mkdtemp(prefix="studio-metrics-")

from studio import logs, metrics, settings  # noqa: E402

_config = settings.from_environment()

# Web processes; WEB_CONCURRENCY is gunicorn's own variable (Heroku's convention).
workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
# Requests are short (photos are queued, not processed here): threads cover slow clients and S3 calls.
threads = 4
# Five seconds is plenty to finish a request; a longer grace only delays a deploy.
graceful_timeout = 5
# gunicorn 27 opens a control socket in ~/.gunicorn by default; two studios on one machine would clash.
control_socket_disable = True
# No access log: the app logs each request itself, as JSON, with its request id and without its query string.
accesslog = None
logconfig_dict = logs.gunicorn_logconfig(_config["STUDIO_LOG_LEVEL"], _config["STUDIO_LOG_FORMAT"])


def on_starting(server):
    """Empty the metrics folder of an earlier run before any worker starts counting."""
    metrics.prepare_directory(os.environ["STUDIO_METRICS_DIR"])


def child_exit(server, worker):
    """Drop a dead worker's live gauges; its counts stay in the sums."""
    metrics.mark_process_dead(server, worker)
