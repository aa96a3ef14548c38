"""rq-dashboard at /admin/rq: read-only job inspection for admins; everyone else gets a 404."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from typing import Any

import rq_dashboard
from flask import Flask, abort, current_app, request
from flask.typing import ResponseReturnValue
from markupsafe import escape
from flask_login import current_user
from rq.exceptions import NoSuchJobError
from rq_dashboard.web import setup_rq_connection
from werkzeug.exceptions import MethodNotAllowed
from werkzeug.wrappers import Response

from studio.errors import error_response
from studio.security import content_security_policy

URL_PREFIX = "/admin/rq"
# Inline <script> blocks that run (not the type="text/template" ones, which the browser never executes).
INLINE_SCRIPT = re.compile(r"<script(?![^>]*\bsrc=)(?![^>]*text/template)[^>]*>(.*?)</script>", re.DOTALL)


def _admins_only() -> None:
    """Hide the dashboard from everyone but admins, and refuse Redis instances other than ours."""
    if request.blueprint != rq_dashboard.blueprint.name:
        return
    if not (current_user.is_authenticated and current_user.is_admin):
        abort(404)
    # rq-dashboard also runs "requeue all" on GET, a state change that a link on another site could trigger.
    if request.endpoint == "rq_dashboard.requeue_all" and request.method != "POST":
        raise MethodNotAllowed(valid_methods=["POST"])
    # The dashboard looks up /<n>/... in its list of Redis URLs and raises (a 500) past the end; we have one.
    if (request.view_args or {}).get("instance_number", 0) != 0:
        abort(404)
    # Its job lists read the page size and number from the path unchecked: 0 would divide by zero, a word would fail
    # int() and a huge number would overflow Redis' LRANGE, each a 500. Its own form offers 1 to 200 a page.
    for name, highest in (("per_page", 200), ("page", 1_000_000)):
        value = str((request.view_args or {}).get(name, 1))
        if not (value.isascii() and value.isdigit() and len(value) <= 7 and 1 <= int(value) <= highest):
            abort(404)


def _missing_job(error: NoSuchJobError) -> ResponseReturnValue:
    """Answer 404, not 500, for a dashboard page about a job that has expired from Redis."""
    if request.blueprint == rq_dashboard.blueprint.name:
        return error_response(404, "not_found", "That job is no longer in Redis.")
    raise error


def _dashboard_content_security_policy(response: Response) -> Response:
    """Allow the dashboard's own inline script (by hash) and underscore's templates (eval), on its pages only."""
    if request.blueprint != rq_dashboard.blueprint.name or response.mimetype != "text/html":
        return response
    hashes = " ".join(
        "'sha256-" + base64.b64encode(hashlib.sha256(script.encode()).digest()).decode() + "'"
        for script in INLINE_SCRIPT.findall(response.get_data(as_text=True))
    )
    policy = content_security_policy(current_app.config)
    response.headers["Content-Security-Policy"] = re.sub(
        r"script-src [^;]*", f"script-src 'self' {hashes} 'unsafe-eval'", policy
    )
    return response


def _escape_job_details(response: Response) -> Response:
    """HTML-escape every string of a job's details: rq-dashboard 0.9's job page inserts them unescaped.

    Its template writes description, metadata, result and exc_info with underscore's <%= %>, which does not
    escape; an exception message or a job's metadata holding markup would run as script in an admin's browser.
    """
    if request.endpoint != "rq_dashboard.job_info" or response.mimetype != "application/json":
        return response
    response.set_data(json.dumps(_escaped(response.get_json())))
    return response


def _escaped(value: Any) -> Any:
    if isinstance(value, str):
        return str(escape(value))
    if isinstance(value, list):
        return [_escaped(item) for item in value]
    if isinstance(value, dict):
        return {key: _escaped(item) for key, item in value.items()}
    return value


def init_app(app: Flask) -> None:
    """Mount rq-dashboard on the app's Redis, behind the admin check."""
    app.config.setdefault("RQ_DASHBOARD_REDIS_URL", app.config["REDIS_URL"])
    # Task state lives in the database: deleting or requeueing RQ jobs behind its back would make the two disagree.
    # The dashboard's own POSTs carry no CSRF token, so CSRFProtect refuses them anyway; hide the delete buttons.
    app.config.setdefault("RQ_DASHBOARD_DISABLE_DELETE", True)
    # rq-dashboard's blueprint is one module-level object shared by every app, so the checks hang on the app.
    app.before_request(_admins_only)
    app.register_error_handler(NoSuchJobError, _missing_job)
    # Runs before studio.security's header hook, which keeps a policy already set.
    app.after_request(_dashboard_content_security_policy)
    app.after_request(_escape_job_details)
    app.register_blueprint(rq_dashboard.blueprint, url_prefix=URL_PREFIX)
    # rq-dashboard used before_app_first_request (gone from Flask) for this; it only builds a lazy Redis client.
    setup_rq_connection(app)
