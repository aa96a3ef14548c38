"""The shapes of the API's JSON bodies, as pydantic models: the OpenAPI document's components are generated from
them (studio/api/document.py), and the tests check real answers against that document."""

from __future__ import annotations

from datetime import date as date_type
from datetime import datetime
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from studio.models import TaskStatus, WebhookStatus

TaskStatusName = Literal[tuple(status.value for status in TaskStatus)]  # type: ignore[valid-type]
WebhookStatusName = Literal[tuple(status.value for status in WebhookStatus)]  # type: ignore[valid-type]


class Body(BaseModel):
    """A closed JSON object: the document says exactly which fields there are."""

    model_config = ConfigDict(extra="forbid")


class PlanLimit(Body):
    plan: str
    limit: Literal["tasks_per_month", "megapixels_per_month"]
    allowed: float = Field(ge=0, description="what the plan allows in a month")
    used: float = Field(ge=0, description="used this month, tasks still waiting or processing included")
    resets_at: datetime = Field(description="when the month's count starts again: the 1st, 00:00 UTC")


class ErrorDetail(Body):
    status: int
    code: str = Field(description="stable, for programs: invalid_option, quota_exceeded, ...")
    message: str = Field(description="for people: what went wrong and what to do")
    plan_limit: PlanLimit | None = Field(None, description="with plan_limit_reached only: which monthly limit")


class Error(Body):
    error: ErrorDetail


class TokenRequest(BaseModel):
    email: str
    password: str
    name: str = Field("api", max_length=100)


class Token(Body):
    token: str = Field(description="shown once; send it as Authorization: Bearer <token>")
    name: str
    prefix: str


class Webhook(Body):
    url: str
    status: WebhookStatusName
    attempts: int = Field(ge=0)
    last_response: str | None = Field(description="HTTP 200, or why there was none")
    delivered_at: datetime | None


class OutputLink(Body):
    url: str = Field(description="the output itself: an image, or JSON data")
    media_type: str
    size: int = Field(ge=0)


class Task(Body):
    id: UUID
    operation: str = Field(description="what the task does; GET /operations lists them")
    status: TaskStatusName
    progress: int = Field(ge=0, le=100)
    stage: str | None = Field(description="what the job is doing now, for people (tile 7 of 24)")
    error: str | None = Field(description="why the task FAILED, or CANCELLED")
    model: str
    options: dict[str, Any] = Field(description="the operation's options as validated (its JSON Schema: "
                                                "GET /operations)")
    original_filename: str
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    attempts: int = Field(ge=0)
    source_urls: dict[str, str] | None = Field(description="where the photo (image) and attachments given by URL "
                                                           "were fetched from; null for uploaded files")
    reused_from: UUID | None = Field(description="the earlier task whose result this duplicate reuses (the same "
                                                 "photo, operation and options): the models did not run again")
    result_url: str | None = Field(description="the main output, once COMPLETED")
    preview_url: str | None = Field(description="the preview image, for operations that make one")
    outputs: dict[str, OutputLink] = Field(description="every output by name, once COMPLETED")
    thumbnail_url: str | None
    webhook: Webhook | None
    estimated_seconds_left: int | None = Field(
        ge=1, description="about how many seconds the task still needs, from its operation's measured seconds per "
                          "megapixel on this server; for a waiting task its whole run, the wait not counted; null "
                          "once finished")
    queue_position: int | None = Field(ge=1, description="a waiting task's place in line (1: next); null otherwise")


class TaskList(Body):
    items: list[Task]
    page: int = Field(ge=1)
    per_page: int = Field(ge=1)
    total: int = Field(ge=0)
    pages: int = Field(ge=0)


class BatchTask(Body):
    id: UUID
    original_filename: str
    status: TaskStatusName
    progress: int = Field(ge=0, le=100)
    stage: str | None
    error: str | None = Field(description="why the task FAILED, or CANCELLED")
    url: str = Field(description="the task itself: GET it for its outputs")


class BatchCounts(Body):
    total: int = Field(ge=0)
    PENDING: int = Field(ge=0)
    PROCESSING: int = Field(ge=0)
    COMPLETED: int = Field(ge=0)
    FAILED: int = Field(ge=0)
    CANCELLED: int = Field(ge=0)


class SkippedFile(Body):
    name: str = Field(description="the file's name, or its path inside the archive")
    reason: str = Field(description="why it is not processed: not a photo, a nested archive, encrypted, ...")


class Batch(Body):
    id: UUID
    operation: str
    options: dict[str, Any] = Field(description="the operation's options as validated, the same for every photo")
    archive_name: str = Field(description="the uploaded ZIP's name, or empty when the photos came as files")
    created_at: datetime
    counts: BatchCounts
    progress: int = Field(ge=0, le=100, description="overall, finished tasks counted whole")
    finished: bool = Field(description="no task will change any more by itself")
    archive_url: str | None = Field(description="one ZIP of every result and manifest.json, once finished")
    tasks: list[BatchTask] = Field(description="each photo's task, in upload order")
    skipped: list[SkippedFile] = Field(description="what the upload held that is not processed, and why")


class WebhookSecret(Body):
    secret: str | None = Field(description="whsec_...: verifies the webhook-signature header")


class ModelInfo(Body):
    name: str
    title: str
    available: bool
    reason: str = Field(description="why it is not available (weights missing, say), or where it is")
    default: bool


class OutputInfo(Body):
    name: str
    kind: Literal["image", "json"]
    description: str


class AttachmentInfo(Body):
    name: str = Field(description="the multipart file field to send it in")
    title: str
    description: str
    required: bool


class OperationInfo(Body):
    name: str
    title: str
    description: str
    models: list[ModelInfo]
    options: dict[str, Any] = Field(description="the options as JSON Schema (draft 2020-12)")
    outputs: list[OutputInfo]
    attachments: list[AttachmentInfo]


class OperationList(Body):
    items: list[OperationInfo]


class UsageAmounts(Body):
    tasks: int = Field(description="tasks that finished (completed, failed or cancelled)")
    completed_tasks: int = Field(ge=0)
    megapixels_in: float = Field(description="of the photos processed")
    megapixels_out: float = Field(description="of the main outputs made")
    processing_seconds: float = Field(description="time the workers ran: each task's last attempt")


class UsageDay(UsageAmounts):
    date: date_type = Field(description="the day (UTC) the tasks finished")
    operation: str


class PlanUsage(Body):
    name: str
    tasks_per_month: int | None = Field(description="null: no monthly limit")
    megapixels_per_month: float | None = Field(description="null: no monthly limit")
    max_unfinished_tasks: int = Field(ge=0, description="tasks waiting or processing at once (0: no cap)")
    concurrency: int = Field(ge=1, description="tasks processed at once")
    tasks_this_month: int = Field(description="finished this month, as the limit counts them")
    megapixels_this_month: float = Field(description="the work of the tasks finished this month, as the limit "
                                                     "counts it")
    unfinished_tasks: int = Field(ge=0, description="waiting or processing now: the limits count them too")
    resets_at: datetime = Field(description="the 1st of next month, 00:00 UTC")


class Usage(Body):
    from_: date_type = Field(alias="from", description="first day included (UTC)")
    to: date_type = Field(description="last day included (UTC)")
    items: list[UsageDay] = Field(description="per day and operation, days without tasks left out")
    totals: UsageAmounts
    plan: PlanUsage


MODELS: tuple[type[BaseModel], ...] = (Error, TokenRequest, Token, Task, TaskList, WebhookSecret, OperationInfo,
                                       OperationList, Usage, Batch)
