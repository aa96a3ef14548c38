"""A remove.bg-compatible API at /v1.0: POST /v1.0/removebg and GET /v1.0/account, authenticated by the studio's
API tokens in X-Api-Key, so tools written for remove.bg work by changing only their endpoint (docs/api.md)."""

from flask import Blueprint

from studio.extensions import csrf

bp = Blueprint("removebg", __name__, url_prefix="/v1.0")
# Token authentication (X-Api-Key), never cookies: a cross-site request cannot ride on it, so no CSRF token.
csrf.exempt(bp)

# noqa: E402,F401 below: the routes and handlers register on bp.
from studio.removebg import errors, views  # noqa: E402,F401

__all__ = ["bp"]
