"""What administrators may do to accounts and tasks, each action recorded in the audit log.

Accounts: find them, disable or enable one (a disabled account cannot sign in, its sessions end and its API tokens
are refused, its waiting and running tasks are cancelled), make or unmake an administrator, set its storage quota
or its plan. Tasks: find them (FAILED ones by reason), retry FAILED ones, cancel waiting or running ones (through
the same cancel as their owners', which stops a running job with RQ's stop-job command). An administrator cannot
disable or demote their own account: the dashboard must always have someone who can undo a mistake.
"""

from __future__ import annotations

import logging
import re
import uuid
from collections import Counter
from datetime import date, timedelta
from typing import Iterable

from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import func, or_, select
from werkzeug.exceptions import NotFound

from studio import plans, usage
from studio.admin import audit, export, pages
from studio.extensions import db
from studio.models import DailyUsage, Task, TaskStatus, UNFINISHED_STATUSES, User, utcnow
from studio.queue import enqueue_task
from studio.tasks import lifecycle
from studio.tasks import service as task_service

logger = logging.getLogger(__name__)

PER_PAGE = 50
# One form may act on this many tasks at once; more is a mistake, or a job for the command line.
MAX_TASKS_PER_ACTION = 500
REASON_SCAN = 2000
REASON_DAYS = 7
DISABLED_REASON = "Cancelled: the account was disabled by an administrator."
CANCELLED_REASON = "Cancelled by an administrator."
# The reference at the end of an unexpected failure's message differs per task; the reason is what comes before.
_REFERENCE = re.compile(r"\s*error-[0-9a-f]{6,}\.?$")


class AdminError(ValueError):
    """An action refused for a reason the administrator can read."""


