"""Task pages: upload, history, one task with live status, downloads, re-run and delete."""

from __future__ import annotations

from typing import Any, Mapping

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from ml.options import ProcessingOptions
from studio.errors import error_response
from studio.security import poll_limit, read_limit, upload_limit
from studio.tasks import service
from studio.tasks.service import UploadRejected

bp = Blueprint("tasks", __name__)

RECENT_ON_UPLOAD_PAGE = 5


def _available_models() -> tuple[str, ...]:
    return service.installed_models()


def _raw_options(form: Mapping[str, str]) -> dict[str, Any]:
    """Return the processing fields the form sent; the service validates them (bg_image comes as a file)."""
    return {name: form[name] for name in ProcessingOptions.FIELDS if name in form and name != "bg_image"}


def _wants_fragment() -> bool:
    return request.headers.get("HX-Request") == "true"


def _render_upload_page(errors: list[str] | None = None, status: int = 200) -> tuple[str, int]:
    recent = service.list_tasks(current_user, 1, per_page=RECENT_ON_UPLOAD_PAGE)
    return render_template("tasks/upload.html", models=_available_models(), recent=recent.items,
                           options=request.form if errors else {}, errors=errors or []), status


@bp.get("/")
@read_limit
def index() -> tuple[str, int] | str:
    """Show the upload page to a signed-in user, the landing page to anyone else."""
    if not current_user.is_authenticated:
        return render_template("landing.html")
    return _render_upload_page()


@bp.get("/tasks")
@login_required
@read_limit
def list_tasks() -> str:
    """Show the account's tasks, newest first, a page at a time."""
    page = request.args.get("page", 1, type=int)
    pagination = service.list_tasks(current_user, max(page, 1))
    return render_template("tasks/list.html", pagination=pagination)


@bp.post("/tasks")
@login_required
@upload_limit
def create() -> Response | tuple[str, int]:
    """Create one task per uploaded photo."""
    uploads = [upload for upload in request.files.getlist("photo") if upload and upload.filename]
    if not uploads:
        return _upload_failed(["Choose at least one photo to upload."], 400)
    raw_options = _raw_options(request.form)
    background_file = request.files.get("bg_image")
    try:
        # Checked once for all the photos: each task stores its own copy.
        background = service.read_background(background_file) if background_file and background_file.filename \
            else None
    except UploadRejected as error:
        return _upload_failed([error.message], error.status)
    tasks, errors, status = [], [], 400
    for upload in uploads:
        try:
            tasks.append(service.create_task(current_user, upload, raw_options, background=background))
        except UploadRejected as error:
            errors.append(f"{service.display_filename(upload.filename)}: {error.message}")
            status = error.status
    if not tasks:
        return _upload_failed(errors, status)
    if _wants_fragment():
        return render_template("tasks/_task_rows.html", tasks=tasks, errors=errors), 201
    for message in errors:
        flash(message, "error")
    flash(f"Uploaded {len(tasks)} photo{'s' if len(tasks) != 1 else ''}; processing has started.", "success")
    if len(tasks) == 1 and not errors:
        return redirect(url_for("tasks.detail", task_id=tasks[0].id))
    return redirect(url_for("tasks.list_tasks"))


def _upload_failed(errors: list[str], status: int) -> Response | tuple[str, int]:
    if _wants_fragment():
        return error_response(status, "upload_rejected", " ".join(errors), title="Upload refused")
    return _render_upload_page(errors, status)


@bp.get("/tasks/<task_id>")
@login_required
@read_limit
def detail(task_id: str) -> str:
    """Show one task: before and after, progress, download, re-run and delete."""
    task = service.get_task(current_user, task_id)
    return render_template("tasks/detail.html", task=task, models=_available_models(), options=task.options)


@bp.get("/tasks/<task_id>/status")
@login_required
@poll_limit
def status(task_id: str) -> str:
    """Return the task's live region alone, for polling: a row of the list or the status of the task page."""
    task = service.get_task(current_user, task_id)
    if request.args.get("view") == "row":
        return render_template("tasks/_task_row.html", task=task)
    return render_template("tasks/_task_status.html", task=task)


@bp.get("/tasks/<task_id>/result")
@login_required
@read_limit
def result(task_id: str) -> Response:
    """Send the processed image (?download=1 to save it as a file)."""
    task = service.get_task(current_user, task_id)
    return service.result_response(task, download=request.args.get("download") == "1")


@bp.get("/tasks/<task_id>/input")
@login_required
@read_limit
def input_image(task_id: str) -> Response:
    """Send the uploaded photo."""
    return service.input_response(service.get_task(current_user, task_id))


@bp.post("/tasks/<task_id>/rerun")
@login_required
@upload_limit
def rerun(task_id: str) -> Response | tuple[str, int]:
    """Process the same photo again with other options, as a new task."""
    task = service.get_task(current_user, task_id)
    try:
        new_task = service.rerun_task(task, _raw_options(request.form),
                                      keep_background=request.form.get("keep_background") == "true")
    except UploadRejected as error:
        return render_template("tasks/detail.html", task=task, models=_available_models(),
                               options=request.form, rerun_error=error.message), error.status
    flash("Processing again with the new options.", "success")
    return redirect(url_for("tasks.detail", task_id=new_task.id))


@bp.post("/tasks/<task_id>/delete")
@login_required
@read_limit
def delete(task_id: str) -> Response:
    """Delete a task and its files."""
    task = service.get_task(current_user, task_id)
    name = task.original_filename or "the photo"
    service.delete_task(task)
    flash(f"Deleted {name} and its result.", "success")
    return redirect(url_for("tasks.list_tasks"))
