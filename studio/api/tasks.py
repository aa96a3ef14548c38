"""Task endpoints: upload, list, show, fetch the result and delete."""

from __future__ import annotations

from flask import g, jsonify, request, url_for
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from studio.api import bp
from studio.api.auth import read_limit, upload_limit
from studio.tasks import service
from studio.tasks.service import UploadRejected, task_to_dict
from studio.tasks.uploads import CleanPhoto

MAX_PER_PAGE = service.MAX_PER_PAGE


@bp.post("/tasks")
@upload_limit
def create_task() -> tuple[Response, int, dict[str, str]]:
    """Upload a photo (multipart field `image`, options as other fields) and queue its processing."""
    image = _one_image()
    task = service.create_task(g.api_user, image, request.form, background=_background())
    location = url_for("api.get_task", task_id=task.id, _external=True)
    return jsonify(task_to_dict(task)), 202, {"Location": location}


def _one_image() -> FileStorage:
    """Return the uploaded `image` file; refuse a body that is not a multipart form with at most one photo."""
    if request.mimetype != "multipart/form-data":
        raise UploadRejected(400, "missing_file", "Send a multipart/form-data body with the photo in a file "
                             "field named image and the options as text fields (not JSON).")
    if "image" in request.form:
        raise UploadRejected(400, "missing_file", "image must be a file upload, not a text field.")
    images = request.files.getlist("image")
    if len(images) > 1:
        raise UploadRejected(400, "too_many_files", "Send one photo per request (one image field).")
    if not images or not images[0].filename:
        raise UploadRejected(400, "missing_file", "Attach the photo as a file field named image "
                             "(a JPEG, PNG or WebP file).")
    return images[0]


def _background() -> CleanPhoto | None:
    """Return the cleaned `bg_image` file when one is attached; refuse several (a text field: the service)."""
    files = [upload for upload in request.files.getlist("bg_image") if upload.filename]
    if len(files) > 1:
        raise UploadRejected(400, "invalid_option", "bg_image: send one background image.")
    return service.read_background(files[0]) if files else None


@bp.get("/tasks")
@read_limit
def list_tasks() -> Response:
    """List the account's tasks, newest first, a page at a time."""
    page = _whole_number("page", maximum=service.MAX_PAGE) or 1
    per_page = _whole_number("per_page", maximum=MAX_PER_PAGE)
    pagination = service.list_tasks(g.api_user, page, per_page)
    return jsonify(
        items=[task_to_dict(task) for task in pagination.items],
        page=pagination.page,
        per_page=pagination.per_page,
        total=pagination.total,
        pages=pagination.pages,
    )


def _whole_number(name: str, maximum: int) -> int | None:
    """Return a query parameter from 1 to maximum, None when absent; refuse anything else (400)."""
    value = request.args.get(name)
    if value is None:
        return None
    if not (value.isascii() and value.isdigit() and len(value) <= 12 and 1 <= int(value) <= maximum):
        raise BadRequest(f"{name} must be a whole number from 1 to {maximum:,}.")
    return int(value)


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
