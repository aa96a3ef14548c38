"""The administrators' audit log: one row per action, written with the action, shown on the dashboard."""

from __future__ import annotations

import logging

from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import select

from studio.admin import pages
from studio.extensions import db
from studio.models import AuditEntry, User

logger = logging.getLogger(__name__)

MAX_DETAIL_LENGTH = 500
PER_PAGE = 50
# The actions, by the name the log keeps, with what the dashboard calls them.
ACTIONS = {
    "user.disable": "Disabled an account",
    "user.enable": "Enabled an account",
    "user.admin_on": "Made an administrator",
    "user.admin_off": "Removed an administrator",
    "user.quota": "Changed a storage quota",
    "user.plan": "Changed a plan",
    "user.reset_link": "Made a password reset link",
    "user.password_reset": "Reset a password with a link",
    "task.retry": "Retried a task",
    "task.cancel": "Cancelled a task",
    "usage.export": "Exported usage",
}


def record(actor: User | None, action: str, detail: str = "", *, user_id: int | None = None,
           task_id: str | None = None) -> AuditEntry:
    """Add an entry for an action (the caller commits it with the action itself); actor None: the command line."""
    if action not in ACTIONS:
        raise ValueError(f"unknown audit action {action!r}")
    entry = AuditEntry(actor_id=actor.id if actor else None, actor_email=actor.email if actor else "command line",
                       action=action, target_user_id=user_id, target_task_id=task_id,
                       detail=detail[:MAX_DETAIL_LENGTH])
    db.session.add(entry)
    logger.info("audit: %s by %s (account %s, task %s): %s", action, entry.actor_email, user_id, task_id, detail)
    return entry


def recent(page: int = 1, per_page: int = PER_PAGE, user_id: int | None = None) -> Pagination:
    """Return a page of entries, newest first, of every account or about one."""
    query = select(AuditEntry).order_by(AuditEntry.created_at.desc(), AuditEntry.id.desc())
    if user_id is not None:
        query = query.where(AuditEntry.target_user_id == user_id)
    return pages.paginate(query, page, min(per_page, PER_PAGE))
