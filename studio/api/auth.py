"""Bearer-token authentication and rate-limit keys for the API (never the session cookie)."""

from __future__ import annotations

from flask import current_app, g, request
from flask_limiter.util import get_remote_address
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from studio.api import bp
from studio.auth.service import user_for_token
from studio.extensions import limiter
from studio.models import User

# Endpoints anyone may call: the token exchange and the API description.
PUBLIC_ENDPOINTS = {"api.create_token", "api.openapi_document"}
_UNSET = object()


def bearer_token() -> str | None:
    """Return the token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def current_api_user() -> User | None:
    """Return the account of the request's bearer token (looked up once per request), or None."""
    user = g.get("api_user", _UNSET)
    if user is _UNSET:
        token = bearer_token()
        user = g.api_user = user_for_token(token) if token else None
    return user


@bp.before_request
def require_token() -> None:
    """Refuse any non-public API request without a valid bearer token."""
    if request.endpoint in PUBLIC_ENDPOINTS:
        return
    if current_api_user() is None:
        message = "Send a valid API token: Authorization: Bearer <token> (POST /api/v1/tokens creates one)."
        raise Unauthorized(message, www_authenticate=WWWAuthenticate("bearer", {"realm": "api"}))


def client_key() -> str:
    """Return the rate-limit key: the token's account (shared with its pages), else the client address."""
    user = current_api_user()
    return f"user:{user.id}" if user is not None else f"ip:{get_remote_address()}"


def _tier(name: str):
    return lambda: current_app.config[name]


# "upload" is the scope the pages use too (studio.security), so pages and API share one upload allowance.
upload_limit = limiter.shared_limit(_tier("RATELIMIT_UPLOAD"), "upload", key_func=client_key, methods=["POST"])
read_limit = limiter.limit(_tier("RATELIMIT_READ"), key_func=client_key)
