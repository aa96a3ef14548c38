"""Database models: users, API tokens and processing tasks."""

from __future__ import annotations

import enum
from datetime import date, datetime, timezone
from typing import Any

import uuid6
from flask_login import UserMixin
from sqlalchemy import JSON, BigInteger, Boolean, Date, DateTime, Float, ForeignKey, Integer, String, Text, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from studio.extensions import db


def utcnow() -> datetime:
    """Return the current time, timezone-aware, in UTC."""
    return datetime.now(timezone.utc)


def new_task_id() -> str:
    """Return a new task id: a UUID version 7, which begins with the time it was made (RFC 9562).

    Ids made later sort later, so among jobs that come in within the same second RQ still starts an account's
    waiting photos in the order they were uploaded: its concurrency limit holds them in a Redis sorted set scored
    by the whole second, and ties are taken in the order of their ids (studio/queue.py, account_share).
    """
    return str(uuid6.uuid7())


def as_utc(moment: datetime) -> datetime:
    """Return a stored time as an aware UTC time: SQLite drops the zone, and every time we store is UTC."""
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


class TaskStatus(str, enum.Enum):
    """Where a task is in its life: PENDING -> PROCESSING -> COMPLETED, FAILED or CANCELLED.

    The transitions are studio/tasks/lifecycle.py's, and only its.
    """

    PENDING = "PENDING"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"

    @property
    def finished(self) -> bool:
        """Return True when the task will not change any more by itself."""
        return self in FINISHED_STATUSES


FINISHED_STATUSES = frozenset({TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED})
UNFINISHED_STATUSES = frozenset({TaskStatus.PENDING, TaskStatus.PROCESSING})


class User(UserMixin, db.Model):
    """An account."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(default=False)
    # Bumped on password change and logout-everywhere: sessions carry it, so older ones stop working.
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    # Bytes the account keeps in storage (photos, attachments, outputs): reserved by one guarded UPDATE before an
    # upload is stored, given back when it fails or the task goes (studio/tasks/quota.py).
    storage_bytes: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Signs this account's webhook deliveries (Standard Webhooks "whsec_..."); made on first use, rotatable.
    webhook_secret: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    # Set by an administrator: the account cannot sign in, its sessions and API tokens are refused meanwhile.
    disabled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # The account's own storage quota in bytes (0: none); None: STUDIO_USER_QUOTA_BYTES.
    quota_bytes: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    # A plan named in STUDIO_PLANS (studio/plans.py); None: STUDIO_DEFAULT_PLAN, whatever it is at the time.
    plan: Mapped[str | None] = mapped_column(String(40), nullable=True)

    tokens: Mapped[list["ApiToken"]] = relationship(back_populates="user", cascade="all, delete-orphan")

    def get_id(self) -> str:
        """Return the session identity: the id plus the session version."""
        return f"{self.id}:{self.session_version}"


class RevokedSession(db.Model):
    """A signed-out session id (its SHA-256), refused until any cookie carrying it would have expired anyway."""

    __tablename__ = "revoked_sessions"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)


class PasswordResetToken(db.Model):
    """An account's one live password-reset link, kept as the SHA-256 of its token; deleted when used or replaced."""

    __tablename__ = "password_reset_tokens"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Unique: issuing a link replaces the account's previous one.
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ApiToken(db.Model):
    """A bearer token for the JSON API, stored as a SHA-256 digest only."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100), default="")
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    user: Mapped[User] = relationship(back_populates="tokens")


class WebhookStatus(str, enum.Enum):
    """Where a task's webhook is: PENDING until delivered (or given up), then DELIVERED or FAILED."""

    PENDING = "PENDING"
    DELIVERED = "DELIVERED"
    FAILED = "FAILED"


