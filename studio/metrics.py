"""Prometheus metrics: what the studio counts, GET /metrics, and the folder that processes share them through.

Multiprocess mode (prometheus_client's): every gunicorn worker and RQ work horse writes its counters to files in
STUDIO_METRICS_DIR and /metrics adds them up, so no process's counts are lost when another answers the scrape.
The folder is cleaned when the process tree that writes it starts (prepare_directory: gunicorn's on_starting
hook, a worker that serves its own metrics, the launcher). The state of the queue, the workers and the services
is read when scraped instead (studio/metrics_state.py), only by the process that answers.
"""

from __future__ import annotations

import hmac
import http
import logging
import os
import re
import threading
import time
from pathlib import Path
from typing import Any, Callable, Iterable
from wsgiref.simple_server import WSGIRequestHandler, make_server

from flask import Blueprint, Flask, Response, abort, current_app, g, request
from flask.typing import ResponseReturnValue

from studio import settings
from studio.errors import error_response
from studio.extensions import limiter

logger = logging.getLogger(__name__)

# prometheus_client chooses per-process memory or shared files when it is imported, from PROMETHEUS_MULTIPROC_DIR;
# so the setting becomes that variable here, before the import below.
_configured_dir = settings.metrics_dir()
if _configured_dir:
    os.makedirs(_configured_dir, exist_ok=True)
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = _configured_dir

from prometheus_client import (  # noqa: E402
    CONTENT_TYPE_PLAIN_0_0_4, REGISTRY, CollectorRegistry, Counter, Histogram, disable_created_metrics, generate_latest,
    multiprocess, values,
)
from prometheus_client.exposition import ThreadingWSGIServer  # noqa: E402
from prometheus_client.registry import Collector  # noqa: E402

MULTIPROCESS_DIR: str | None = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None
_EXTENSION_KEY = "studio.metrics"
# The files prometheus_client writes: counter_<id>.db, gauge_<mode>_<id>.db, histogram_<id>.db, summary_<id>.db.
_METRIC_FILE = re.compile(r"(counter|gauge_[a-z]+|histogram|summary)_[A-Za-z0-9-]+\.db")
# Photos take from a tenth of a second (a small cutout) to minutes (a large upscale on a CPU).
JOB_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
INFERENCE_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

# A work horse is forked for every job: with a file set per process id, a busy worker would leave thousands of
# files for each scrape to read. The horses of one worker never overlap, so they share one set, named after it.
_work_horse_of: int | None = None


def _process_identifier() -> str:
    return f"horse-of-{_work_horse_of}" if _work_horse_of is not None else str(os.getpid())


if MULTIPROCESS_DIR:
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_identifier)
# *_created series are not exported in multiprocess mode; leave them out in every mode so both look alike.
disable_created_metrics()

HTTP_REQUESTS = Counter("studio_http_requests", "HTTP requests answered, by Flask endpoint, method and status.",
                        ["endpoint", "method", "status"])
HTTP_REQUEST_SECONDS = Histogram("studio_http_request_duration_seconds", "Time to answer an HTTP request.",
                                 ["endpoint", "method"])
TASKS_CREATED = Counter("studio_tasks_created", "Tasks created, by operation and model.", ["operation", "model"])
TASKS_FINISHED = Counter("studio_tasks_finished", "Tasks finished, by operation, model and final status "
                         "(completed, failed, cancelled).", ["operation", "model", "status"])
JOB_SECONDS = Histogram("studio_job_duration_seconds", "Time a processing job took, from start to outcome.",
                        ["operation", "model"], buckets=JOB_BUCKETS)
INFERENCE_SECONDS = Histogram("studio_inference_duration_seconds", "Time spent in the model, per job.",
                              ["operation", "model"], buckets=INFERENCE_BUCKETS)
JOB_RETRIES = Counter("studio_job_retries", "Processing jobs scheduled again after a failed attempt.", ["operation"])
WEBHOOK_DELIVERIES = Counter("studio_webhook_deliveries", "Webhook delivery attempts, by outcome.", ["outcome"])
STORAGE_ERRORS = Counter("studio_storage_errors", "Errors from the file storage (S3 or disk), by action.", ["action"])
UPLOADS_REFUSED = Counter("studio_uploads_refused", "Uploads refused before a task was created, by reason.",
                          ["reason"])
WORKER_DEATHS = Counter("studio_worker_deaths", "Workers that died without stopping (killed, out of memory), counted "
                        "by the worker that took their place.")

