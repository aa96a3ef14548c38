"""Password reset links: one-time, expiring, kept only as a SHA-256 digest, one live link per account.

An administrator issues one (dashboard or `studio reset-link`) and hands it over; with SMTP configured, anyone can
ask for one by email ("Forgot password?"). Using a link sets a new password under the sign-up rules, ends every
session of the account, revokes its API tokens and deletes the link. Links point at STUDIO_PUBLIC_URL, never at the
request's Host header, so a forged Host cannot send a victim's token to another site.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta
from typing import Any, Mapping

from flask import url_for
from sqlalchemy import delete, select

from studio.admin import audit
from studio.auth import service
from studio.auth.service import AccountError
from studio.extensions import db
from studio.models import PasswordResetToken, User, as_utc, utcnow

log = logging.getLogger(__name__)

# Longer than any token we make (43 characters), short enough that no request body costs anything to digest.
MAX_TOKEN_LENGTH = 100
INVALID_LINK = "This password reset link is not valid: it was used already, replaced by a newer one, or has expired."


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def issue(user: User, lifetime_seconds: int) -> str:
    """Make the account's reset token, replacing any earlier one, and return it (only its digest is kept)."""
    token = secrets.token_urlsafe(32)
    forget(user)
    db.session.add(PasswordResetToken(token_hash=_digest(token), user_id=user.id,
                                      expires_at=utcnow() + timedelta(seconds=max(lifetime_seconds, 1))))
    return token


def forget(user: User) -> None:
    """Invalidate the account's reset link, if any (the caller commits)."""
    db.session.execute(delete(PasswordResetToken).where(PasswordResetToken.user_id == user.id))


def issue_by_admin(actor: User | None, user: User, config: Mapping[str, Any]) -> str:
    """Make a reset link for an account on an administrator's behalf (None: the command line), audited; return it."""
    token = issue(user, config["STUDIO_ADMIN_RESET_LINK_SECONDS"])
    audit.record(actor, "user.reset_link", user.email, user_id=user.id)
    db.session.commit()
    return link(token, config)


def link(token: str, config: Mapping[str, Any]) -> str:
    """Return the reset page's address for a token: on STUDIO_PUBLIC_URL, or the bare path when it is unset."""
    path = url_for("auth.reset_password", token=token, _external=False)  # /reset?token=...
    base = config.get("STUDIO_PUBLIC_URL")
    return f"{base}{path}" if base else path


def user_for(token: object) -> User | None:
    """Return the account of a live, unexpired reset token, or None."""
    if not isinstance(token, str) or not token or len(token) > MAX_TOKEN_LENGTH:
        return None
    record = db.session.scalar(select(PasswordResetToken).where(PasswordResetToken.token_hash == _digest(token)))
    if record is None or as_utc(record.expires_at) <= utcnow():
        return None
    return db.session.get(User, record.user_id)


def reset_password(token: object, new_password: str) -> User:
    """Set a new password with a reset token; end every session, revoke API tokens and use the token up."""
    user = user_for(token)
    if user is None:
        raise AccountError(INVALID_LINK)
    service.validate_password(new_password)
    user.password_hash = service.password_hasher.hash(new_password)
    user.session_version += 1
    for api_token in user.tokens:
        if api_token.revoked_at is None:
            api_token.revoked_at = utcnow()
    forget(user)
    audit.record(user, "user.password_reset", user.email, user_id=user.id)
    db.session.commit()
    log.info("account %s reset its password with a link; sessions ended and API tokens revoked", user.id)
    return user
