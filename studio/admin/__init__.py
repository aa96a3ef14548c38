"""The admin dashboard at /admin (rq-dashboard stays at /admin/rq) and `flask admin usage-csv`."""

from __future__ import annotations

import sys

import click
from flask import Flask

from studio import plans
from studio.admin import export, service
from studio.admin.views import bp


@bp.cli.command("usage-csv")
@click.option("--month", default="", help="YYYY-MM (default: this month, UTC)")
@click.option("--output", type=click.Path(dir_okay=False, writable=True), help="write here instead of stdout")
def usage_csv_command(month: str, output: str | None) -> None:
    """Print every account's usage in a month as CSV, for a billing system (recorded in the audit log)."""
    try:
        start = export.parse_month(month)
    except ValueError as error:
        raise click.BadParameter(str(error), param_hint="--month") from None
    body = service.export_usage(None, start)
    if output:
        with open(output, "w", encoding="utf-8", newline="") as handle:
            handle.write(body)
    else:
        sys.stdout.write(body)


def init_app(app: Flask) -> None:
    """Check the plan settings and mount the dashboard."""
    plans.init_app(app)
    app.register_blueprint(bp)


__all__ = ["bp", "init_app"]
