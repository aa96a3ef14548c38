"""The admin dashboard's pages: overview, accounts, tasks, usage and the audit log. Administrators only; everyone
else, signed in or not, gets a 404, as for rq-dashboard. Every change is a POST with its CSRF token."""

from __future__ import annotations

from flask import Blueprint, Response, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user
from werkzeug.wrappers import Response as WerkzeugResponse

from ml.operations import OPERATIONS
from studio import plans, usage
from studio.admin import audit, export, overview, pages, service
from studio.admin.service import AdminError
from studio.auth import reset
from studio.extensions import limiter
from studio.models import User
from studio.security import client_key

bp = Blueprint("admin", __name__, url_prefix="/admin")
# One limit for the whole blueprint: Flask-Limiter checks a blueprint's limit before the blueprint's own
# before_request, so non-administrators are counted too, and then get their 404 (a limit on each view would be
# checked inside the view, after the 404, and so never).
limiter.limit(lambda: current_app.config["RATELIMIT_READ"], key_func=client_key)(bp)

# The live part of the overview asks again this often.
OVERVIEW_POLL_SECONDS = 10
TASK_STATUSES = ("FAILED", "UNFINISHED", "PENDING", "PROCESSING", "COMPLETED", "CANCELLED", "ALL")
MEBIBYTE = 1024 * 1024


@bp.before_request
def administrators_only() -> None:
    """Answer 404 to anyone but a signed-in administrator: the dashboard's existence is not advertised."""
    if not (current_user.is_authenticated and current_user.is_admin):
        abort(404)


def _actor() -> User:
    return current_user._get_current_object()


def _page() -> int:
    return pages.page_number(request.args.get("page"))


@bp.get("/")
def index() -> str:
    """Show the overview: activity charts, queues and workers, failures, slowest tasks, storage, recent actions."""
    return render_template("admin/overview.html", poll_seconds=OVERVIEW_POLL_SECONDS, **overview.overview(),
                           entries=audit.recent(per_page=10).items)


@bp.get("/overview")
def overview_fragment() -> str:
    """Return the overview's live region alone (HTMX polls it)."""
    return render_template("admin/_overview_live.html", poll_seconds=OVERVIEW_POLL_SECONDS, **overview.overview())


@bp.get("/users")
def users() -> str:
    """List accounts, newest first, with a search on the email."""
    search = pages.search_text(request.args.get("q"), 254)
    pagination = service.find_users(search, _page())
    return render_template("admin/users.html", pagination=pagination, search=search,
                           page_arguments=pages.link_arguments({"q": search}, ("q",)),
                           month=service.month_usage_of(pagination.items),
                           unfinished=service.unfinished_counts(pagination.items))


@bp.get("/users/<int:user_id>")
def user(user_id: int) -> str:
    """Show one account: its plan and usage this month, its tasks, the actions on it."""
    return _user_page(service.get_user(user_id))


def _user_page(account: User, **extra: object) -> str:
    today = usage.today()
    rows = usage.rows(usage.month_start(today), today, account.id)
    return render_template(
        "admin/user.html", account=account, plan=plans.plan_for(account), plans=plans.configured_plans(),
        default_plan=plans.default_plan_name(), totals=usage.add_up(rows), operations=usage.by_operation(rows),
        tasks=service.user_tasks(account), entries=audit.recent(per_page=20, user_id=account.id).items,
        unfinished=usage.unfinished(account.id)[0], mebibyte=MEBIBYTE, **extra)


def _back_to_user(user_id: int) -> WerkzeugResponse:
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/users/<int:user_id>/status")
def set_status(user_id: int) -> WerkzeugResponse:
    """Disable an account (ending its sessions and cancelling its unfinished tasks) or enable it again."""
    account = service.get_user(user_id)
    disable = request.form.get("disabled") == "true"
    try:
        cancelled = service.set_disabled(_actor(), account, disable)
    except AdminError as error:
        flash(str(error), "error")
        return _back_to_user(user_id)
    if disable:
        flash(f"Disabled {account.email}; {cancelled} unfinished task{'s' if cancelled != 1 else ''} cancelled.",
              "success")
    else:
        flash(f"Enabled {account.email}.", "success")
    return _back_to_user(user_id)


