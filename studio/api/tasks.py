"""Task endpoints: upload, list, show, fetch outputs, cancel and delete. Each view's docstring documents it in the
OpenAPI document (studio/api/document.py)."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify, request, url_for
from werkzeug.datastructures import FileStorage
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from studio.api import bp
from studio.security import read_limit, upload_limit
from studio.models import Task
from studio.tasks import estimates, events, files, history, service, thumbnails, waiting
from studio.tasks.representation import output_records, task_fields, webhook_fields
from studio.tasks.service import UploadRejected

TASK_ID = {"name": "task_id", "in": "path", "required": True, "schema": {"type": "string", "format": "uuid"}}


def task_to_dict(task: Task) -> dict[str, Any]:
    """Return the API representation of a task, with links to its outputs."""
    outputs = {
        name: {"url": url_for("api.task_result", task_id=task.id, _external=True) if name == "result"
               else url_for("api.task_output", task_id=task.id, name=name, _external=True),
               "media_type": record["media_type"], "size": record["size"]}
        for name, record in output_records(task).items()
    }
    return {
        **task_fields(task),
        "result_url": outputs["result"]["url"] if "result" in outputs else None,
        "preview_url": outputs["preview"]["url"] if "preview" in outputs else None,
        "outputs": outputs,
        "thumbnail_url": url_for("api.task_thumbnail", task_id=task.id, _external=True)
        if thumbnails.shown(task.thumbnails) else None,
        "webhook": webhook_fields(task),
        **estimates.timing_fields(task),
    }


@bp.post("/tasks")
@upload_limit
def create_task() -> tuple[Response, int, dict[str, str]]:
    """Upload a photo and queue an operation on it.
    ---
    post:
      operationId: createTask
      summary: Upload a photo and queue an operation on it (remove_background unless `operation` says otherwise)
      description: The photo goes in the file field `image` (or its URL in `image_url`, fetched by the worker),
        the operation's options in text fields, its extra pictures (a background image, say) in file fields of
        their own (or their URLs in `<name>_url`). A JSON body gives the photo by URL. GET /operations lists each
        operation's options as JSON Schema.
      responses:
        "202":
          description: The queued task
          headers: {Location: {description: the task's URL, schema: {type: string}}}
          content: {application/json: {schema: Task}}
        "400": BadRequest
        "401": Unauthorized
        "413":
          description: The upload is larger than the limit, or the account's storage is full (quota_exceeded)
          content: {application/json: {schema: Error}}
        "415":
          description: The file is not a JPEG, PNG or WebP image, or it is animated
          content: {application/json: {schema: Error}}
        "429": TooManyRequests
        "503": Unavailable
    """
    fields, files = _upload_fields()
    source = service.photo_source(fields, _one_image(fields))
    task = service.create_task(g.api_user, source, service.parse_upload(fields, files))
    location = url_for("api.get_task", task_id=task.id, _external=True)
    return jsonify(task_to_dict(task)), 202, {"Location": location}


create_task.takes_upload = True  # type: ignore[attr-defined]  # its body is generated from the operations


def _upload_fields() -> tuple[Any, dict[str, FileStorage]]:
    """Return an upload's text fields and files: a multipart form, or a JSON object giving the photo by URL."""
    if request.mimetype == "application/json":
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            raise UploadRejected(400, "missing_file", "Send a multipart/form-data body with the photo in a file "
                                 "field named image, or a JSON object with its URL in image_url.")
        if not body.get("image_url"):
            raise UploadRejected(400, "missing_file", "image_url: give the photo's URL (a JSON body carries no "
                                 "file; send a multipart/form-data body to upload one).")
        return body, {}
    if request.mimetype != "multipart/form-data":
        raise UploadRejected(400, "missing_file", "Send a multipart/form-data body with the photo in a file "
                             "field named image (or its URL in image_url) and the options as text fields, or a "
                             "JSON object with image_url.")
    return request.form, _attached_files()


def _one_image(fields: Any) -> FileStorage | None:
    """Return the uploaded `image` file, None when the photo is given by URL; refuse more than one photo."""
    if "image" in fields:
        raise UploadRejected(400, "missing_file", "image must be a file upload, not a text field (give a URL "
                             "in image_url).")
    images = request.files.getlist("image") if request.mimetype == "multipart/form-data" else []
    if len(images) > 1:
        raise UploadRejected(400, "too_many_files", "Send one photo per request (one image field).")
    if (not images or not images[0].filename) and not fields.get("image_url"):
        raise UploadRejected(400, "missing_file", "Attach the photo as a file field named image "
                             "(a JPEG, PNG or WebP file), or give its URL in image_url.")
    return images[0] if images and images[0].filename else None


def _attached_files() -> dict[str, FileStorage]:
    """Return the file fields besides `image`, one each; the operation says which it takes."""
    return attached_files("image")


def attached_files(*photo_fields: str) -> dict[str, FileStorage]:
    """Return the file fields besides those of the photos, one each; the operation says which it takes."""
    attached = {}
    for name in request.files:
        if name in photo_fields:
            continue
        uploads = [upload for upload in request.files.getlist(name) if upload.filename]
        if len(uploads) > 1:
            raise UploadRejected(400, "invalid_option", f"{name[:40]}: send one file.")
        if uploads:
            attached[name] = uploads[0]
    return attached


@bp.get("/tasks")
@read_limit
def list_tasks() -> Response:
    """List the account's tasks.
    ---
    get:
      operationId: listTasks
      summary: List the account's tasks, newest first
      parameters:
        - {name: page, in: query, schema: {type: integer, minimum: 1, maximum: 1000000, default: 1}}
        - {name: per_page, in: query, schema: {type: integer, minimum: 1, maximum: 100}}
        - {name: status, in: query, schema: {type: string, enum: [PENDING, PROCESSING, COMPLETED, FAILED,
           CANCELLED]}}
        - {name: operation, in: query, schema: {type: string}}
      responses:
        "200": {description: One page of tasks, content: {application/json: {schema: TaskList}}}
        "400": BadRequest
        "401": Unauthorized
        "429": TooManyRequests
        "503": Unavailable
    """
    page = _whole_number("page", maximum=service.MAX_PAGE) or 1
    per_page = _whole_number("per_page", maximum=service.MAX_PER_PAGE)
    status = request.args.get("status")
    # As the document says: one of the statuses, as written there. The pages' filter is more forgiving (any case,
    # empty for all); an API client gets a 400 for what its schema calls invalid, not a quietly widened list.
    if status is not None and status not in history.STATUSES:
        raise BadRequest(f"status must be one of {', '.join(history.STATUSES)}.")
    try:
        filters = {"status": status, "operation": history.operation_named(request.args.get("operation"))}
    except ValueError as error:
        raise BadRequest(str(error)) from None
    pagination = service.list_tasks(g.api_user, page, per_page, **filters)
    return jsonify(items=[task_to_dict(task) for task in pagination.items], page=pagination.page,
                   per_page=pagination.per_page, total=pagination.total, pages=pagination.pages)


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
    """Show one task.
    ---
    get:
      operationId: getTask
      summary: Show one task (ask again, with wait or after a pause, until it is COMPLETED, FAILED or CANCELLED)
      parameters:
        - {name: task_id, in: path, required: true, schema: {type: string, format: uuid}}
        - name: wait
          in: query
          description: >-
            Seconds to wait for an unfinished task to finish before answering (long polling): the answer comes as
            soon as it is COMPLETED, FAILED or CANCELLED, or with the task as it is once the time is up. The server
            may answer sooner when too many requests already wait; ask again either way.
          schema: {type: integer, minimum: 1, maximum: 20}
      responses:
        "200": {description: The task, content: {application/json: {schema: Task}}}
        "400": BadRequest
        "401": Unauthorized
        "404": NotFound
        "429": TooManyRequests
        "503": Unavailable
    """
    seconds = _whole_number("wait", maximum=waiting.MAX_WAIT_SECONDS)
    task = service.get_task(g.api_user, task_id)
    if seconds and not task.task_status.finished:
        waiting.wait_until_finished(task.id, seconds)
        task = service.get_task(g.api_user, task_id)  # afresh after a wait: finished, still running, or deleted
    return jsonify(task_to_dict(task))


@bp.get("/tasks/<task_id>/events")
@read_limit
def task_events(task_id: str) -> Response:
    """Stream the task's changes as Server-Sent Events.
    ---
    get:
      operationId: getTaskEvents
      summary: Stream the task's progress and its end as Server-Sent Events (docs/api.md, "Events as they happen")
      description: "`progress` events ({status, progress, stage}), then one `finished` event (the Task) and the
        stream closes. Ids grow; send Last-Event-ID to resume. 204: the end was seen already."
      parameters:
        - {name: task_id, in: path, required: true, schema: {type: string, format: uuid}}
      responses:
        "200": {description: The event stream, content: {text/event-stream: {schema: {type: string}}}}
        "204": {description: The client has seen the final event}
        "401": Unauthorized
        "404": NotFound
        "429": TooManyRequests
    """
    task = service.get_task(g.api_user, task_id)
    return events.stream_response(task, events.last_event_id(request.headers.get("Last-Event-ID")), task_to_dict)


@bp.get("/tasks/<task_id>/result")
@read_limit
def task_result(task_id: str) -> Response:
    """Fetch the main output.
    ---
    get:
      operationId: getTaskResult
      summary: "Fetch the main output: the image, or the JSON data of an operation that finds things"
      parameters:
        - {name: task_id, in: path, required: true, schema: {type: string, format: uuid}}
        - {name: download, in: query, description: 1 for an attachment, schema: {type: string, enum: ["0", "1",
           "true", "false"]}}
      responses:
        "200":
          description: The output (an image from local storage, or JSON data)
          content:
            image/png: {schema: {type: string, contentMediaType: image/png}}
            image/webp: {schema: {type: string, contentMediaType: image/webp}}
            image/jpeg: {schema: {type: string, contentMediaType: image/jpeg}}
            application/json: {schema: {type: object}}
        "302":
          description: A short-lived presigned URL for the image (S3 storage)
          headers: {Location: {schema: {type: string, format: uri}}}
        "401": Unauthorized
        "404": NotFound
        "429": TooManyRequests
        "503": Unavailable
    """
    task = service.get_task(g.api_user, task_id)
    return files.serve_output(task, download=service.wants_download(request.args))


@bp.get("/tasks/<task_id>/thumbnail")
@read_limit
def task_thumbnail(task_id: str) -> Response:
    """Fetch the task's thumbnail.
    ---
    get:
      operationId: getTaskThumbnail
      summary: Fetch a small WebP of the result, else of the photo
      parameters:
        - {name: task_id, in: path, required: true, schema: {type: string, format: uuid}}
      responses:
        "200":
          description: The thumbnail
          content:
            image/webp: {schema: {type: string, contentMediaType: image/webp}}
        "302":
          description: A presigned URL (S3)
          headers: {Location: {schema: {type: string, format: uri}}}
        "401": Unauthorized
        "404": NotFound
        "429": TooManyRequests
        "503": Unavailable
    """
    return files.serve_thumbnail(service.get_task(g.api_user, task_id))


@bp.get("/tasks/<task_id>/outputs/<name>")
@read_limit
def task_output(task_id: str, name: str) -> Response:
    """Fetch another output by name.
    ---
    get:
      operationId: getTaskOutput
      summary: Fetch an output by name (preview, say; the task's `outputs` lists them)
      parameters:
        - {name: task_id, in: path, required: true, schema: {type: string, format: uuid}}
        - {name: name, in: path, required: true, schema: {type: string, pattern: "^[a-z_]{1,40}$"}}
        - {name: download, in: query, description: 1 for an attachment, schema: {type: string, enum: ["0", "1",
           "true", "false"]}}
      responses:
        "200":
          description: The output
          content:
            image/png: {schema: {type: string, contentMediaType: image/png}}
            image/webp: {schema: {type: string, contentMediaType: image/webp}}
            image/jpeg: {schema: {type: string, contentMediaType: image/jpeg}}
            application/json: {schema: {type: object}}
        "302":
          description: A short-lived presigned URL for the image (S3 storage)
          headers: {Location: {schema: {type: string, format: uri}}}
        "401": Unauthorized
        "404": NotFound
        "429": TooManyRequests
        "503": Unavailable
    """
    task = service.get_task(g.api_user, task_id)
    return files.serve_output(task, name, download=service.wants_download(request.args))


@bp.post("/tasks/<task_id>/cancel")
@read_limit
def cancel_task(task_id: str) -> Response:
    """Cancel a task.
    ---
    post:
      operationId: cancelTask
      summary: Cancel a waiting or running task (a running job stops at its next progress report)
      parameters: [{name: task_id, in: path, required: true, schema: {type: string, format: uuid}}]
      responses:
        "200": {description: "The task, now CANCELLED", content: {application/json: {schema: Task}}}
        "401": Unauthorized
        "404": NotFound
        "409":
          description: The task had finished already
          content: {application/json: {schema: Error}}
        "429": TooManyRequests
        "503": Unavailable
    """
    task = service.get_task(g.api_user, task_id)
    if not service.cancel_task(task):
        raise UploadRejected(409, "already_finished", f"The task is {task.status} already; nothing to cancel.")
    return jsonify(task_to_dict(task))


@bp.delete("/tasks/<task_id>")
@read_limit
def delete_task(task_id: str) -> tuple[str, int]:
    """Delete a task.
    ---
    delete:
      operationId: deleteTask
      summary: Delete a task, its photo and its outputs
      parameters: [{name: task_id, in: path, required: true, schema: {type: string, format: uuid}}]
      responses:
        "204": {description: Deleted}
        "401": Unauthorized
        "404": NotFound
        "429": TooManyRequests
        "503": Unavailable
    """
    service.delete_task(service.get_task(g.api_user, task_id))
    return "", 204
