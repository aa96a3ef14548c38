"""The account's usage and plan, and the answer to a task over the plan's monthly limit."""

from __future__ import annotations

import re
from datetime import date, timedelta
from typing import Any

from flask import g, jsonify, request
from werkzeug.exceptions import BadRequest
from werkzeug.wrappers import Response

from studio import metrics, plans, usage
from studio.api import bp
from studio.security import read_limit
from studio.models import DailyUsage
from studio.plans import PlanLimitReached

DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MAX_DAYS = 366


@bp.errorhandler(PlanLimitReached)
def handle_plan_limit(error: PlanLimitReached) -> Response:
    """Answer 429 with the limit, what is used and when it resets; Retry-After is the time until then."""
    metrics.upload_refused(error.code)
    response = jsonify(error={"status": error.status, "code": error.code, "message": error.message,
                              "plan_limit": error.details()})
    response.status_code = error.status
    response.headers["Retry-After"] = str(error.retry_after_seconds())
    return response


def _day(name: str) -> date | None:
    value = request.args.get(name)
    if value is None:
        return None
    if not DATE.match(value):
        raise BadRequest(f"{name} must be a date like 2026-05-01.")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise BadRequest(f"{name} is not a real date.") from None


def _period() -> tuple[date, date]:
    start, end = _day("from"), _day("to")
    if start is None:
        start = usage.month_start(end or usage.today())
    if end is None:
        end = usage.next_month_start(start) - timedelta(days=1)
    if end < start:
        raise BadRequest("to must be the same day as from or later.")
    if (end - start).days >= MAX_DAYS:
        raise BadRequest(f"Ask for at most {MAX_DAYS} days at a time.")
    return start, end


def amounts(totals: usage.Totals) -> dict[str, Any]:
    """Return usage totals as the API shows them."""
    return {"tasks": totals.tasks, "completed_tasks": totals.completed_tasks,
            "megapixels_in": round(totals.megapixels_in, 6), "megapixels_out": round(totals.megapixels_out, 6),
            "processing_seconds": round(totals.processing_seconds, 3)}


def _day_row(row: DailyUsage) -> dict[str, Any]:
    return {"date": row.day.isoformat(), "operation": row.operation,
            **amounts(usage.add_up([row]))}


def plan_usage(user_id: int, plan: plans.Plan) -> dict[str, Any]:
    """Return the account's plan with what it has used this month."""
    month = usage.month_totals(user_id)
    waiting, _ = usage.unfinished(user_id)
    resets = usage.next_month_start(usage.today())
    return {"name": plan.name, "tasks_per_month": plan.tasks_per_month,
            "megapixels_per_month": plan.megapixels_per_month,
            "max_unfinished_tasks": plans.max_unfinished_tasks(user_id), "concurrency": plans.concurrency(user_id),
            "tasks_this_month": month.tasks,
            "megapixels_this_month": round(month.work_pixels / usage.PIXELS_PER_MEGAPIXEL, 6),
            "unfinished_tasks": waiting, "resets_at": f"{resets.isoformat()}T00:00:00+00:00"}


@bp.get("/usage")
@read_limit
def get_usage() -> Response:
    """Show the account's usage per day and operation, and its plan.
    ---
    get:
      operationId: getUsage
      summary: The account's usage per day (UTC) and operation, with totals, and its plan's monthly limits
      parameters:
        - {name: from, in: query, description: "first day (default: the 1st of to's month, or of this month)",
           schema: {type: string, format: date, pattern: "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}}
        - {name: to, in: query, description: "last day, at most 366 days after from (default: the end of from's
            month)", schema: {type: string, format: date, pattern: "^[0-9]{4}-[0-9]{2}-[0-9]{2}$"}}
      responses:
        "200": {description: The usage and the plan, content: {application/json: {schema: Usage}}}
        "400": BadRequest
        "401": Unauthorized
        "429": TooManyRequests
        "503": Unavailable
    """
    start, end = _period()
    user = g.api_user
    rows = usage.rows(start, end, user.id)
    return jsonify({"from": start.isoformat(), "to": end.isoformat(), "items": [_day_row(row) for row in rows],
                    "totals": amounts(usage.add_up(rows)), "plan": plan_usage(user.id, plans.plan_for(user))})
