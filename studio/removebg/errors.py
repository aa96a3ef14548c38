"""Errors as remove.bg answers them: {"errors": [{"title", "code"}]} with its status codes (400 for a bad request or
photo, 402 for a plan's limit, 403 for a missing or bad key, 429 for too many requests, 503 to come back later)."""

from __future__ import annotations

from flask import jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from studio import metrics
from studio.errors import copy_error_headers, register_service_down_handler
from studio.plans import PlanLimitReached
from studio.removebg import bp
from studio.tasks.uploads import UploadRejected

RETRY_AFTER_SECONDS = 10
# The studio's statuses that remove.bg spells otherwise: it answers every refused photo 400, a full account 402.
_STATUSES = {401: 403, 410: 400, 413: 400, 415: 400, 422: 400}
# A call whose task failed, was cancelled or outlasted the wait was not refused: not counted as a refused upload.
UNFINISHED_CODES = frozenset({"failed", "cancelled", "still_processing"})


def removebg_error(status: int, code: str, title: str, retry_after: int | None = None) -> Response:
    """Return an error in remove.bg's shape (Retry-After when given)."""
    response = jsonify(errors=[{"title": title, "code": code}])
    response.status_code = status
    if retry_after is not None:
        response.headers["Retry-After"] = str(retry_after)
    return response


@bp.errorhandler(PlanLimitReached)
def handle_plan_limit(error: PlanLimitReached) -> Response:
    """Answer 402, as remove.bg does when the credits are spent."""
    metrics.upload_refused(error.code)
    return removebg_error(402, "insufficient_credits", error.message)


@bp.errorhandler(UploadRejected)
def handle_rejected(error: UploadRejected) -> Response:
    """Answer a refused call with remove.bg's status for it; a full storage quota is a plan limit (402)."""
    if error.code not in UNFINISHED_CODES:
        metrics.upload_refused(error.code)
    status = 402 if error.code == "quota_exceeded" else _STATUSES.get(error.status, error.status)
    retry_after = RETRY_AFTER_SECONDS if status in (429, 503) else None
    return removebg_error(status, error.code, error.message, retry_after)


@bp.errorhandler(HTTPException)
def handle_http_error(error: HTTPException) -> Response:
    """Answer 4xx and 5xx in remove.bg's shape, keeping Retry-After and the rate-limit headers."""
    status = _STATUSES.get(error.code or 500, error.code or 500)
    code = (error.name or "error").lower().replace(" ", "_")
    title = error.description or error.name
    if error.code == 413:
        limit = request.max_content_length
        code, title = "file_too_large", f"The request is larger than the limit of {limit or 0:,} bytes."
    elif status == 429:
        title = f"Too many requests ({error.description}); wait a little and try again."
    elif status == 500:
        title = "Something went wrong on our side. It has been logged; please try again."
    # remove.bg answers a bad key 403 without a challenge: a 401's WWW-Authenticate would contradict the status.
    return copy_error_headers(error, removebg_error(status, code, title), skip=("www-authenticate",))


register_service_down_handler(bp, removebg_error)
