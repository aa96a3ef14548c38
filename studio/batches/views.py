"""Batch pages: a batch's overall progress (polled), each photo's row, the ZIP of its results, retry, delete."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from studio.batches import results_archive, service
from studio.models import Batch, Task
from studio.security import poll_limit, read_limit
from studio.storage import get_storage
from studio.tasks.service import UploadRejected
from studio.tasks.views import poll_state

bp = Blueprint("batches", __name__)


def _state(batch: Batch, tasks: list[Task]) -> dict:
    return {"batch": batch, "tasks": tasks, "counts": service.counts(tasks), "progress": service.progress(tasks),
            "finished": service.finished(tasks)}


@bp.get("/batches/<batch_id>")
@login_required
@read_limit
def detail(batch_id: str) -> str:
    """Show a batch: overall progress, each photo, and the ZIP of the results once all are finished."""
    batch = service.get_batch(current_user, batch_id)
    tasks = service.batch_tasks(batch)
    return render_template("batches/detail.html", poll=poll_state(tasks), **_state(batch, tasks))


@bp.get("/batches/<batch_id>/status")
@login_required
@poll_limit
def status(batch_id: str) -> str:
    """Return the batch page's live region alone, for polling."""
    batch = service.get_batch(current_user, batch_id)
    tasks = service.batch_tasks(batch)
    poll = poll_state(tasks, request.args.get("delay", type=int), request.args.get("seen"))
    return render_template("batches/_batch_status.html", poll=poll, **_state(batch, tasks))


@bp.get("/batches/<batch_id>/archive")
@login_required
@read_limit
def archive(batch_id: str) -> Response:
    """Send one ZIP of the batch's results, streamed."""
    batch = service.get_batch(current_user, batch_id)
    try:
        return results_archive.response(batch, service.batch_tasks(batch), get_storage())
    except UploadRejected as error:
        flash(error.message, "error")
        return redirect(url_for("batches.detail", batch_id=batch.id))


@bp.post("/batches/<batch_id>/retry")
@login_required
@read_limit
def retry(batch_id: str) -> Response:
    """Run the batch's failed photos again."""
    batch = service.get_batch(current_user, batch_id)
    try:
        retried = service.retry_failed(batch)
    except UploadRejected as error:
        flash(error.message, "error")
    else:
        flash(f"Processing {retried} photo{'s' if retried != 1 else ''} again." if retried
              else "No photo of the batch had failed.", "success" if retried else "info")
    return redirect(url_for("batches.detail", batch_id=batch.id))


@bp.post("/batches/<batch_id>/delete")
@login_required
@read_limit
def delete(batch_id: str) -> Response:
    """Delete the batch, its photos and their results."""
    deleted = service.delete_batch(service.get_batch(current_user, batch_id))
    flash(f"Deleted the batch and its {deleted} photo{'s' if deleted != 1 else ''}.", "success")
    return redirect(url_for("tasks.list_tasks"))
