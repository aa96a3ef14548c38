"""Probes: /livez (the process answers), /readyz and /healthz (the database, Redis and the file storage answer, and
the SQS queue with STUDIO_QUEUE_BACKEND=sqs).

/livez touches nothing else, so a restart is never ordered because of a service the restart cannot mend;
/readyz takes a pod out of its Service while it cannot reach what it needs; /healthz is /readyz's older name,
kept for load balancers, Compose and `make run`.
"""

from __future__ import annotations

import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor, wait
from pathlib import Path
from typing import Any, Callable

import boto3
from botocore.exceptions import ClientError
from botocore.config import Config as BotoConfig
from flask import Blueprint, Flask, current_app, jsonify
from flask.typing import ResponseReturnValue
from redis import Redis
from sqlalchemy import text

from studio import sqs_queue, sqs_state
from studio.extensions import csrf, db, limiter

logger = logging.getLogger(__name__)

# Each check gets this long in all; a hung dependency must not hang the probe that asks about it.
CHECK_TIMEOUT_SECONDS = 3.0
SOCKET_TIMEOUT_SECONDS = 2.0

bp = Blueprint("health", __name__)
csrf.exempt(bp)


def check_database(app: Flask) -> None:
    """Run SELECT 1 on the app's database."""
    with app.app_context():
        db.session.execute(text("SELECT 1"))


def check_redis(app: Flask) -> None:
    """Ping the Redis the queue uses."""
    client = Redis.from_url(
        app.config["REDIS_URL"],
        socket_connect_timeout=SOCKET_TIMEOUT_SECONDS,
        socket_timeout=SOCKET_TIMEOUT_SECONDS,
    )
    try:
        client.ping()
    finally:
        client.close()


def check_storage(app: Flask) -> None:
    """Check that the S3 bucket answers, or that the local storage folder is writable."""
    config = app.config
    if config["STUDIO_S3_BUCKET"]:
        # A client of its own: the app's storage client retries for minutes, a probe must answer in seconds.
        client = boto3.client(
            "s3",
            endpoint_url=config["STUDIO_S3_ENDPOINT_URL"],
            region_name=config["STUDIO_S3_REGION"],
            config=BotoConfig(
                connect_timeout=SOCKET_TIMEOUT_SECONDS,
                read_timeout=SOCKET_TIMEOUT_SECONDS,
                retries={"total_max_attempts": 1},
            ),
        )
        client.head_bucket(Bucket=config["STUDIO_S3_BUCKET"])
        return
    folder = Path(config["STUDIO_STORAGE_DIR"])
    folder.mkdir(parents=True, exist_ok=True)
    if not os.access(folder, os.W_OK | os.X_OK):
        raise PermissionError(f"storage folder {folder} is not writable")


def check_sqs(app: Flask) -> None:
    """Read the SQS task queue's depth (studio/sqs_state.py: a read shared by the next few seconds' probes).

    An answer that refuses the read for want of permission (sqs:GetQueueAttributes, which only the metrics and the
    overview need) still proves SQS answers: the web app may well be allowed to send, so it stays ready rather than
    every web pod leaving the load balancer over a missing read permission. The refusal is logged by the read.
    """
    try:
        sqs_state.state(app.config)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") not in sqs_state.ACCESS_DENIED:
            raise


CHECKS: dict[str, Callable[[Flask], None]] = {
    "database": check_database,
    "redis": check_redis,
    "storage": check_storage,
}


def checks_for(app: Flask) -> dict[str, Callable[[Flask], None]]:
    """Return the checks of what this app depends on: SQS too when it is the queue."""
    return {**CHECKS, "sqs": check_sqs} if sqs_queue.enabled(app.config) else CHECKS


def _timed(check: Callable[[Flask], None], app: Flask) -> dict[str, Any]:
    started = time.monotonic()
    try:
        check(app)
    except Exception as error:  # noqa: BLE001 - a probe reports every failure, it never raises one
        # The log gets the detail; the unauthenticated response only names the kind of failure.
        logger.warning("health check %s failed: %s", check.__name__, error)
        return {"status": "error", "error": type(error).__name__}
    return {"status": "ok", "seconds": round(time.monotonic() - started, 3)}


def run_checks(app: Flask) -> dict[str, dict[str, Any]]:
    """Run every check in parallel, each bounded in time, and return their results by name."""
    checks = checks_for(app)
    executor = ThreadPoolExecutor(max_workers=len(checks), thread_name_prefix="healthz")
    futures = {name: executor.submit(_timed, check, app) for name, check in checks.items()}
    wait(futures.values(), timeout=CHECK_TIMEOUT_SECONDS)
    # Don't wait for a check that is stuck: its thread ends when its own socket timeout fires.
    executor.shutdown(wait=False, cancel_futures=True)
    results = {}
    for name, future in futures.items():
        if future.done() and not future.cancelled():
            results[name] = future.result()
        else:
            logger.warning("health check %s timed out after %ss", name, CHECK_TIMEOUT_SECONDS)
            results[name] = {"status": "error", "error": "timeout"}
    return results


@bp.get("/healthz")
@limiter.exempt
def healthz() -> ResponseReturnValue:
    """Report whether every dependency answers: 200 when all do, 503 otherwise."""
    checks = run_checks(current_app._get_current_object())  # type: ignore[attr-defined]
    healthy = all(result["status"] == "ok" for result in checks.values())
    body = {"status": "ok" if healthy else "degraded", "checks": checks}
    return jsonify(body), 200 if healthy else 503


@bp.get("/readyz")
@limiter.exempt
def readyz() -> ResponseReturnValue:
    """Report whether this process can serve: the same checks and answers as /healthz."""
    return healthz()


@bp.get("/livez")
@limiter.exempt
def livez() -> ResponseReturnValue:
    """Report that the process answers requests, without asking any other service."""
    return jsonify(status="ok")
