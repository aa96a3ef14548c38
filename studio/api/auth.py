"""Bearer-token authentication for the API (never the session cookie); its rate limits are studio.security's."""

from __future__ import annotations

from flask import g, request
from werkzeug.datastructures import WWWAuthenticate
from werkzeug.exceptions import Unauthorized

from studio.api import bp
from studio.auth.service import user_for_token
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
