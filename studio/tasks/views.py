"""Task pages: choose an operation and upload, history, one task with live status, outputs, re-run, cancel, delete."""

from __future__ import annotations

import hashlib
from typing import Any, Mapping

from flask import Blueprint, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.datastructures import FileStorage
from werkzeug.wrappers import Response

from ml.operations import DEFAULT_OPERATION, OPERATIONS, Operation
from studio import metrics
from studio.api.tasks import task_to_dict
from studio.errors import error_response
from studio.models import Task
from studio.security import poll_limit, read_limit, upload_limit
from studio.batches import service as batch_service
from studio.tasks import data_tables, display, estimates, events, files, history, service
from studio.tasks.forms import fields_for, sentence
from studio.tasks.messages import page_message
from studio.tasks.remote import IMAGE_URL_FIELD
from studio.tasks.service import UploadRejected

bp = Blueprint("tasks", __name__)

RECENT_ON_UPLOAD_PAGE = 5
# Polling starts at once a second and slows down, to this, while nothing changes.
MAX_POLL_SECONDS = 8
PHOTO_FIELD = "photo"
# The task whose picture result is the photo of a new task ("Use this result").
SOURCE_FIELD = "source_task"


def _wants_fragment() -> bool:
    return request.headers.get("HX-Request") == "true"


def _operation_from(values: Mapping[str, Any], default: str = DEFAULT_OPERATION) -> Operation:
    """Return the operation a form or query names; an unknown name falls back to the default (pages only)."""
    return OPERATIONS.get(str(values.get("operation") or default), OPERATIONS[DEFAULT_OPERATION])


def _fields(operation: Operation, values: Mapping[str, Any]) -> list:
    return fields_for(operation, values, service.installed_models(), current_app.config["STUDIO_DEFAULT_MODEL"])


def _render_upload_page(errors: list[str] | None = None, status: int = 200) -> tuple[str, int]:
    values = request.form if errors else request.args
    operation = _operation_from(values)
    recent = service.list_tasks(current_user, 1, per_page=RECENT_ON_UPLOAD_PAGE)
    return render_template("tasks/upload.html", operations=OPERATIONS.values(), operation=operation,
                           fields=_fields(operation, values if errors else {}), recent=recent.items,
                           poll=poll_state(recent.items), errors=errors or [], source=_source_task()), status


def _source_task() -> Task | None:
    """Return the task whose result the upload form takes as its photo (?source=, "Use this result"), if any."""
    source_id = request.args.get("source") or request.form.get(SOURCE_FIELD)
    return service.get_task(current_user, source_id) if source_id else None


@bp.get("/")
@read_limit
def index() -> tuple[str, int] | str:
    """Show the upload page to a signed-in user, the landing page to anyone else."""
    if not current_user.is_authenticated:
        return render_template("landing.html", operations=OPERATIONS.values())
    return _render_upload_page()


@bp.get("/tasks/fields")
@login_required
@read_limit
def operation_fields() -> str:
    """Return the options of the chosen operation, for the upload and re-run forms (HTMX swaps them in)."""
    operation = _operation_from(request.args)
    return render_template("tasks/_operation_fields.html", operation=operation, fields=_fields(operation, {}),
                           task=None)


@bp.get("/tasks")
@login_required
@read_limit
def list_tasks() -> str:
    """Show the account's tasks, newest first, a page at a time, only those of a status or operation if asked."""
    page = request.args.get("page", 1, type=int)
    filters = history.page_filters(request.args)
    pagination = service.list_tasks(current_user, max(page, 1), **filters)
    return render_template("tasks/list.html", pagination=pagination, poll=poll_state(pagination.items),
                           filters=filters, operations=OPERATIONS.values(), statuses=history.STATUSES)


