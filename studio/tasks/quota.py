"""Storage quota and the cap on unfinished tasks, per account.

Each account's stored bytes are one counter on its row. An upload reserves its bytes with one guarded UPDATE
(`storage_bytes + n <= quota`) before anything is stored, and gives them back if storing fails: two parallel
uploads cannot both take the last space, and no lock is held while the photo travels to S3. Results are added when
a task completes (a result may take an account a little over, as it cannot be refused then); deleting a task gives
its bytes back.
"""

from __future__ import annotations

from flask import current_app
from sqlalchemy import func, select, update

from studio import plans
from studio.extensions import db
from studio.models import Task, TaskStatus, User
from studio.tasks.uploads import UploadRejected


def quota_bytes(user: User | None = None) -> int:
    """Return the storage quota in bytes (0: none): the account's own when an administrator set one."""
    if user is not None and user.quota_bytes is not None:
        return user.quota_bytes
    return current_app.config.get("STUDIO_USER_QUOTA_BYTES") or 0


def account_quota_bytes(user_id: int) -> int:
    """Return the storage quota of the account with this id (0: none)."""
    own = db.session.scalar(select(User.quota_bytes).where(User.id == user_id))
    return own if own is not None else quota_bytes()


def reserve(user_id: int, size: int) -> None:
    """Reserve bytes for an upload or a re-run; refuse (413) when they would take the account over its quota."""
    quota = account_quota_bytes(user_id)
    statement = update(User).where(User.id == user_id).values(storage_bytes=User.storage_bytes + size)
    if quota > 0:
        statement = statement.where(User.storage_bytes + size <= quota)
    reserved = db.session.execute(statement.execution_options(synchronize_session=False)).rowcount == 1
    db.session.commit()
    if reserved:
        return
    used = db.session.scalar(select(User.storage_bytes).where(User.id == user_id)) or 0
    raise UploadRejected(
        413, "quota_exceeded",
        f"Your storage is full: this photo needs {size:,} bytes and {max(quota - used, 0):,} of your "
        f"{quota:,} bytes are left. Delete some tasks and try again.",
    )


def give_back(user_id: int, size: int) -> None:
    """Return bytes to the account (a failed upload, a deleted task); the caller commits."""
    if size:
        db.session.execute(update(User).where(User.id == user_id)
                           .values(storage_bytes=func.greatest(User.storage_bytes - size, 0)
                                   if db.engine.dialect.name == "postgresql"
                                   else func.max(User.storage_bytes - size, 0))
                           .execution_options(synchronize_session=False))


def add_outputs(user_id: int, size: int) -> None:
    """Count a completed task's outputs (the caller commits)."""
    if size:
        db.session.execute(update(User).where(User.id == user_id)
                           .values(storage_bytes=User.storage_bytes + size)
                           .execution_options(synchronize_session=False))


def storage_used(user_id: int) -> int:
    """Return the bytes an account keeps in storage."""
    return int(db.session.scalar(select(User.storage_bytes).where(User.id == user_id)) or 0)


def check_unfinished(user_id: int, adding: int = 1) -> None:
    """Refuse (429) new tasks (adding: how many, a batch's photos) that would take the account past
    STUDIO_MAX_UNFINISHED_TASKS (or its plan's cap) waiting or processing (0: no cap)."""
    cap = plans.max_unfinished_tasks(user_id)
    if cap <= 0:
        return
    unfinished = db.session.scalar(select(func.count()).select_from(Task).where(
        Task.user_id == user_id, Task.status.in_([TaskStatus.PENDING.value, TaskStatus.PROCESSING.value])))
    if unfinished + adding > cap:
        these = "" if adding == 1 else f" and these {adding:,} would take you past"
        raise UploadRejected(429, "too_many_unfinished_tasks",
                             f"You have {unfinished:,} photos waiting or processing{these}, the most an account "
                             f"may have ({cap:,}). Wait for some to finish, then upload again.")
