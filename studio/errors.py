"""Error pages: HTML for people, JSON for the API and clients that ask for it, never a traceback."""

from __future__ import annotations

import logging
from typing import Callable

from flask import Blueprint, Flask, current_app, jsonify, render_template, request
from flask_wtf.csrf import CSRFError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError
from werkzeug.exceptions import HTTPException, InternalServerError, SecurityError
from werkzeug.wrappers import Response

from studio.extensions import db

log = logging.getLogger(__name__)

UNAVAILABLE_RETRY_SECONDS = 10
# PostgreSQL or Redis out of reach: the token APIs answer these 503 with a retry hint, never a 500.
SERVICE_DOWN_ERRORS = (OperationalError, InterfaceError, RedisConnectionError, RedisTimeoutError)
SERVICE_DOWN_MESSAGE = "A backing service is unavailable; try again in a few seconds."
_MESSAGES = {
    400: "The request could not be understood.",
    401: "Sign in to continue.",
    403: "You are not allowed to do that.",
    404: "There is nothing here. It may have been deleted, or it belongs to another account.",
    405: "That address does not accept this kind of request.",
    500: "Something went wrong on our side. It has been logged; please try again.",
}


def init_app(app: Flask) -> None:
    """Register the error handlers."""
    app.register_error_handler(CSRFError, handle_csrf_error)
    app.register_error_handler(HTTPException, handle_http_error)
    app.register_error_handler(InternalServerError, handle_internal_error)
    for error in (OperationalError, InterfaceError):
        app.register_error_handler(error, handle_database_down)
    for error in (RedisConnectionError, RedisTimeoutError):
        app.register_error_handler(error, handle_queue_down)


def wants_json() -> bool:
    """Return True for API paths and for clients that prefer JSON to HTML."""
    if request.path.startswith("/api/"):
        return True
    best = request.accept_mimetypes.best_match(["text/html", "application/json"])
    return best == "application/json"


def error_response(status: int, code: str, message: str, *, title: str | None = None) -> Response:
    """Return an error as JSON or as an HTML page, whichever the client wants."""
    if wants_json():
        response = jsonify(error={"status": status, "code": code, "message": message})
    else:
        try:
            body = render_template("errors/error.html", status=status, title=title or code.replace("_", " "),
                                   message=message)
        except SQLAlchemyError:
            # The layout looks up the signed-in user; with the database gone, show the bare page.
            return _unavailable_page("The database is unavailable.")
        response = Response(body, mimetype="text/html")
    response.status_code = status
    return response


def handle_http_error(error: HTTPException) -> Response:
    """Render an HTTP error (404, 405, 413, 429...) with a readable message."""
    status = error.code or 500
    code = (error.name or "error").lower().replace(" ", "_")
    custom = error.description and error.description != type(error).description
    message = error.description if custom else _MESSAGES.get(status, error.description or "")
    if isinstance(error, SecurityError):
        # An untrusted Host: no URL can be built for it, so no page either. Werkzeug's message repeats the header;
        # say why without reflecting what the client sent.
        return Response("This server does not answer to that host name.\n", status=400, mimetype="text/plain")
    if status == 413:
        limit = request.max_content_length
        size = f" of {limit // (1024 * 1024)} MB" if limit else ""
        message = f"The upload is larger than the limit{size}. Choose a smaller file."
    elif status == 429:
        message = f"Too many requests ({error.description}). Wait a little and try again."
    return copy_error_headers(error, error_response(status, code, message, title=error.name))


def copy_error_headers(error: HTTPException, response: Response, skip: tuple[str, ...] = ()) -> Response:
    """Copy the headers an HTTP error carries (Allow, WWW-Authenticate, Retry-After...) onto its answer."""
    # The answer's own Content-Type stays: the exception's would say text/html over a JSON body.
    left_out = {"content-type", *(name.lower() for name in skip)}
    for name, value in error.get_headers():
        if name.lower() not in left_out:
            response.headers[name] = value
    return response


def register_service_down_handler(blueprint: Blueprint, answer: Callable[[int, str, str], Response]) -> None:
    """Answer PostgreSQL or Redis being out of reach on a blueprint with 503, Retry-After and answer's shape."""

    def handle_service_down(error: Exception) -> Response:
        log.error("service unavailable on %s %s: %s", request.method, request.path, error.__class__.__name__)
        _rollback()
        response = answer(503, "service_unavailable", SERVICE_DOWN_MESSAGE)
        response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_SECONDS)
        return response

    for error in SERVICE_DOWN_ERRORS:
        blueprint.register_error_handler(error, handle_service_down)


def handle_csrf_error(error: CSRFError) -> Response:
    """Explain a missing or expired CSRF token instead of a bare 400."""
    log.info("refused a request without a valid CSRF token: %s %s (%s)", request.method, request.path,
             error.description)
    return error_response(400, "csrf_failed", "The form expired or was sent without its security token. "
                          "Reload the page and try again.", title="Form expired")


def handle_internal_error(error: InternalServerError) -> Response:
    """Log the real exception and show a plain 500 page."""
    original = getattr(error, "original_exception", None)
    if original is not None:
        log.error("unhandled error on %s %s", request.method, request.path, exc_info=original)
    return error_response(500, "internal_error", _MESSAGES[500], title="Server error")


def handle_database_down(error: Exception) -> Response:
    """Answer 503 with a retry hint when PostgreSQL cannot be reached."""
    log.error("database unavailable on %s %s: %s", request.method, request.path, error.__class__.__name__)
    _rollback()
    return _unavailable("The database is unavailable.")


def handle_queue_down(error: Exception) -> Response:
    """Answer 503 with a retry hint when Redis (the job queue) cannot be reached."""
    log.error("job queue unavailable on %s %s: %s", request.method, request.path, error)
    return _unavailable("The job queue is unavailable.")


def _rollback() -> None:
    # The failed statement left the session unusable; with the connection itself gone the rollback may fail too.
    try:
        db.session.rollback()
    except SQLAlchemyError:
        pass


def _unavailable(reason: str) -> Response:
    message = f"{reason} Please try again in a few seconds."
    if wants_json():
        response = jsonify(error={"status": 503, "code": "service_unavailable", "message": message})
        response.status_code = 503
    else:
        response = _unavailable_page(reason)
    response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_SECONDS)
    return response


def _unavailable_page(reason: str) -> Response:
    # Straight from the Jinja environment: render_template's context processors would load the signed-in user,
    # which needs the database that is down.
    template = current_app.jinja_env.get_template("errors/unavailable.html")
    body = template.render(message=f"{reason} Please try again in a few seconds.")
    response = Response(body, status=503, mimetype="text/html")
    response.headers["Retry-After"] = str(UNAVAILABLE_RETRY_SECONDS)
    return response
