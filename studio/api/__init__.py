"""The JSON API at /api/v1: bearer tokens only, JSON errors, described by a generated openapi.json."""

from flask import Blueprint

from studio.extensions import csrf

bp = Blueprint("api", __name__, url_prefix="/api/v1")
# Bearer tokens are not sent by browsers on their own, so cross-site requests cannot ride on them: no CSRF token.
csrf.exempt(bp)

# noqa: E402,F401 below: the routes register on bp.
from studio.api import auth, batches, errors, operations, tasks, tokens, usage, webhooks  # noqa: E402,F401

__all__ = ["bp"]