@bp.post("/users/<int:user_id>/reset-link")
def reset_link(user_id: int) -> tuple[str, int]:
    """Make a one-time password reset link for the account and show it this once (recorded in the audit log)."""
    account = service.get_user(user_id)
    link = reset.issue_by_admin(_actor(), account, current_app.config)
    hours = max(current_app.config["STUDIO_ADMIN_RESET_LINK_SECONDS"] // 3600, 1)
    # Rendered, not flashed: a flash would put the link in the (signed, not encrypted) session cookie.
    return _user_page(account, reset_link=link, reset_expires=f"{hours} hour{'s' if hours != 1 else ''}"), 201


@bp.post("/users/<int:user_id>/role")
def set_role(user_id: int) -> WerkzeugResponse:
    """Make the account an administrator, or no longer one."""
    account = service.get_user(user_id)
    admin = request.form.get("admin") == "true"
    try:
        service.set_admin(_actor(), account, admin)
    except AdminError as error:
        flash(str(error), "error")
    else:
        flash(f"{account.email} is {'now' if admin else 'no longer'} an administrator.", "success")
    return _back_to_user(user_id)


@bp.post("/users/<int:user_id>/quota")
def set_quota(user_id: int) -> WerkzeugResponse:
    """Give the account its own storage quota (in MiB; empty: the site's default; 0: no limit)."""
    account = service.get_user(user_id)
    value = request.form.get("quota_mib", "").strip()
    try:
        if value and not (value.isascii() and value.isdigit() and len(value) <= 12):
            raise AdminError("Give the quota as a whole number of MiB, 0 for no limit, or leave it empty.")
        service.set_quota(_actor(), account, int(value) * MEBIBYTE if value else None)
    except AdminError as error:
        flash(str(error), "error")
    else:
        flash(f"Storage quota of {account.email} changed.", "success")
    return _back_to_user(user_id)


@bp.post("/users/<int:user_id>/plan")
def set_plan(user_id: int) -> WerkzeugResponse:
    """Put the account on a plan (empty: the default plan)."""
    account = service.get_user(user_id)
    try:
        service.set_plan(_actor(), account, request.form.get("plan") or None)
    except AdminError as error:
        flash(str(error), "error")
    else:
        flash(f"{account.email} is on the {plans.plan_for(account).name} plan.", "success")
    return _back_to_user(user_id)


def _task_filters(values) -> dict[str, str]:
    status = values.get("status", "FAILED")
    operation = values.get("operation", "")
    return {"status": status if status in TASK_STATUSES else "FAILED",
            "reason": pages.search_text(values.get("reason"), 200),
            "operation": operation if operation in OPERATIONS else "",
            "email": pages.search_text(values.get("email"), 254)}


@bp.get("/tasks")
def tasks() -> str:
    """List tasks by status (FAILED first), reason, operation and account, with retry and cancel."""
    filters = _task_filters(request.args)
    pagination = service.find_tasks(_page(), **filters)
    arguments = pages.link_arguments(filters, tuple(filters))
    return render_template("admin/tasks.html", pagination=pagination, filters=filters, page_arguments=arguments,
                           here=url_for("admin.tasks", **arguments, page=pagination.page),
                           statuses=TASK_STATUSES, operations=sorted(OPERATIONS),
                           reasons=service.failure_reasons()[:15])


def _back_to_tasks() -> WerkzeugResponse:
    target = request.form.get("next", "")
    # Only back to a page of this dashboard: the field is the admin's own, but never an open redirect.
    if not target.startswith(bp.url_prefix + "/") or target.startswith("//") or "\\" in target:
        target = url_for("admin.tasks")
    return redirect(target)


def _selected_tasks() -> list[str]:
    if request.form.get("matching") == "true":
        return service.matching_task_ids(**_task_filters(request.form))
    return request.form.getlist("task")


@bp.post("/tasks/retry")
def retry_tasks() -> WerkzeugResponse:
    """Run the chosen FAILED tasks again from the start."""
    retried, skipped = service.retry_tasks(_actor(), _selected_tasks())
    flash(f"Retried {retried} task{'s' if retried != 1 else ''}"
          + (f"; {skipped} not retried (no longer FAILED)." if skipped else "."), "success" if retried else "info")
    return _back_to_tasks()


@bp.post("/tasks/cancel")
def cancel_tasks() -> WerkzeugResponse:
    """Cancel the chosen waiting or running tasks (running jobs are stopped at once)."""
    cancelled, skipped = service.cancel_tasks(_actor(), _selected_tasks())
    flash(f"Cancelled {cancelled} task{'s' if cancelled != 1 else ''}"
          + (f"; {skipped} had finished already." if skipped else "."), "success" if cancelled else "info")
    return _back_to_tasks()


@bp.get("/audit")
def audit_log() -> str:
    """Show every administrator action, newest first."""
    return render_template("admin/audit.html", pagination=audit.recent(_page()), actions=audit.ACTIONS,
                           page_arguments={})


@bp.get("/usage")
def usage_page() -> str:
    """Show each account's usage in a month, and the CSV export."""
    try:
        start = export.parse_month(request.args.get("month"))
    except ValueError as error:
        start = usage.month_start(usage.today())
        flash(str(error), "error")
    return render_template("admin/usage.html", start=start, accounts=export.month_by_account(start))


@bp.post("/usage.csv")
def usage_csv() -> WerkzeugResponse:
    """Download every account's usage in a month as CSV (recorded in the audit log)."""
    try:
        start = export.parse_month(request.form.get("month") or request.args.get("month"))
    except ValueError as error:
        flash(str(error), "error")
        return redirect(url_for("admin.usage_page"))
    body = service.export_usage(_actor(), start)
    return Response(body, mimetype="text/csv", headers={
        "Content-Disposition": f'attachment; filename="usage-{start:%Y-%m}.csv"'})
