"""Webhooks, the web side: checking the URL an uploader gives and managing the account's signing secret.

Deliveries follow the Standard Webhooks specification (https://www.standardwebhooks.com): each POST carries the
headers webhook-id, webhook-timestamp and webhook-signature, an HMAC-SHA256 made with the account's secret, so a
receiver verifies it with any Standard Webhooks library. jobs/webhooks.py sends them.
"""

from __future__ import annotations

import base64
import ipaddress
import secrets
from urllib.parse import urlsplit

from studio.extensions import db
from studio.models import User
from studio.tasks.uploads import UploadRejected

MAX_URL_LENGTH = 2048
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


def non_public_reason(address: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str | None:
    """Return what kind of non-public address this is ("a loopback address"), None for a public one."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    if address.is_global and not address.is_multicast:
        return None
    for label, flag in (("loopback", address.is_loopback), ("link-local", address.is_link_local),
                        ("private", address.is_private), ("multicast", address.is_multicast)):
        if flag:
            return f"a {label} address"
    return "not a public address"


def check_webhook_url(value: object, allow_private: bool) -> str | None:
    """Return the webhook URL to store (None when none was given); raise UploadRejected (400) for a bad one.

    Only what can be told without the network is checked here; the addresses a host name resolves to are checked
    at each delivery (jobs/webhooks.py), since DNS answers change.
    """
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise _invalid("must be a URL")
    url = value.strip()
    if len(url) > MAX_URL_LENGTH:
        raise _invalid(f"is too long ({len(url):,} characters; at most {MAX_URL_LENGTH:,})")
    if not url.isascii() or any(character.isspace() or ord(character) < 32 for character in url):
        raise _invalid("must be an ASCII URL without spaces (encode international names as punycode)")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        raise _invalid("is not a valid URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise _invalid("must be an http:// or https:// URL with a host")
    if parts.username is not None or parts.password is not None:
        raise _invalid("must not hold a user name or password; authenticate the delivery by its signature")
    if not allow_private:
        host = parts.hostname
        if host == "localhost" or host.endswith(".localhost"):
            raise _invalid("must point to a public host, not localhost")
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            address = None
        reason = non_public_reason(address) if address is not None else None
        if reason:
            raise _invalid(f"must point to a public address ({host} is {reason})")
    return url


def _invalid(message: str) -> UploadRejected:
    return UploadRejected(400, "invalid_webhook_url", f"webhook_url {message}.")