# Each label value is a series of its own, kept by every process until it restarts: a value taken from a request
# as it came would let anyone grow /metrics without end. So every label's values come from a closed set, and
# anything outside it is counted as OTHER. Endpoints are Flask's (the app's routes, or "unmatched"); the reasons,
# outcomes and actions are literals in the code.
OTHER = "other"
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})
HTTP_STATUSES = frozenset(str(status.value) for status in http.HTTPStatus)


def method_label(method: str) -> str:
    """Return the request method as a label: one of the standard methods, else "other"."""
    return method if method in HTTP_METHODS else OTHER


def status_label(status: int) -> str:
    """Return the response status as a label: a registered HTTP status code, else "other"."""
    code = str(status)
    return code if code in HTTP_STATUSES else OTHER


def _operation_label(operation: str) -> str:
    from ml.operations import OPERATIONS

    return operation if operation in OPERATIONS else OTHER


def _model_label(model: str) -> str:
    from ml.registry import MODELS

    # An operation without a model records "".
    return model if model in MODELS or model == "" else OTHER


def _task_labels(operation: str, model: str) -> tuple[str, str]:
    return _operation_label(operation), _model_label(model)


def task_created(operation: str, model: str) -> None:
    """Count a task created (operation like "remove_background")."""
    TASKS_CREATED.labels(*_task_labels(operation, model)).inc()


def task_finished(operation: str, model: str, status: str, seconds: float | None = None) -> None:
    """Count a task that reached a final status, and how long its job ran when known."""
    TASKS_FINISHED.labels(*_task_labels(operation, model), status).inc()
    if seconds is not None:
        JOB_SECONDS.labels(*_task_labels(operation, model)).observe(seconds)


def inference_seconds(operation: str, model: str, seconds: float) -> None:
    """Record the time one job spent running its model."""
    INFERENCE_SECONDS.labels(*_task_labels(operation, model)).observe(seconds)


def job_retried(operation: str) -> None:
    """Count a job that will be attempted again."""
    JOB_RETRIES.labels(_operation_label(operation)).inc()


def webhook_delivery(outcome: str) -> None:
    """Count a webhook delivery attempt ("delivered", "failed", "gave_up", ...)."""
    WEBHOOK_DELIVERIES.labels(outcome).inc()


def storage_error(action: str) -> None:
    """Count a storage call that failed ("save", "open", "delete", "presign", ...)."""
    STORAGE_ERRORS.labels(action).inc()


def upload_refused(reason: str) -> None:
    """Count an upload refused ("too_large", "too_many_pixels", "not_an_image", "quota", ...)."""
    UPLOADS_REFUSED.labels(reason).inc()


def worker_died() -> None:
    """Count a worker found dead by its successor (studio/worker_deaths.py)."""
    WORKER_DEATHS.inc()


def prepare_directory(path: str | os.PathLike) -> None:
    """Create the metrics folder, or empty it of the files of an earlier run; call before its processes start."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for name in os.listdir(folder):
        # Only prometheus_client's own files: a folder set by mistake to one that holds anything else is left alone.
        if _METRIC_FILE.fullmatch(name):
            (folder / name).unlink(missing_ok=True)


def mark_process_dead(_server: Any, worker: Any) -> None:
    """gunicorn's child_exit hook: drop the gauges of a worker that has exited (its counters stay counted)."""
    if MULTIPROCESS_DIR:
        multiprocess.mark_process_dead(worker.pid, MULTIPROCESS_DIR)


def work_horse_started() -> None:
    """Make this freshly forked RQ work horse write to the files its worker's earlier horses wrote to."""
    global _work_horse_of
    _work_horse_of = os.getppid()


class _ThisProcess(Collector):
    """The metrics of this process alone (no shared folder): the default registry's."""

    def collect(self) -> Iterable[Any]:
        return REGISTRY.collect()


def registry(app: Flask) -> CollectorRegistry:
    """Return the app's registry for scrapes: every process's metrics, then the state read at scrape time."""
    found = app.extensions.get(_EXTENSION_KEY)
    if found is None:
        from studio.metrics_state import StateCollector

        found = CollectorRegistry(auto_describe=False)
        if MULTIPROCESS_DIR:
            multiprocess.MultiProcessCollector(found, path=MULTIPROCESS_DIR)
        else:
            found.register(_ThisProcess())
        found.register(StateCollector(app))
        app.extensions[_EXTENSION_KEY] = found
    return found


