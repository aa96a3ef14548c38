"""API errors: always JSON {"error": {"status", "code", "message"}} with the right status."""

from __future__ import annotations

import logging

from flask import jsonify, request
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException, SecurityError
from werkzeug.wrappers import Response

from studio import metrics
from studio.api import bp
from studio.extensions import db
from studio.tasks.service import UploadRejected

logger = logging.getLogger(__name__)

RETRY_AFTER_SECONDS = 10


def api_error(status: int, code: str, message: str) -> Response:
    """Return a JSON error response."""
    response = jsonify(error={"status": status, "code": code, "message": message})
    response.status_code = status
    return response


@bp.errorhandler(UploadRejected)
def handle_upload_rejected(error: UploadRejected) -> Response:
    """Answer a refused upload with its status and reason."""
    metrics.upload_refused(error.code)
    response = api_error(error.status, error.code, error.message)
    if error.status == 429:
        response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


@bp.errorhandler(HTTPException)
def handle_http_error(error: HTTPException) -> Response:
    """Answer 4xx and 5xx with JSON, keeping headers such as WWW-Authenticate, Allow and Retry-After."""
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "_")
    message = error.description or error.name
    if isinstance(error, SecurityError):
        message = "This server does not answer to that host name."
    elif status == 413:
        limit = request.max_content_length
        message = f"The request is larger than the limit of {limit:,} bytes." if limit else error.name
    elif status == 429:
        message = f"Too many requests ({error.description}); wait a little and try again."
    elif status == 500:
        message = "Something went wrong on our side. It has been logged; please try again."
    response = api_error(status, code, message)
    for name, value in error.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


@bp.errorhandler(OperationalError)
@bp.errorhandler(InterfaceError)
@bp.errorhandler(RedisConnectionError)
@bp.errorhandler(RedisTimeoutError)
def handle_service_down(error: Exception) -> Response:
    """Answer 503 with a retry hint when PostgreSQL or Redis cannot be reached."""
    logger.error("service unavailable on %s %s: %s", request.method, request.path, error.__class__.__name__)
    try:
        db.session.rollback()
    except SQLAlchemyError:
        pass
    response = api_error(503, "service_unavailable", "A backing service is unavailable; try again in a few seconds.")
    response.headers["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response
