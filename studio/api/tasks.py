"""Task endpoints: upload, list, show, fetch the result and delete."""

from __future__ import annotations

from flask import g, jsonify, request, url_for
from werkzeug.wrappers import Response

from studio.api import bp
from studio.api.auth import read_limit, upload_limit
from studio.tasks import service
from studio.tasks.service import task_to_dict

MAX_PER_PAGE = service.MAX_PER_PAGE


@bp.post("/tasks")
@upload_limit
def create_task() -> tuple[Response, int, dict[str, str]]:
    """Upload a photo (multipart field `image`, options as other fields) and queue its processing."""
    task = service.create_task(g.api_user, request.files.get("image"), request.form)
    location = url_for("api.get_task", task_id=task.id, _external=True)
    return jsonify(task_to_dict(task)), 202, {"Location": location}


@bp.get("/tasks")
@read_limit
def list_tasks() -> Response:
    """List the account's tasks, newest first, a page at a time."""
    page = max(request.args.get("page", 1, type=int), 1)
    per_page = min(max(request.args.get("per_page", 0, type=int), 0), MAX_PER_PAGE) or None
    pagination = service.list_tasks(g.api_user, page, per_page)
    return jsonify(
        items=[task_to_dict(task) for task in pagination.items],
        page=pagination.page,
        per_page=pagination.per_page,
        total=pagination.total,
        pages=pagination.pages,
    )


@bp.get("/tasks/<task_id>")
@read_limit
def get_task(task_id: str) -> Response:
    """Show one task."""
    return jsonify(task_to_dict(service.get_task(g.api_user, task_id)))


@bp.get("/tasks/<task_id>/result")
@read_limit
def task_result(task_id: str) -> Response:
    """Send the result image, or redirect to a short-lived URL for it (?download=1 for an attachment)."""
    task = service.get_task(g.api_user, task_id)
    return service.result_response(task, download=request.args.get("download") in ("1", "true"))


@bp.delete("/tasks/<task_id>")
@read_limit
def delete_task(task_id: str) -> tuple[str, int]:
    """Delete a task, its photo and its result."""
    service.delete_task(service.get_task(g.api_user, task_id))
    return "", 204