@bp.post("/tasks")
@login_required
@upload_limit
def create() -> Response | tuple[str, int]:
    """Create a task for one photo, or a batch of tasks for several, all with the chosen operation and options."""
    photos: list[service.PhotoSource] = [upload for upload in request.files.getlist(PHOTO_FIELD)
                                         if upload and upload.filename]
    operation = _operation_from(request.form)
    by_url = bool(request.form.get(IMAGE_URL_FIELD, "").strip())
    source = _source_task() if not photos and not by_url else None
    if source is not None:
        try:
            photos = [service.result_as_upload(source)]
        except UploadRejected as error:
            return _upload_failed([(None, page_message(error, operation))], error.status)
    if not photos and not by_url:
        return _upload_failed([(None, "Choose at least one photo to upload, or give its web address.")], 400)
    try:
        if by_url:
            # One photo by URL, fetched by the worker; with files too, photo_source refuses both.
            photos = [service.photo_source(request.form, photos[0] if photos else None)]
        # Checked once for all the photos: each task stores its own copy of the attachments.
        upload_request = service.parse_upload(_option_fields(), _attached_files())
    except UploadRejected as error:
        metrics.upload_refused(error.code)
        return _upload_failed([(None, page_message(error, operation))], error.status)
    if len(photos) > 1:
        return _create_batch(photos, upload_request)
    tasks, errors, status = [], [], 400
    for photo in photos:
        try:
            tasks.append(service.create_task(current_user, photo, upload_request))
        except UploadRejected as error:
            errors.append((service.display_filename(photo.filename), page_message(error, upload_request.operation)))
            status = error.status
            metrics.upload_refused(error.code)
    if not tasks:
        return _upload_failed(errors, status)
    if _wants_fragment():
        return render_template("tasks/_task_rows.html", tasks=tasks, errors=_named(errors)), 201
    for message in _named(errors):
        flash(message, "error")
    flash(f"Uploaded {len(tasks)} photo{'s' if len(tasks) != 1 else ''}; processing has started.", "success")
    if len(tasks) == 1 and not errors:
        return redirect(url_for("tasks.detail", task_id=tasks[0].id))
    return redirect(url_for("tasks.list_tasks"))


def _create_batch(photos: list[FileStorage], upload_request: service.UploadRequest) -> Response | tuple[str, int]:
    """Make several photos one batch, and open its page (the script follows HX-Redirect)."""
    try:
        batch = batch_service.create_batch(current_user, upload_request, batch_service.file_candidates(photos), [])
    except UploadRejected as error:
        metrics.upload_refused(error.code)
        return _upload_failed([(None, page_message(error, upload_request.operation))], error.status)
    flash(f"Uploaded {len(photos) - len(batch.skipped)} photos as one batch; processing has started."
          + (f" {len(batch.skipped)} file{'s were' if len(batch.skipped) != 1 else ' was'} not processed: see below."
             if batch.skipped else ""), "success")
    location = url_for("batches.detail", batch_id=batch.id)
    if _wants_fragment():
        return Response("", 201, {"HX-Redirect": location})
    return redirect(location)


def _option_fields() -> Any:
    """Return the submitted fields without the form's own (its CSRF token, the re-run switch)."""
    fields = request.form.copy()
    for name in ("csrf_token", "keep_attachments", SOURCE_FIELD):
        fields.poplist(name)
    return fields


def _attached_files() -> dict[str, FileStorage]:
    """Return the file fields besides the photos (empty file inputs are left out); the operation says which it
    takes."""
    return {name: upload for name, upload in request.files.items()
            if name != PHOTO_FIELD and upload and upload.filename}


def _named(errors: list[tuple[str | None, str]]) -> list[str]:
    """Return each refusal as the page shows it: the file named once, before its sentence."""
    return [f"{name}: {message}" if name else message for name, message in errors]


def _upload_failed(errors: list[tuple[str | None, str]], status: int) -> Response | tuple[str, int]:
    if _wants_fragment():
        # The upload page's script sends one photo a request and names it itself: the sentence alone.
        return error_response(status, "upload_rejected", " ".join(message for _, message in errors),
                              title="Upload refused")
    return _render_upload_page(_named(errors), status)


def poll_state(tasks: list[Task], delay: int | None = None, seen: str | None = None) -> dict[str, Any]:
    """Return how the page polls for these tasks: whether at all, after how long, and their state's fingerprint.

    Once a second while anything changes, slowing down to MAX_POLL_SECONDS while nothing does; no polling once
    every task is finished (the element is rendered without its trigger, so polling stops by itself).
    """
    fingerprint = hashlib.sha1("|".join(f"{task.id}:{task.status}:{task.progress}:{task.stage}"
                                        for task in tasks).encode()).hexdigest()[:16]
    unchanged = seen == fingerprint
    next_delay = min(max(delay or 1, 1) * 2, MAX_POLL_SECONDS) if unchanged else 1
    return {"active": any(not task.task_status.finished for task in tasks), "delay": next_delay,
            "fingerprint": fingerprint}


def _poll_arguments() -> tuple[int | None, str | None]:
    return request.args.get("delay", type=int), request.args.get("seen")


@bp.get("/tasks/rows")
@login_required
@poll_limit
def rows() -> str:
    """Return the rows of a task table, for polling: one request per table, whatever its length."""
    tasks = service.tasks_by_id(current_user, request.args.getlist("task"))
    return render_template("tasks/_task_tbody.html", tasks=tasks, tbody_id=request.args.get("table"),
                           selectable=request.args.get("select") == "1", poll=poll_state(tasks, *_poll_arguments()))


