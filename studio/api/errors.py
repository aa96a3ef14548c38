"""API errors: always JSON {"error": {"status", "code", "message"}} with the right status."""

from __future__ import annotations

from flask import jsonify, request
from werkzeug.exceptions import HTTPException, SecurityError
from werkzeug.wrappers import Response

from studio import metrics
from studio.api import bp
from studio.errors import copy_error_headers, register_service_down_handler
from studio.tasks.service import UploadRejected

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
    return copy_error_headers(error, api_error(status, code, message))


register_service_down_handler(bp, api_error)