def authorized(header: str | None, token: str) -> bool:
    """Return True when the Authorization header is exactly `Bearer <token>` (compared in constant time)."""
    return hmac.compare_digest((header or "").encode(), f"Bearer {token}".encode())


bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
@limiter.exempt
def metrics() -> ResponseReturnValue:
    """Serve the metrics in Prometheus' text format to a scraper that has the token; 404 while none is set."""
    token = current_app.config.get("STUDIO_METRICS_TOKEN")
    if not token:
        abort(404)
    if not authorized(request.headers.get("Authorization"), token):
        response = error_response(401, "unauthorized", "Send Authorization: Bearer with the metrics token.")
        response.headers["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    body = generate_latest(registry(current_app._get_current_object()))  # type: ignore[attr-defined]
    # The 0.0.4 text format: what every Prometheus 2 and 3 reads (our names need none of 1.0.0's escaping).
    return Response(body, content_type=CONTENT_TYPE_PLAIN_0_0_4)


def init_app(app: Flask) -> None:
    """Count every request by endpoint and status, time it, and add GET /metrics."""
    app.before_request(_start_timer)
    app.after_request(_count_request)
    app.register_blueprint(bp)


def _start_timer() -> None:
    g.studio_metrics_started = time.perf_counter()


def untimed() -> None:
    """Leave this request out of the latency histogram (it waits for a task on purpose, `?wait=N`): its time is
    the task's, and would drown the server's own in every latency quantile. It is still counted."""
    g.pop("studio_metrics_started", None)


def _count_request(response: Response) -> Response:
    # Flask's endpoint name, never the path: paths hold task ids, and each label value is a series of its own.
    endpoint = request.endpoint or "unmatched"
    method = method_label(request.method)
    HTTP_REQUESTS.labels(endpoint, method, status_label(response.status_code)).inc()
    started = g.get("studio_metrics_started")
    if started is not None:
        HTTP_REQUEST_SECONDS.labels(endpoint, method).observe(time.perf_counter() - started)
    return response


def init_worker(app: Flask, clean: bool = True) -> ThreadingWSGIServer | None:
    """In an RQ worker before it works: serve its metrics on STUDIO_WORKER_METRICS_PORT (cleaning its folder
    unless told otherwise: a worker that replaced itself keeps what it counted).

    Off (None) when the port is 0: the worker then shares the folder of a web server that serves and cleans it
    (`make run`). A worker in a container or on a machine of its own needs the port, and a folder of its own.
    """
    port = app.config["STUDIO_WORKER_METRICS_PORT"]
    token = app.config["STUDIO_METRICS_TOKEN"]
    if not port:
        return None
    if not (token and MULTIPROCESS_DIR):
        logger.warning("STUDIO_WORKER_METRICS_PORT is set but STUDIO_METRICS_TOKEN or STUDIO_METRICS_DIR is not: "
                       "this worker's metrics are not served")
        return None
    if clean:
        prepare_directory(MULTIPROCESS_DIR)
    exporter = CollectorRegistry(auto_describe=False)
    multiprocess.MultiProcessCollector(exporter, path=MULTIPROCESS_DIR)
    server = serve(exporter, token, port)
    logger.info("serving this worker's metrics on port %s", port)
    return server


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the name is the base class's
        """Log nothing: a scrape every few seconds is not news."""


def serve(collectors: CollectorRegistry, token: str, port: int, host: str = "0.0.0.0") -> ThreadingWSGIServer:
    """Serve GET /metrics with bearer-token auth from a daemon thread; return the server (shutdown() stops it)."""

    def application(environ: dict, start_response: Callable) -> list[bytes]:
        if environ.get("PATH_INFO") != "/metrics":
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found\n"]
        if not authorized(environ.get("HTTP_AUTHORIZATION"), token):
            start_response("401 Unauthorized", [("Content-Type", "text/plain"),
                                                ("WWW-Authenticate", 'Bearer realm="metrics"')])
            return [b"unauthorized\n"]
        start_response("200 OK", [("Content-Type", CONTENT_TYPE_PLAIN_0_0_4)])
        return [generate_latest(collectors)]

    server = make_server(host, port, application, ThreadingWSGIServer, handler_class=_QuietHandler)
    # A daemon thread of the worker's main process; the horses it forks inherit the socket but not the thread.
    threading.Thread(target=server.serve_forever, name="metrics-exporter", daemon=True).start()
    return server
