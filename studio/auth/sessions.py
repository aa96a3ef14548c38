"""Server-side control over signed-cookie sessions: a random id per sign-in, revoked in PostgreSQL on sign-out.

Flask keeps the session in a signed cookie, so the server cannot delete it: a copy taken before sign-out would stay
valid until it expires. Each sign-in therefore gets a fresh random session id, and signing out records that id
(its SHA-256) as revoked in the database for as long as any cookie carrying it could still be accepted
(PERMANENT_SESSION_LIFETIME: Flask refuses older signatures). The database is the source of truth the rest of the
app already depends on for every signed-in request, so a revocation holds whatever Redis does. Password changes and
"sign out everywhere" bump the account's session_version instead, which ends every session of the account at once.
Sessions signed before session ids existed carry none; they are accepted (only the server can sign a cookie) and
their sign-out bumps session_version. Expired revocations are purged with the daily retention job.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from datetime import timedelta

from flask import current_app, session
from flask_login import login_user, logout_user
from sqlalchemy import delete

from studio.extensions import db
from studio.models import RevokedSession, User, utcnow

log = logging.getLogger(__name__)

SESSION_ID_KEY = "_sid"


def id_hash(session_id: str) -> str:
    """Return what the database keeps of a revoked session id."""
    return hashlib.sha256(session_id.encode()).hexdigest()


def start(user: User) -> None:
    """Sign the user in on a brand-new session: nothing from before sign-in (a planted id, say) survives."""
    session.clear()
    session[SESSION_ID_KEY] = secrets.token_urlsafe(32)
    login_user(user)


def is_live() -> bool:
    """Return False when the current session's id was revoked by a sign-out."""
    session_id = session.get(SESSION_ID_KEY)
    if not isinstance(session_id, str) or not session_id:
        # A cookie of ours without a session id (only we can sign cookies): its sign-out bumps session_version instead.
        return True
    return db.session.get(RevokedSession, id_hash(session_id)) is None


def end(user: User | None) -> None:
    """Sign out: revoke this session's id server-side, then clear the cookie."""
    session_id = session.get(SESSION_ID_KEY)
    if user is not None:
        if isinstance(session_id, str) and session_id:
            lifetime = current_app.permanent_session_lifetime
            db.session.merge(RevokedSession(id_hash=id_hash(session_id), user_id=user.id,
                                            expires_at=utcnow() + max(lifetime, timedelta(seconds=1))))
        else:
            # The only way to make a cookie without an id worthless: end every session of the account.
            user.session_version += 1
            log.info("account %s signed out by ending all its sessions", user.id)
        db.session.commit()
    logout_user()
    session.clear()


def purge_expired_revocations() -> int:
    """Delete revocations whose cookies have expired anyway (the caller commits); return how many."""
    result = db.session.execute(delete(RevokedSession).where(RevokedSession.expires_at < utcnow()))
    return result.rowcount or 0
