"""Plans: what an account may use in a month, and its own cap on unfinished tasks and share of the workers.

STUDIO_PLANS names the plans, each with any of tasks_per_month, megapixels_per_month (of the work the tasks do: each
counts its operation's work, Operation.work_pixels, fixed on the task when it is created), max_unfinished_tasks and
concurrency; a limit left out is no limit, a cap left out is the site-wide setting (STUDIO_MAX_UNFINISHED_TASKS,
STUDIO_ACCOUNT_CONCURRENCY).
An account has the plan an administrator gave it, else STUDIO_DEFAULT_PLAN. The monthly limits are checked
before a task is created (upload or re-run): the month's finished tasks (studio/usage.py) plus those still waiting
or processing, plus the new one, must fit. Months are calendar months in UTC; over a limit the answer is a 429
that says the limit, what is used and when it resets.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from datetime import date, datetime, time, timedelta, timezone
from typing import Any, Mapping

from flask import Flask, current_app, g
from sqlalchemy import select

from studio import charts, usage
from studio.extensions import db
from studio.models import User
from studio.tasks.uploads import UploadRejected

PLAN_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,39}$")


@dataclass(frozen=True)
class Plan:
    """One plan's limits; None: no monthly limit, or the site-wide cap."""

    name: str
    tasks_per_month: int | None = None
    megapixels_per_month: float | None = None
    max_unfinished_tasks: int | None = None
    concurrency: int | None = None

    def limits(self) -> dict[str, Any]:
        """Return the plan's settings by name, None for those it leaves unset."""
        return {field.name: getattr(self, field.name) for field in fields(self) if field.name != "name"}


LIMIT_FIELDS = tuple(field.name for field in fields(Plan) if field.name != "name")


def parse_plans(setting: Mapping[str, Any]) -> dict[str, Plan]:
    """Return the plans of a STUDIO_PLANS value; raise ValueError, naming the mistake, for a bad one."""
    if not setting:
        raise ValueError("STUDIO_PLANS must name at least one plan")
    plans = {}
    for name, limits in setting.items():
        if not isinstance(name, str) or not PLAN_NAME.match(name):
            raise ValueError(f"STUDIO_PLANS: plan name {name!r} must be 1-40 lower-case letters, digits, - or _")
        if not isinstance(limits, dict):
            raise ValueError(f"STUDIO_PLANS: plan {name} must be a JSON object of limits")
        unknown = sorted(set(limits) - set(LIMIT_FIELDS))
        if unknown:
            raise ValueError(f"STUDIO_PLANS: plan {name} has unknown setting {unknown[0]!r} "
                             f"(known: {', '.join(LIMIT_FIELDS)})")
        plans[name] = Plan(name, **{key: _limit(name, key, value) for key, value in limits.items()})
    return plans


def _limit(plan: str, key: str, value: Any) -> int | float | None:
    if value is None:
        return None
    whole = key != "megapixels_per_month"
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (whole and not isinstance(value, int)):
        raise ValueError(f"STUDIO_PLANS: {plan}.{key} must be a {'whole ' if whole else ''}number or null")
    if value < (1 if key == "concurrency" else 0):
        raise ValueError(f"STUDIO_PLANS: {plan}.{key} must be at least {1 if key == 'concurrency' else 0}")
    return value


def configured_plans(config: Mapping[str, Any] | None = None) -> dict[str, Plan]:
    """Return the configured plans by name, in the order STUDIO_PLANS lists them."""
    config = current_app.config if config is None else config
    return parse_plans(config.get("STUDIO_PLANS") or {"standard": {}})


def default_plan_name(config: Mapping[str, Any] | None = None) -> str:
    """Return the plan of accounts that have none of their own."""
    config = current_app.config if config is None else config
    return config.get("STUDIO_DEFAULT_PLAN") or next(iter(configured_plans(config)))


def plan_for(user: User) -> Plan:
    """Return the account's plan (the default one when its own is not, or no longer, configured)."""
    return plan_named(user.plan)


def plan_named(name: str | None) -> Plan:
    """Return the plan of this name, or the default plan for None or a name no longer configured."""
    plans = configured_plans()
    return plans.get(name or "") or plans[default_plan_name()]


def plan_of(user_id: int) -> Plan:
    """Return the plan of the account with this id, read once per request (or job): an upload asks three times."""
    read = g.setdefault("studio_plans", {})
    if user_id not in read:
        read[user_id] = db.session.scalar(select(User.plan).where(User.id == user_id))
    return plan_named(read[user_id])


def forget(user_id: int) -> None:
    """Drop what plan_of read for the account in this request: its plan has just changed."""
    g.get("studio_plans", {}).pop(user_id, None)


def max_unfinished_tasks(user_id: int) -> int:
    """Return how many unfinished tasks the account may have (0: no cap)."""
    cap = plan_of(user_id).max_unfinished_tasks
    return cap if cap is not None else int(current_app.config.get("STUDIO_MAX_UNFINISHED_TASKS") or 0)


def concurrency(user_id: int) -> int:
    """Return how many of the account's jobs may be queued or running at once (studio.queue.account_share)."""
    share = plan_of(user_id).concurrency
    return share if share is not None else int(current_app.config["STUDIO_ACCOUNT_CONCURRENCY"])


