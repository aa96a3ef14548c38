"""Paging the dashboard's lists: the page number from the query, clamped, and the arguments its links carry.

A page number is whatever the address bar holds: beyond the last page it shows the last, and anything that is not a
positive whole number shows the first (an unbounded one would overflow PostgreSQL's OFFSET). The links of a
page are built from the arguments the page declares, never from the query as it came: url_for takes keywords of its
own (`_external`, `_scheme`, `_anchor`, ...), which would otherwise let a crafted link point elsewhere.
"""

from __future__ import annotations

import re
from typing import Mapping

from flask_sqlalchemy.pagination import Pagination
from sqlalchemy import Select

from studio.extensions import db

# Past any list the dashboard can hold at 50 a page; keeps OFFSET far inside PostgreSQL's bigint.
MAX_PAGE = 1_000_000
_DIGITS = re.compile(r"[0-9]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def page_number(value: str | None) -> int:
    """Return the page asked for: a whole number from 1 to MAX_PAGE, else 1 (past MAX_PAGE: MAX_PAGE)."""
    text = (value or "").strip()
    if not _DIGITS.fullmatch(text):
        return 1
    digits = text.lstrip("0") or "0"
    # A longer number is past MAX_PAGE anyway, and int() refuses one of thousands of digits.
    return MAX_PAGE if len(digits) > 7 else min(max(int(digits), 1), MAX_PAGE)


def paginate(query: Select, page: int, per_page: int) -> Pagination:
    """Return the page of the query's rows, or its last page when the one asked for is past it."""
    pagination = db.paginate(query, page=page, per_page=per_page, max_per_page=per_page, error_out=False)
    if pagination.page > 1 and pagination.page > pagination.pages:
        pagination = db.paginate(query, page=max(pagination.pages, 1), per_page=per_page, max_per_page=per_page,
                                 error_out=False)
    return pagination


def search_text(value: str | None, limit: int) -> str:
    """Return a search filter's text: without control characters (PostgreSQL refuses NUL), at most limit long."""
    return _CONTROL.sub("", value or "")[:limit]


def link_arguments(values: Mapping[str, str], allowed: tuple[str, ...]) -> dict[str, str]:
    """Return the allowed arguments that have a value, for the page's links (never url_for's own keywords)."""
    return {name: values[name] for name in allowed if values.get(name)}
