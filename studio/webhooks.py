"""Webhooks, the web side: checking the URL an uploader gives and managing the account's signing secret.

Deliveries follow the Standard Webhooks specification (https://www.standardwebhooks.com): each POST carries the
headers webhook-id, webhook-timestamp and webhook-signature, an HMAC-SHA256 made with the account's secret, so a
receiver verifies it with any Standard Webhooks library. jobs/webhooks.py sends them.
"""

from __future__ import annotations

import base64
import secrets

from studio.extensions import db
from studio.models import User
from studio.outbound import UnsafeURL, check_url
from studio.tasks.uploads import UploadRejected

SECRET_PREFIX = "whsec_"
SECRET_BYTES = 32


def new_secret() -> str:
    """Return a fresh signing secret in the Standard Webhooks format (whsec_ + base64)."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii")


def ensure_secret(user: User) -> str:
    """Return the account's signing secret, giving it one first if it has none (the caller commits)."""
    if not user.webhook_secret:
        user.webhook_secret = new_secret()
    return user.webhook_secret


def rotate_secret(user: User) -> str:
    """Replace the account's signing secret and commit; deliveries from now on are signed with the new one."""
    user.webhook_secret = new_secret()
    db.session.commit()
    return user.webhook_secret


def check_webhook_url(value: object, allow_private: bool) -> str | None:
    """Return the webhook URL to store (None when none was given); raise UploadRejected (400) for a bad one.

    The strict parse of studio.outbound: the delivery parses the stored URL the same way again, and judges the
    addresses its host resolves to when it calls, since DNS answers change.
    """
    if value is None or value == "":
        return None
    try:
        return check_url(value, allow_private=allow_private).url
    except UnsafeURL as error:
        raise _invalid(str(error)) from None


def _invalid(message: str) -> UploadRejected:
    return UploadRejected(400, "invalid_webhook_url", f"webhook_url {message}.")
