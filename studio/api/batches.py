"""Batch endpoints: many photos (files, or one ZIP) in one request, one operation for all, each photo its own
task; the batch's progress, one ZIP of its results, retry of its failures, delete. Each view's docstring documents
it in the OpenAPI document (studio/api/document.py)."""

from __future__ import annotations

from typing import Any

from flask import g, jsonify, request, url_for
from werkzeug.wrappers import Response

from studio.api import bp
from studio.api.tasks import attached_files
from studio.batches import results_archive, service
from studio.batches.zip_upload import FIELD as ARCHIVE_FIELD
from studio.models import Batch, Task
from studio.security import read_limit, upload_limit
from studio.storage import get_storage
from studio.tasks import service as task_service
from studio.tasks.representation import isoformat
from studio.tasks.uploads import UploadRejected

IMAGES_FIELD = "images"


def batch_to_dict(batch: Batch, tasks: list[Task]) -> dict[str, Any]:
    """Return the API representation of a batch: its tasks' states, counts and overall progress."""
    finished = service.finished(tasks)
    return {
        "id": batch.id,
        "operation": batch.operation,
        "options": batch.options,
        "archive_name": batch.archive_name,
        "created_at": isoformat(batch.created_at),
        "counts": service.counts(tasks),
        "progress": service.progress(tasks),
        "finished": finished,
        "archive_url": url_for("api.batch_archive", batch_id=batch.id, _external=True) if finished else None,
        "tasks": [{"id": task.id, "original_filename": task.original_filename, "status": task.status,
                   "progress": task.progress, "stage": task.stage, "error": task.error,
                   "url": url_for("api.get_task", task_id=task.id, _external=True)} for task in tasks],
        "skipped": list(batch.skipped or []),
    }


@bp.post("/batches")
@upload_limit
def create_batch() -> tuple[Response, int, dict[str, str]]:
    """Upload many photos and queue the same operation on each.
    ---
    post:
      operationId: createBatch
      summary: Upload many photos (files, or one ZIP) and queue the same operation on each, one task per photo
      description: The photos go in repeated file fields `images`, or as one ZIP in the file field `archive`; the
        operation and its options in text fields, as for one photo (POST /tasks). Files that are not photos are
        skipped and listed, not fatal; the account's limits are checked for the whole batch before anything is
        stored. A ZIP is refused if it holds too many entries, expands too much, has a path out of it or a link.
      responses:
        "202":
          description: The batch, its tasks queued
          headers: {Location: {description: the batch's URL, schema: {type: string}}}
          content: {application/json: {schema: Batch}}
        "400": BadRequest
        "401": Unauthorized
        "413":
          description: Too many photos or entries, an archive that expands too much, a photo over the limit, or
            the account's storage is full (quota_exceeded)
          content: {application/json: {schema: Error}}
        "415":
          description: An attached picture (bg_image, say) is not a JPEG, PNG or WebP image
          content: {application/json: {schema: Error}}
        "429": TooManyRequests
        "503": Unavailable
    """
    _check_multipart()
    candidates, skipped, archive_name = _candidates()
    upload_request = task_service.parse_upload(request.form, attached_files(IMAGES_FIELD, ARCHIVE_FIELD))
    batch = service.create_batch(g.api_user, upload_request, candidates, skipped, archive_name)
    location = url_for("api.get_batch", batch_id=batch.id, _external=True)
    return jsonify(batch_to_dict(batch, service.batch_tasks(batch))), 202, {"Location": location}


create_batch.takes_batch = True  # type: ignore[attr-defined]  # its body is generated from the operations


def _check_multipart() -> None:
    """Refuse a body that is not a multipart form with the photos as files."""
    if request.mimetype != "multipart/form-data":
        raise UploadRejected(400, "missing_file", "Send a multipart/form-data body with the photos in file fields "
                             "named images (or one ZIP in a file field named archive) and the options as text "
                             "fields.")
    for name in (IMAGES_FIELD, ARCHIVE_FIELD):
        if name in request.form:
            raise UploadRejected(400, "missing_file", f"{name} must be a file upload, not a text field.")


