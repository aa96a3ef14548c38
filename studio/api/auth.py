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
# Blueprints whose requests carry an API token; the remove.bg-compatible one also takes it as X-Api-Key.
TOKEN_BLUEPRINTS = {"api", "removebg"}
API_KEY_HEADER = "X-Api-Key"
_UNSET = object()


def bearer_token() -> str | None:
    """Return the token of an `Authorization: Bearer <token>` header, or None."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def request_token() -> str | None:
    """Return the request's API token: a bearer token, or remove.bg's X-Api-Key on its compatible endpoints."""
    if request.blueprint == "removebg":
        return request.headers.get(API_KEY_HEADER, "").strip() or bearer_token()
    return bearer_token()


def current_api_user() -> User | None:
    """Return the account of the request's API token (looked up once per request), or None."""
    user = g.get("api_user", _UNSET)
    if user is _UNSET:
        token = request_token()
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
