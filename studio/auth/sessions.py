"""Server-side control over signed-cookie sessions: a random id per sign-in, revoked in Redis on sign-out.

Flask keeps the session in a signed cookie, so the server cannot delete it: a copy taken before sign-out would stay
valid until it expires. Each sign-in therefore gets a fresh random session id, and signing out records that id as
revoked in Redis for as long as any cookie carrying it could still be accepted (PERMANENT_SESSION_LIFETIME: Flask
refuses older signatures). Password changes and "sign out everywhere" bump the account's session_version instead,
which ends every session of the account at once without Redis.

Redis is the queue's own, persistent (appendonly) store. When it cannot be reached, checks let sessions through (the
site keeps working during an outage, as uploads do) and sign-out falls back to bumping session_version, so a
sign-out is never lost: it then ends the account's other sessions too. Sessions signed before session ids existed
carry none; they are accepted (only the server can sign a cookie) and their sign-out bumps session_version.
"""

from __future__ import annotations

import logging
import secrets

from flask import Flask, current_app, session
from flask_login import login_user, logout_user
from redis import Redis
from redis.exceptions import RedisError

from studio.extensions import db
from studio.models import User

log = logging.getLogger(__name__)

SESSION_ID_KEY = "_sid"
REVOKED_PREFIX = "studio:session-revoked:"
_EXTENSION_KEY = "studio.sessions.redis"
# Every request of a signed-in user asks Redis once: a dead Redis must cost milliseconds, not seconds.
_SOCKET_TIMEOUT_SECONDS = 0.5


def _redis(app: Flask) -> Redis:
    connection = app.extensions.get(_EXTENSION_KEY)
    if connection is None:
        connection = app.extensions[_EXTENSION_KEY] = Redis.from_url(
            app.config["REDIS_URL"], socket_connect_timeout=_SOCKET_TIMEOUT_SECONDS,
            socket_timeout=_SOCKET_TIMEOUT_SECONDS,
        )
    return connection


def revoked_key(session_id: str) -> str:
    """Return the Redis key that marks a session id as revoked."""
    return REVOKED_PREFIX + session_id


def start(user: User) -> None:
    """Sign the user in on a brand-new session: nothing from before sign-in (a planted id, say) survives."""
    session.clear()
    session[SESSION_ID_KEY] = secrets.token_urlsafe(32)
    login_user(user)


def is_live() -> bool:
    """Return False when the current session's id was revoked by a sign-out."""
    session_id = session.get(SESSION_ID_KEY)
    if not isinstance(session_id, str) or not session_id:
        # Signed before session ids existed (only we can sign cookies): its sign-out bumps session_version instead.
        return True
    try:
        return not _redis(current_app).exists(revoked_key(session_id))
    except RedisError as error:
        # Fail open: a Redis outage must not sign everyone out; sign-outs made meanwhile bump session_version.
        log.warning("could not check session revocation, Redis unavailable: %s", error)
        return True


def end(user: User | None) -> None:
    """Sign out: revoke this session's id server-side, then clear the cookie."""
    if not _revoke(session.get(SESSION_ID_KEY)) and user is not None:
        # The only other way to make this cookie worthless: end every session of the account.
        user.session_version += 1
        db.session.commit()
        log.info("account %s signed out by ending all its sessions", user.id)
    logout_user()
    session.clear()


def _revoke(session_id: object) -> bool:
    """Record a session id as revoked for as long as a cookie carrying it could be accepted; False if not done."""
    if not isinstance(session_id, str) or not session_id:
        return False
    lifetime = int(current_app.permanent_session_lifetime.total_seconds())
    try:
        _redis(current_app).set(revoked_key(session_id), "1", ex=max(lifetime, 1))
    except RedisError as error:
        log.warning("could not revoke a session in Redis: %s", error)
        return False
    return True