class PlanLimitReached(UploadRejected):
    """A new task would take the account over its plan's monthly limit: a 429 until the month resets."""

    def __init__(self, plan: Plan, limit: str, allowed: float, used: float, resets_on: date) -> None:
        unit = "task" if limit == "tasks_per_month" else "megapixel"
        super().__init__(429, "plan_limit_reached",
                         f"Your plan ({plan.name}) allows {_counted(allowed, unit)} a month and this month you "
                         f"have used {_amount(used)} (photos still processing included), so this photo would go "
                         f"over. The limit resets on {resets_on.day} {resets_on:%B %Y} (UTC).")
        self.plan, self.limit, self.allowed, self.used, self.resets_on = plan, limit, allowed, used, resets_on

    @property
    def resets_at(self) -> datetime:
        """Return the moment the limit resets: midnight UTC on the first day of next month."""
        return datetime.combine(self.resets_on, time(), tzinfo=timezone.utc)

    def retry_after_seconds(self) -> int:
        """Return the seconds until the reset."""
        return max(int((self.resets_at - datetime.now(timezone.utc)).total_seconds()), 1)

    def details(self) -> dict[str, Any]:
        """Return what the API tells a client about the limit."""
        return {"plan": self.plan.name, "limit": self.limit, "allowed": self.allowed, "used": self.used,
                "resets_at": self.resets_at.isoformat()}


def _amount(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.2f}"


def _counted(value: float, unit: str) -> str:
    return f"{_amount(value)} {unit}{'' if value == 1 else 's'}"


def check_monthly_limits(user_id: int, pixels: int, tasks: int = 1) -> None:
    """Refuse (429) new tasks (one, or a batch's) of this much work in all (pixels) that would take the account
    over its plan's month.

    tasks 0: the task is among the account's unfinished ones already (a photo fetched by URL, whose work is known
    only once the worker has it).
    """
    plan = plan_of(user_id)
    if plan.tasks_per_month is None and plan.megapixels_per_month is None:
        return
    month = usage.month_totals(user_id)
    waiting, waiting_pixels = usage.unfinished(user_id)
    resets_on = usage.next_month_start(usage.today())
    used = month.tasks + waiting
    if plan.tasks_per_month is not None and used + tasks > plan.tasks_per_month:
        raise PlanLimitReached(plan, "tasks_per_month", plan.tasks_per_month, used, resets_on)
    megapixels = (month.work_pixels + waiting_pixels) / usage.PIXELS_PER_MEGAPIXEL
    if plan.megapixels_per_month is not None \
            and megapixels + pixels / usage.PIXELS_PER_MEGAPIXEL > plan.megapixels_per_month:
        raise PlanLimitReached(plan, "megapixels_per_month", plan.megapixels_per_month, round(megapixels, 2),
                               resets_on)


def month_summary(user: User) -> dict[str, Any]:
    """Return what the account page shows: this month's usage, per operation and per day (a chart), against
    the plan's limits."""
    today = usage.today()
    start = usage.month_start(today)
    rows = usage.rows(start, today, user.id)
    totals = usage.add_up(rows)
    waiting, waiting_pixels = usage.unfinished(user.id)
    plan = plan_for(user)
    columns = [(f"{day.day}", {"tasks": count}) for day, count in
               usage.tasks_by_day(rows, start, usage.next_month_start(start) - timedelta(days=1))]
    return {
        "plan": plan, "totals": totals, "operations": usage.by_operation(rows), "month": start,
        "resets_on": usage.next_month_start(today), "unfinished": waiting,
        "tasks_used": totals.tasks + waiting,
        "megapixels_used": (totals.work_pixels + waiting_pixels) / usage.PIXELS_PER_MEGAPIXEL,
        "chart": charts.bar_chart(f"Tasks finished per day in {start:%B %Y}", columns, ("tasks",),
                                  {"tasks": "Tasks"}),
    }


def describe(plan: Plan) -> str:
    """Return the plan's limits in words, for people."""
    limits = ((plan.tasks_per_month, "task"), (plan.megapixels_per_month, "megapixel"))
    monthly = [_counted(value, unit) for value, unit in limits if value is not None]
    parts = [f"{' and '.join(monthly)} a month" if monthly else "no monthly limit"]
    if plan.max_unfinished_tasks is not None:
        parts.append(f"at most {plan.max_unfinished_tasks} unfinished tasks")
    if plan.concurrency is not None:
        parts.append(f"{plan.concurrency} processed at a time")
    return ", ".join(parts)


def init_app(app: Flask) -> None:
    """Check the plan settings once, when the app starts (a mistake there stops it with a readable error), and
    give templates the plan of an account and its limits in words."""
    plans = configured_plans(app.config)
    default = default_plan_name(app.config)
    if default not in plans:
        raise ValueError(f"STUDIO_DEFAULT_PLAN {default!r} is not one of STUDIO_PLANS ({', '.join(plans)})")
    app.add_template_global(describe, "plan_limits")
    app.add_template_global(lambda user: plan_for(user).name, "plan_name")