def _escape_like(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def find_users(search: str = "", page: int = 1) -> Pagination:
    """Return a page of accounts whose email contains the search text, newest first."""
    query = select(User).order_by(User.created_at.desc(), User.id.desc())
    if search.strip():
        query = query.where(User.email.ilike(f"%{_escape_like(search.strip().lower())}%", escape="\\"))
    return pages.paginate(query, page, PER_PAGE)


def month_usage_of(users: Iterable[User]) -> dict[int, usage.Totals]:
    """Return this month's usage of each account, by id."""
    ids = [user.id for user in users]
    start = usage.month_start(usage.today())
    found: dict[int, list[DailyUsage]] = {user_id: [] for user_id in ids}
    for row in db.session.scalars(select(DailyUsage).where(DailyUsage.user_id.in_(ids), DailyUsage.day >= start)):
        found[row.user_id].append(row)
    return {user_id: usage.add_up(rows) for user_id, rows in found.items()}


def unfinished_counts(users: Iterable[User]) -> dict[int, int]:
    """Return how many tasks each account has waiting or processing, by id."""
    ids = [user.id for user in users]
    query = (select(Task.user_id, func.count()).where(Task.user_id.in_(ids),
                                                      Task.status.in_([s.value for s in UNFINISHED_STATUSES]))
             .group_by(Task.user_id))
    return {user_id: count for user_id, count in db.session.execute(query)}


def get_user(user_id: int) -> User:
    """Return the account, or NotFound."""
    user = db.session.get(User, user_id)
    if user is None:
        raise NotFound("No such account.")
    return user


def set_disabled(actor: User, user: User, disabled: bool) -> int:
    """Disable or enable an account; disabling cancels its unfinished tasks. Return how many were cancelled."""
    if disabled and user.id == actor.id:
        raise AdminError("You cannot disable your own account.")
    if (user.disabled_at is not None) == disabled:
        return 0
    if disabled:
        user.disabled_at = utcnow()
        # Its sessions end for good: enabling the account later does not bring them back.
        user.session_version += 1
    else:
        user.disabled_at = None
    db.session.commit()
    cancelled = _cancel_all(user) if disabled else 0
    detail = f"{user.email}; {cancelled} unfinished task{'s' if cancelled != 1 else ''} cancelled" if disabled \
        else user.email
    audit.record(actor, "user.disable" if disabled else "user.enable", detail, user_id=user.id)
    db.session.commit()
    return cancelled


def _cancel_all(user: User) -> int:
    tasks = db.session.scalars(select(Task).where(
        Task.user_id == user.id, Task.status.in_([status.value for status in UNFINISHED_STATUSES]))).all()
    return sum(task_service.cancel_task(task, DISABLED_REASON) for task in tasks)


def set_admin(actor: User, user: User, admin: bool) -> None:
    """Make an account an administrator, or no longer one."""
    if not admin and user.id == actor.id:
        raise AdminError("You cannot remove your own administrator role; ask another administrator.")
    if user.is_admin == admin:
        return
    user.is_admin = admin
    audit.record(actor, "user.admin_on" if admin else "user.admin_off", user.email, user_id=user.id)
    db.session.commit()


def set_quota(actor: User, user: User, quota_bytes: int | None) -> None:
    """Give an account its own storage quota in bytes (0: none), or None for the site's."""
    if quota_bytes is not None and quota_bytes < 0:
        raise AdminError("A quota cannot be negative.")
    if user.quota_bytes == quota_bytes:
        return
    user.quota_bytes = quota_bytes
    described = "the site's default" if quota_bytes is None else "no limit" if quota_bytes == 0 \
        else f"{quota_bytes:,} bytes"
    audit.record(actor, "user.quota", f"{user.email}: {described}", user_id=user.id)
    db.session.commit()


def set_plan(actor: User, user: User, plan: str | None) -> None:
    """Put an account on a configured plan, or None for the default plan."""
    if plan is not None and plan not in plans.configured_plans():
        raise AdminError(f"There is no plan named {plan!r}.")
    if user.plan == plan:
        return
    user.plan = plan
    audit.record(actor, "user.plan", f"{user.email}: {plan or 'the default plan'}", user_id=user.id)
    db.session.commit()
    plans.forget(user.id)


def _task_ids(values: Iterable[str]) -> list[str]:
    """Return the valid task ids among the values, canonical, each once, at most MAX_TASKS_PER_ACTION."""
    ids: list[str] = []
    for value in values:
        try:
            canonical = str(uuid.UUID(str(value)))
        except ValueError:
            continue
        if canonical not in ids:
            ids.append(canonical)
    return ids[:MAX_TASKS_PER_ACTION]


def retry_tasks(actor: User, values: Iterable[str]) -> tuple[int, int]:
    """Run FAILED tasks again from the start; return how many were retried and how many were not FAILED."""
    retried = skipped = 0
    for task_id in _task_ids(values):
        if not lifecycle.retried(task_id):
            skipped += 1
            continue
        task = db.session.get(Task, task_id)
        db.session.refresh(task)
        enqueue_task(task)
        audit.record(actor, "task.retry", task.original_filename or task.operation, user_id=task.user_id,
                     task_id=task.id)
        db.session.commit()
        retried += 1
    return retried, skipped


def cancel_tasks(actor: User, values: Iterable[str]) -> tuple[int, int]:
    """Cancel waiting or running tasks; return how many were cancelled and how many had finished or are gone."""
    cancelled = skipped = 0
    for task_id in _task_ids(values):
        task = db.session.get(Task, task_id)
        if task is None or not task_service.cancel_task(task, CANCELLED_REASON):
            skipped += 1
            continue
        audit.record(actor, "task.cancel", task.original_filename or task.operation, user_id=task.user_id,
                     task_id=task.id)
        db.session.commit()
        cancelled += 1
    return cancelled, skipped


def failure_reason(error: str | None) -> str:
    """Return a failure's reason without the per-task reference, so that equal failures group together."""
    return _REFERENCE.sub("", error or "").strip() or "No reason recorded"


def task_query(status: str = "", reason: str = "", operation: str = "", email: str = ""):
    """Return the query of tasks matching the filters, newest first (reason: part of the error, any case)."""
    query = select(Task).join(User, Task.user_id == User.id).order_by(Task.created_at.desc(), Task.id.desc())
    if status == "UNFINISHED":
        query = query.where(Task.status.in_([s.value for s in UNFINISHED_STATUSES]))
    elif status in TaskStatus.__members__:
        query = query.where(Task.status == status)
    if reason.strip():
        query = query.where(Task.error.ilike(f"%{_escape_like(reason.strip())}%", escape="\\"))
    if operation.strip():
        query = query.where(Task.operation == operation.strip())
    if email.strip():
        query = query.where(User.email.ilike(f"%{_escape_like(email.strip().lower())}%", escape="\\"))
    return query


def find_tasks(page: int = 1, **filters: str) -> Pagination:
    """Return a page of the tasks matching the filters (task_query's), newest first."""
    return pages.paginate(task_query(**filters), page, PER_PAGE)


def matching_task_ids(**filters: str) -> list[str]:
    """Return the ids of the tasks matching the filters, newest first, at most MAX_TASKS_PER_ACTION."""
    query = task_query(**filters).with_only_columns(Task.id).limit(MAX_TASKS_PER_ACTION)
    return list(db.session.scalars(query))


def failure_reasons(days: int = REASON_DAYS) -> list[tuple[str, int]]:
    """Return the reasons of recent failures with how many tasks failed so, most frequent first."""
    since = utcnow() - timedelta(days=days)
    errors = db.session.scalars(select(Task.error).where(Task.status == TaskStatus.FAILED.value,
                                                         or_(Task.finished_at >= since, Task.finished_at.is_(None)))
                                .order_by(Task.created_at.desc()).limit(REASON_SCAN))
    return Counter(failure_reason(error) for error in errors).most_common()


def user_tasks(user: User, limit: int = 20) -> list[Task]:
    """Return the account's newest tasks."""
    return list(db.session.scalars(select(Task).where(Task.user_id == user.id)
                                   .order_by(Task.created_at.desc(), Task.id.desc()).limit(limit)))


def export_usage(actor: User | None, start: date) -> str:
    """Return every account's usage in the month as CSV, recording the export in the audit log."""
    body = export.month_csv(start)
    lines = body.count("\n") - 1
    audit.record(actor, "usage.export", f"{start:%Y-%m}: {lines} line{'s' if lines != 1 else ''}")
    db.session.commit()
    return body
