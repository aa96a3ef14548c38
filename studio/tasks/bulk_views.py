"""The history's actions on several tasks at once: delete, re-run with options chosen once, download as a ZIP.

Each is a POST from the history's form (CSRF-protected like every form), on the ticked tasks of the signed-in
account only: another account's ids are left out as if unknown.
"""

from __future__ import annotations

from datetime import datetime, timezone

from flask import Blueprint, Response, current_app, flash, redirect, render_template, request, stream_with_context, \
    url_for
from flask_login import current_user, login_required

from ml.operations import OPERATIONS
from studio.models import Task
from studio.security import read_limit, upload_limit
from studio.storage import get_storage
from studio.tasks import history, service
from studio.tasks.forms import fields_for

bp = Blueprint("bulk", __name__, url_prefix="/tasks/selected")

SELECTED_FIELD = "selected"
# Fields of the re-run form that are not the operation's options.
FORM_FIELDS = ("csrf_token", SELECTED_FIELD, "confirmed")


def _selected() -> list[Task]:
    return history.selected(current_user, request.form.getlist(SELECTED_FIELD))


def _nothing_selected() -> Response:
    flash("Tick at least one photo first.", "error")
    return redirect(url_for("tasks.list_tasks"), 303)


def _plural(count: int) -> str:
    return f"{count} photo{'s' if count != 1 else ''}"


@bp.post("/delete")
@login_required
@read_limit
def delete() -> Response:
    """Delete the ticked tasks and their files."""
    tasks = _selected()
    if not tasks:
        return _nothing_selected()
    flash(f"Deleted {_plural(history.delete_tasks(tasks))} and their results.", "success")
    return redirect(url_for("tasks.list_tasks"), 303)


@bp.post("/rerun")
@login_required
@upload_limit
def rerun() -> Response | tuple[str, int] | str:
    """Show the options for processing the ticked photos again; once confirmed, queue one new task per photo."""
    tasks = _selected()
    if not tasks:
        return _nothing_selected()
    if request.form.get("confirmed") != "1":
        return _render_options(tasks)
    if any(upload and upload.filename for upload in request.files.values()):
        return _render_options(tasks, ["A picture cannot be added to several photos at once; process them again one "
                                       "by one from their pages."], 400)
    fields = request.form.copy()
    for name in FORM_FIELDS:
        fields.poplist(name)
    created, errors = history.rerun_tasks(tasks, fields)
    if not created:
        return _render_options(tasks, errors, 400)
    for message in errors:
        flash(message, "error")
    flash(f"Processing {_plural(len(created))} again; the new tasks are at the top.", "success")
    return redirect(url_for("tasks.list_tasks"), 303)


def _render_options(tasks: list[Task], errors: list[str] | None = None, status: int = 200) -> tuple[str, int]:
    name = str(request.form.get("operation") or tasks[0].operation)
    operation = OPERATIONS.get(name) or next(iter(OPERATIONS.values()))
    # The first photo's options are the starting point when it is the same operation.
    values = request.form if errors else (tasks[0].options or {}) if operation.name == tasks[0].operation else {}
    fields = fields_for(operation, values, service.installed_models(), current_app.config["STUDIO_DEFAULT_MODEL"])
    return render_template("tasks/bulk_rerun.html", tasks=tasks, operation=operation, fields=fields,
                           operations=OPERATIONS.values(), errors=errors or []), status


@bp.post("/zip")
@login_required
@read_limit
def download_zip() -> Response:
    """Send the results of the ticked tasks as one ZIP, streamed as it is written (never whole in memory)."""
    tasks = _selected()
    if not tasks:
        return _nothing_selected()
    entries = history.archive_entries(tasks)
    if not entries:
        flash("None of the ticked photos has a result to download yet.", "error")
        return redirect(url_for("tasks.list_tasks"), 303)
    name = f"photo-studio-{datetime.now(timezone.utc):%Y%m%d-%H%M%S}.zip"
    response = Response(stream_with_context(history.stream_zip(get_storage(), entries)), mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "private, no-store"
    # nginx would otherwise hold the archive back until it has a buffer full.
    response.headers["X-Accel-Buffering"] = "no"
    return response
