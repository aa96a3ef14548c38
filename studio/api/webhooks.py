"""The account's webhook signing secret: read it, or replace it."""

from __future__ import annotations

from flask import g, jsonify
from werkzeug.wrappers import Response

from studio.api import bp
from studio.security import read_limit
from studio.webhooks import rotate_secret


@bp.get("/webhook-secret")
@read_limit
def get_webhook_secret() -> Response:
    """Show the secret that signs this account's webhooks (null until one is made).
    ---
    get:
      operationId: getWebhookSecret
      summary: Show the secret that signs the account's webhooks (null until the first webhook)
      responses:
        "200": {description: The secret, content: {application/json: {schema: WebhookSecret}}}
        "401": Unauthorized
        "429": TooManyRequests
        "503": Unavailable
    """
    return jsonify(secret=g.api_user.webhook_secret)


@bp.post("/webhook-secret")
@read_limit
def rotate_webhook_secret() -> tuple[Response, int]:
    """Replace the signing secret; deliveries from now on are signed with the new one.
    ---
    post:
      operationId: rotateWebhookSecret
      summary: Replace the signing secret; webhooks sent from now on use the new one
      responses:
        "201": {description: The new secret, content: {application/json: {schema: WebhookSecret}}}
        "401": Unauthorized
        "429": TooManyRequests
        "503": Unavailable
    """
    return jsonify(secret=rotate_secret(g.api_user)), 201