class Batch(db.Model):
    """Many photos uploaded in one request with one operation and the same options: each photo is its own task."""

    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_task_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    operation: Mapped[str] = mapped_column(String(64))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # The uploaded archive's name, or "" when the photos came as separate files.
    archive_name: Mapped[str] = mapped_column(String(255), default="")
    # What the upload held that is not a photo the studio takes, refused by name: [{"name", "reason"}].
    skipped: Mapped[list[dict[str, str]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class Task(db.Model):
    """One photo to process with one operation; the source of truth for its state. Its id is also the RQ job id."""

    __tablename__ = "tasks"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_task_id)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    operation: Mapped[str] = mapped_column(String(64), default="remove_background",
                                           server_default="remove_background", index=True)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.PENDING.value, index=True)
    progress: Mapped[int] = mapped_column(Integer, default=0)
    # What the job is doing now, for people ("tile 7 of 24"); cleared when the task finishes.
    stage: Mapped[str | None] = mapped_column(String(120), nullable=True)
    model: Mapped[str] = mapped_column(String(64))
    options: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    original_filename: Mapped[str] = mapped_column(String(255), default="")
    input_key: Mapped[str] = mapped_column(String(512))
    input_content_type: Mapped[str] = mapped_column(String(64))
    input_size: Mapped[int] = mapped_column(BigInteger, default=0)
    input_width: Mapped[int] = mapped_column(Integer, default=0)
    input_height: Mapped[int] = mapped_column(Integer, default=0)
    # The pixels its operation will work on (Operation.work_pixels), fixed when the task is created: what it counts
    # against its plan's monthly megapixels, waiting and once finished (studio/usage.py).
    work_pixels: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Pictures the operation takes besides the photo, by attachment name: {"bg_image": {"key", "media_type",
    # "size"}}; stored cleaned, like the photo.
    attachments: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    attachments_size: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # Whether the stored photo and attachments are clean copies (no metadata, upright, sRGB): an upload is stored as
    # received and its job cleans it in the worker before the operation runs (studio/tasks/cleaning.py).
    inputs_clean: Mapped[bool] = mapped_column(Boolean, default=True, server_default=true())
    # What a completed run stored, by output name in the operation's order, the main one ("result") first:
    # {"result": {"key", "media_type", "size"}, "preview": {...}}; empty until the task completes.
    outputs: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Small previews for the history, by name ("input", "result"): {"key", "media_type", "size"}, or None where
    # one could not be made; empty until the worker made them (studio/tasks/thumbnails.py). A few kilobytes each,
    # so they are not counted against the storage quota.
    thumbnails: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Pixels of the main output when it is an image (usage counts megapixels out); 0 for data.
    output_pixels: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    heartbeat_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Called once the task is finished (jobs/webhooks.py); None when the uploader gave no webhook URL.
    webhook_url: Mapped[str | None] = mapped_column(String(2048), nullable=True)
    webhook_status: Mapped[str | None] = mapped_column(String(16), nullable=True, index=True)
    webhook_attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    webhook_response: Mapped[str | None] = mapped_column(String(300), nullable=True)
    webhook_delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Where the worker fetches the photo and attachments given by URL, by field ("image", "bg_image"); kept once
    # fetched, to show where they came from. None: uploaded as files.
    source_urls: Mapped[dict[str, str] | None] = mapped_column(JSON, nullable=True)
    # What makes two tasks duplicates (jobs/duplicates.py): the SHA-256 of the clean photo and attachments, the
    # operation, the model and the options; set when the task runs.
    duplicate_key: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    # The task whose run made the outputs this one reuses (they are stored under its keys); no foreign key: that
    # task may be deleted, its outputs stay while a task uses them.
    reused_from: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    # The batch the photo came in (studio/batches), None for a photo uploaded on its own. SET NULL rather than
    # CASCADE: deleting a batch deletes its tasks one by one, with their files (studio/batches/service.py).
    batch_id: Mapped[str | None] = mapped_column(ForeignKey("batches.id", ondelete="SET NULL"), nullable=True,
                                                 index=True)

    user: Mapped[User] = relationship()

    @property
    def task_status(self) -> TaskStatus:
        """Return the status as a TaskStatus."""
        return TaskStatus(self.status)

    @property
    def stored_bytes(self) -> int:
        """Return the bytes the task keeps in storage: photo, attachments and every output."""
        return self.input_size + self.attachments_size + sum(item["size"] for item in (self.outputs or {}).values())

    def stored_keys(self) -> list[str]:
        """Return the storage keys of everything the task keeps: its own files, then its outputs."""
        return self.own_keys() + self.output_keys()

    def own_keys(self) -> list[str]:
        """Return the storage keys of the task's own files: photo, attachments and thumbnails."""
        keys = [self.input_key]
        keys += [item["key"] for item in (self.attachments or {}).values()]
        keys += [item["key"] for item in (self.thumbnails or {}).values() if item]
        return [key for key in keys if key]

    def output_keys(self) -> list[str]:
        """Return the storage keys of the outputs it points at (another task's when it reused them)."""
        return [key for key in (item["key"] for item in (self.outputs or {}).values()) if key]


class DailyUsage(db.Model):
    """What one account used on one day (UTC) with one operation: counted once per task, at its final transition
    (studio/usage.py), and kept when the task itself is deleted."""

    __tablename__ = "daily_usage"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True, index=True)
    operation: Mapped[str] = mapped_column(String(64), primary_key=True)
    # Finished tasks (completed, failed or cancelled), and those of them that completed.
    tasks: Mapped[int] = mapped_column(Integer, default=0)
    completed_tasks: Mapped[int] = mapped_column(Integer, default=0)
    # Pixels, not megapixels: integers add up exactly; the API and the CSV divide by a million.
    pixels_in: Mapped[int] = mapped_column(BigInteger, default=0)
    pixels_out: Mapped[int] = mapped_column(BigInteger, default=0)
    # The work of those tasks (Task.work_pixels): what a plan's megapixels per month count.
    work_pixels: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    processing_seconds: Mapped[float] = mapped_column(Float, default=0.0)


class AuditEntry(db.Model):
    """One administrator action: who, what, on which account or task, when, and a short detail."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    # The email is copied: the entry must stay readable if an account is ever removed.
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True)
    actor_email: Mapped[str] = mapped_column(String(254))
    action: Mapped[str] = mapped_column(String(40), index=True)
    target_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), nullable=True,
                                                       index=True)
    # No foreign key: tasks are deleted by their owners and by retention, the record of what was done to one stays.
    target_task_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    detail: Mapped[str] = mapped_column(String(500), default="")

    target_user: Mapped[User | None] = relationship(foreign_keys=[target_user_id])
