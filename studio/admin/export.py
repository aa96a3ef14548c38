"""Usage of every account for a month, as CSV for a billing system (docs/admin.md describes the columns)."""

from __future__ import annotations

import csv
import io
import re
from datetime import date, timedelta

from sqlalchemy import select

from studio import plans, usage
from studio.extensions import db
from studio.models import User

MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
COLUMNS = ("date", "account_id", "email", "plan", "operation", "tasks", "completed_tasks", "megapixels_in",
           "megapixels_out", "processing_seconds")
# A cell starting with one of these runs as a formula in a spreadsheet (an email may start with "=" or "+").
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def parse_month(value: str | None) -> date:
    """Return the first day of a YYYY-MM month (this month when empty); ValueError for anything else."""
    if not value:
        return usage.month_start(usage.today())
    match = MONTH.fullmatch(value.strip())
    # Up to 9998: the month after December 9999 is past what a date can hold.
    if not match or not 1 <= int(match.group(2)) <= 12 or not 1970 <= int(match.group(1)) <= 9998:
        raise ValueError("Give the month as YYYY-MM, for example 2026-05.")
    return date(int(match.group(1)), int(match.group(2)), 1)


def month_end(start: date) -> date:
    """Return the last day of the month starting on start."""
    return usage.next_month_start(start) - timedelta(days=1)


def _cell(text: str) -> str:
    """Return text safe to open in a spreadsheet: one that would start a formula gets a leading quote."""
    return "'" + text if text[:1] in FORMULA_STARTS else text


def _megapixels(pixels: int) -> str:
    # Pixels are whole numbers, so six decimals are exact.
    return f"{pixels / usage.PIXELS_PER_MEGAPIXEL:.6f}"


def month_csv(start: date) -> str:
    """Return the month's usage, one line per account, day and operation, sorted by account, day, operation."""
    rows = usage.rows(start, month_end(start))
    accounts = {user.id: user for user in db.session.scalars(
        select(User).where(User.id.in_({row.user_id for row in rows})))}
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(COLUMNS)
    for row in rows:
        account = accounts[row.user_id]
        writer.writerow([row.day.isoformat(), row.user_id, _cell(account.email), plans.plan_for(account).name,
                         row.operation, row.tasks, row.completed_tasks, _megapixels(row.pixels_in),
                         _megapixels(row.pixels_out), f"{row.processing_seconds:.3f}"])
    return buffer.getvalue()


def month_by_account(start: date) -> list[tuple[User, usage.Totals]]:
    """Return each account's totals for the month, the busiest first (accounts without usage left out)."""
    grouped: dict[int, list] = {}
    for row in usage.rows(start, month_end(start)):
        grouped.setdefault(row.user_id, []).append(row)
    accounts = {user.id: user for user in db.session.scalars(select(User).where(User.id.in_(set(grouped))))}
    totals = [(accounts[user_id], usage.add_up(rows)) for user_id, rows in grouped.items()]
    return sorted(totals, key=lambda item: (-item[1].tasks, item[0].email))
