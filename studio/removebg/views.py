"""POST /v1.0/removebg and GET /v1.0/account: remove.bg's calls, answered by the studio's own upload service.

A call is an ordinary remove_background task (history, usage, /admin): the fields are translated
(studio/removebg/fields.py), checked and stored by studio/tasks/service.py as any upload, queued, and the request
waits for the task with the same waiting places as the API's ?wait (studio/tasks/waiting.py).
"""

from __future__ import annotations

import json
from typing import Any

from flask import current_app, g, jsonify, request
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import Forbidden
from werkzeug.wrappers import Response

from studio import plans
from studio.api.auth import current_api_user
from studio.api.usage import plan_usage
from studio.json_bodies import check_depth
from studio.models import Task, TaskStatus
from studio.removebg import answers, bp, fields
from studio.security import read_limit, upload_limit
from studio.tasks import service, waiting
from studio.tasks.uploads import UploadRejected

# Seconds a client whose call found no waiting place, or outlasted the wait, is told to wait before calling again.
RETRY_AFTER_SECONDS = 10
FORM_TYPES = ("multipart/form-data", "application/x-www-form-urlencoded")


@bp.before_request
def require_key() -> None:
    """Refuse a call without a valid API token in X-Api-Key (403, as remove.bg)."""
    if current_api_user() is None:
        raise Forbidden("Send a valid API token in the X-Api-Key header (the account page or POST /api/v1/tokens "
                        "makes one).")


@bp.post("/removebg")
@upload_limit
def remove_background() -> Response:
    """Remove the background of a photo and answer with the result, as remove.bg's POST /v1.0/removebg."""
    call = fields.translate(*_submitted())
    source = service.photo_source(call.fields, call.photo)
    upload = service.parse_upload(call.fields, call.files)
    seconds = current_app.config["STUDIO_REMOVEBG_WAIT_SECONDS"]
    with waiting.waiting_place() as held:
        if not held:
            # Before the task is made: a call refused here costs nothing and leaves nothing behind.
            raise UploadRejected(503, "server_busy", "Too many calls are waiting for their results on this "
                                                     "server; try again in a few seconds.")
        task = service.create_task(g.api_user, source, upload)
        waiting.wait_in_place(task.id, seconds)
    return _finished(service.get_task(g.api_user, task.id), call)


def _finished(task: Task, call: fields.Call) -> Response:
    """Answer with the result, or say why there is none."""
    status = TaskStatus(task.status)
    if status is TaskStatus.COMPLETED:
        return answers.answer(task, call)
    if status is TaskStatus.FAILED:
        raise UploadRejected(400, "failed", task.error or "The photo could not be processed.")
    if status is TaskStatus.CANCELLED:
        raise UploadRejected(400, "cancelled", task.error or "The task was cancelled.")
    raise UploadRejected(503, "still_processing", f"The photo is still being processed (task {task.id}); call "
                                                  "again in a few seconds: the same photo and options reuse its "
                                                  "result.")


def _submitted() -> tuple[dict[str, Any], dict[str, FileStorage]]:
    """Return the call's fields and files from a multipart, form or JSON body."""
    if request.mimetype == "application/json":
        return _json_fields(), {}
    if request.mimetype not in FORM_TYPES:
        raise UploadRejected(400, "invalid_body", "Send multipart/form-data, a form or a JSON object with the photo "
                                                  "in image_file, image_file_b64 or image_url.")
    # A photo in image_file_b64 is a long text field: allow it up to the upload limit (Flask's default: 500 KB).
    request.max_form_memory_size = current_app.config.get("MAX_CONTENT_LENGTH")
    values = {name: _one(name, request.form.getlist(name)) for name in request.form}
    uploads = {name: [item for item in request.files.getlist(name) if item.filename] for name in request.files}
    return values, {name: _one(name, items) for name, items in uploads.items() if items}


def _json_fields() -> dict[str, Any]:
    """Return a JSON body's object, parsed within the upload limit (image_file_b64 is past the API's 64 KiB)."""
    text = request.get_data(as_text=True)
    try:
        check_depth(text)
        body = json.loads(text)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise UploadRejected(400, "invalid_body", "Send a JSON object with the photo in image_file_b64 or "
                                                  "image_url and remove.bg's options.")
    return body


def _one(name: str, values: list[Any]) -> Any:
    if len(values) != 1:
        raise UploadRejected(400, "invalid_option", f"{name[:40]}: give it once, not {len(values)} times.")
    return values[0]


@bp.get("/account")
@read_limit
def account() -> Response:
    """Show the account's allowance this month in remove.bg's shape (one credit: one task), with the studio's plan."""
    user = g.api_user
    plan = plan_usage(user.id, plans.plan_for(user))
    left = None if plan["tasks_per_month"] is None else max(plan["tasks_per_month"] - plan["tasks_this_month"], 0)
    return jsonify(data={"attributes": {
        "credits": {"total": left, "subscription": left, "payg": 0, "enterprise": 0},
        "api": {"free_calls": left, "sizes": "all"},
        "plan": plan,
    }})