@bp.get("/tasks/<task_id>")
@login_required
@read_limit
def detail(task_id: str) -> str:
    """Show one task: before and after, progress, outputs, re-run, cancel and delete."""
    task = service.get_task(current_user, task_id)
    return _render_detail(task)


def _render_detail(task: Task, values: Mapping[str, Any] | None = None, rerun_error: str | None = None,
                   status: int = 200) -> Any:
    operation = _operation_from(values or {}, task.operation)
    fields = _fields(operation, values if values is not None else (task.options or {}))
    page = render_template("tasks/detail.html", task=task, operation=OPERATIONS.get(task.operation),
                           rerun_operation=operation, operations=OPERATIONS.values(), fields=fields,
                           rerun_error=rerun_error, tables=_result_tables(task), poll=poll_state([task]))
    return (page, status) if status != 200 else page


@bp.get("/tasks/<task_id>/status")
@login_required
@poll_limit
def status(task_id: str) -> str:
    """Return the task page's live region alone, for polling."""
    task = service.get_task(current_user, task_id)
    return render_template("tasks/_task_status.html", task=task, operation=OPERATIONS.get(task.operation),
                           tables=_result_tables(task), poll=poll_state([task], *_poll_arguments()))


def _result_tables(task: Task) -> list[data_tables.Table]:
    """Return what a finished task's JSON outputs hold, as tables for its page."""
    return data_tables.tables(files.read_json_outputs(task)) if task.task_status.finished else []


@bp.get("/tasks/<task_id>/events")
@login_required
@read_limit
def task_events(task_id: str) -> Response:
    """Stream the task's changes as Server-Sent Events for a page's EventSource, which sends the session's cookie
    but no Authorization header (the API's /api/v1/tasks/<id>/events takes the bearer token)."""
    task = service.get_task(current_user, task_id)
    return events.stream_response(task, events.last_event_id(request.headers.get("Last-Event-ID")), task_to_dict)


@bp.get("/tasks/<task_id>/result")
@login_required
@read_limit
def result(task_id: str) -> Response:
    """Send the main output (?download=1 or ?download=true to save it as a file)."""
    task = service.get_task(current_user, task_id)
    return files.serve_output(task, download=service.wants_download(request.args))


@bp.get("/tasks/<task_id>/outputs/<name>")
@login_required
@read_limit
def output(task_id: str, name: str) -> Response:
    """Send another output (a preview, the JSON of what was found)."""
    task = service.get_task(current_user, task_id)
    return files.serve_output(task, name, download=service.wants_download(request.args))


@bp.get("/tasks/<task_id>/input")
@login_required
@read_limit
def input_image(task_id: str) -> Response:
    """Send the uploaded photo."""
    return files.serve_input(service.get_task(current_user, task_id))


@bp.get("/tasks/<task_id>/thumbnail")
@login_required
@read_limit
def thumbnail(task_id: str) -> Response:
    """Send the task's thumbnail for the history: its result's, else its photo's (404 while there is none)."""
    return files.serve_thumbnail(service.get_task(current_user, task_id))


@bp.post("/tasks/<task_id>/rerun")
@login_required
@upload_limit
def rerun(task_id: str) -> Response | tuple[str, int]:
    """Process the same photo again, with other options or another operation, as a new task."""
    task = service.get_task(current_user, task_id)
    try:
        new_task = service.rerun_task(task, _option_fields(),
                                      keep_attachments=request.form.get("keep_attachments") == "true")
    except UploadRejected as error:
        message = page_message(error, _operation_from(request.form, task.operation))
        return _render_detail(task, request.form, message, error.status)
    flash("Processing again with the new options.", "success")
    return redirect(url_for("tasks.detail", task_id=new_task.id))


@bp.post("/tasks/<task_id>/cancel")
@login_required
@read_limit
def cancel(task_id: str) -> Response:
    """Cancel a waiting or running task."""
    task = service.get_task(current_user, task_id)
    if service.cancel_task(task):
        flash(f"Cancelled {task.original_filename or 'the task'}.", "success")
    else:
        flash("The task had finished already.", "info")
    return redirect(url_for("tasks.detail", task_id=task.id))


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


bp.add_app_template_global(display.operation_title, "operation_title")
bp.add_app_template_global(display.options_summary, "options_summary")
bp.add_app_template_global(display.task_outputs, "task_outputs")
bp.add_app_template_global(lambda task: estimates.timing_text(task), "task_timing")
bp.add_app_template_global(estimates.page_costs, "operation_costs")
bp.add_app_template_global(display.thumbnail_url, "thumbnail_url")
bp.add_app_template_global(display.has_picture_result, "has_picture_result")
bp.add_app_template_filter(sentence, "sentence")