def _candidates() -> tuple[list[service.Candidate], list[Any], str]:
    """Return the photos of the request (files, or a ZIP's entries), what was skipped and the ZIP's name."""
    images = [upload for upload in request.files.getlist(IMAGES_FIELD) if upload.filename]
    archives = [upload for upload in request.files.getlist(ARCHIVE_FIELD) if upload.filename]
    if images and archives:
        raise UploadRejected(400, "too_many_files", "Send the photos as images or as one archive, not both.")
    if len(archives) > 1:
        raise UploadRejected(400, "too_many_files", "archive: send one ZIP file.")
    if archives:
        candidates, skipped = service.archive_candidates(archives[0])
        return candidates, skipped, archives[0].filename or ""
    if not images:
        raise UploadRejected(400, "missing_file", "Attach the photos as file fields named images (JPEG, PNG or "
                             "WebP), or one ZIP of them as a file field named archive.")
    return service.file_candidates(images), [], ""


@bp.get("/batches/<batch_id>")
@read_limit
def get_batch(batch_id: str) -> Response:
    """Show one batch.
    ---
    get:
      operationId: getBatch
      summary: "Show a batch: every task's status and progress, counts, overall progress, what was skipped"
      parameters: [{name: batch_id, in: path, required: true, schema: {type: string, format: uuid}}]
      responses:
        "200": {description: The batch, content: {application/json: {schema: Batch}}}
        "401": Unauthorized
        "404": NotFound
        "429": TooManyRequests
        "503": Unavailable
    """
    batch = service.get_batch(g.api_user, batch_id)
    return jsonify(batch_to_dict(batch, service.batch_tasks(batch)))


@bp.get("/batches/<batch_id>/archive")
@read_limit
def batch_archive(batch_id: str) -> Response:
    """Download every result of a batch as one ZIP.
    ---
    get:
      operationId: getBatchArchive
      summary: "One ZIP of the batch's results, streamed: each named after its photo, and manifest.json listing
        the files, the photos that failed (and why) and what the upload skipped"
      parameters: [{name: batch_id, in: path, required: true, schema: {type: string, format: uuid}}]
      responses:
        "200":
          description: The ZIP archive
          content: {application/zip: {schema: {type: string, contentMediaType: application/zip}}}
        "401": Unauthorized
        "404": NotFound
        "409":
          description: Some photos are still waiting or processing
          content: {application/json: {schema: Error}}
        "429": TooManyRequests
        "503": Unavailable
    """
    batch = service.get_batch(g.api_user, batch_id)
    return results_archive.response(batch, service.batch_tasks(batch), get_storage())


@bp.post("/batches/<batch_id>/retry")
@read_limit
def retry_batch(batch_id: str) -> Response:
    """Retry a batch's failed tasks.
    ---
    post:
      operationId: retryBatch
      summary: Run the batch's FAILED tasks again from the start (the others are left as they are)
      parameters: [{name: batch_id, in: path, required: true, schema: {type: string, format: uuid}}]
      responses:
        "200":
          description: The batch, its failed tasks PENDING again
          content: {application/json: {schema: Batch}}
        "401": Unauthorized
        "404": NotFound
        "429": TooManyRequests
        "503": Unavailable
    """
    batch = service.get_batch(g.api_user, batch_id)
    service.retry_failed(batch)
    return jsonify(batch_to_dict(batch, service.batch_tasks(batch)))


@bp.delete("/batches/<batch_id>")
@read_limit
def delete_batch(batch_id: str) -> tuple[str, int]:
    """Delete a batch.
    ---
    delete:
      operationId: deleteBatch
      summary: Delete a batch, every task of it, their photos and their outputs
      parameters: [{name: batch_id, in: path, required: true, schema: {type: string, format: uuid}}]
      responses:
        "204": {description: Deleted}
        "401": Unauthorized
        "404": NotFound
        "429": TooManyRequests
        "503": Unavailable
    """
    service.delete_batch(service.get_batch(g.api_user, batch_id))
    return "", 204
