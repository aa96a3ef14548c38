"""Device cookies (OWASP's answer to lockout): a browser that signed in before is not throttled by others' failures.

Throttling password guesses per account lets anyone lock anyone out: ten wrong passwords a minute from one address
would keep the owner out, even with the right password, from any address. So a successful sign-in (page or API token
exchange) gives the client a device cookie: signed with the app's secret, naming the account (by a digest of its
email) and a random device id. An attempt that presents a valid device cookie for the account it signs in to is
counted in that device's own allowance; every other attempt shares the account's allowance for untrusted clients,
which guessing exhausts. Failures from many addresses still slow the untrusted side down, and a stolen or guessing
device cookie is throttled on its own.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from flask import after_this_request, current_app, request
from itsdangerous import BadSignature, URLSafeTimedSerializer
from werkzeug.wrappers import Response

COOKIE_NAME = "studio_device"
MAX_AGE_SECONDS = 365 * 24 * 3600
_SALT = "studio-device-cookie"


@dataclass(frozen=True)
class Device:
    """A client that signed in to an account before."""

    account: str  # digest of the normalised email
    device_id: str


def account_digest(normalised_email: str) -> str:
    """Return what a device cookie keeps of an account: a digest of its normalised email, not the email."""
    return hashlib.sha256(normalised_email.encode()).hexdigest()[:32]


def _serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=_SALT)


def current() -> Device | None:
    """Return the device the request's cookie names, None without a valid, unexpired one."""
    value = request.cookies.get(COOKIE_NAME)
    if not value or len(value) > 300:
        return None
    try:
        data = _serializer().loads(value, max_age=MAX_AGE_SECONDS)
    except BadSignature:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("a"), str) or not isinstance(data.get("d"), str):
        return None
    return Device(data["a"], data["d"])


def trusted_for(normalised_email: str) -> Device | None:
    """Return the request's device when it signed in to this account before, else None."""
    device = current()
    return device if device is not None and device.account == account_digest(normalised_email) else None


def remember(normalised_email: str) -> None:
    """Give the client a device cookie for this account with this response (after a successful password check)."""
    device = trusted_for(normalised_email)
    value = _serializer().dumps({"a": account_digest(normalised_email),
                                 "d": device.device_id if device else secrets.token_urlsafe(16)})

    @after_this_request
    def set_cookie(response: Response) -> Response:
        response.set_cookie(COOKIE_NAME, value, max_age=MAX_AGE_SECONDS, httponly=True, samesite="Lax",
                            secure=current_app.config.get("SESSION_COOKIE_SECURE", False) or request.is_secure)
        return response
