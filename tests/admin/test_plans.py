"""Plans: monthly limits in tasks or megapixels refuse a new task with a 429 that says the limit, what is used and
when it resets (in the API and on the page); a plan's own caps replace the site-wide ones for its accounts."""

from __future__ import annotations

import io
import json
from datetime import datetime, timedelta, timezone

import pytest
from flask import Flask
from rq.job import Job

from studio import create_app
from studio.extensions import db
from studio.models import DailyUsage, User
from studio.queue import get_redis
from studio.settings import from_environment
from studio.usage import next_month_start, today
from tests.support.admin import csrf_token, sign_in
from tests.support.studio import PASSWORD, load_task, run_worker, upload

pytestmark = pytest.mark.integration


@pytest.fixture
def planned(make_app, make_user, make_token):
    """Return a factory of (app, account, bearer) with the given plans; the account is on the default plan."""
    def make(plans: dict, default: str | None = None, **config) -> tuple[Flask, object, dict[str, str]]:
        app = make_app(STUDIO_PLANS=plans, STUDIO_DEFAULT_PLAN=default, **config)
        account = make_user("member@example.com")
        return app, account, make_token(account)
    return make


def _reset_date() -> str:
    resets = next_month_start(today())
    return f"{resets.day} {resets:%B %Y}"


def test_over_the_monthly_tasks_the_api_says_the_limit_the_use_and_the_reset(planned, photo_bytes, fake_run):
    app, account, bearer = planned({"free": {"tasks_per_month": 2}, "pro": {}})
    client = app.test_client()
    first = upload(client, bearer, photo_bytes("boat.jpg")).get_json()["id"]
    run_worker(app)
    assert load_task(app, first).status == "COMPLETED"
    assert upload(client, bearer, photo_bytes("boat.jpg")).status_code == 202  # waiting: it counts already

    refused = upload(client, bearer, photo_bytes("boat.jpg"))
    assert refused.status_code == 429
    error = refused.get_json()["error"]
    resets = next_month_start(today())
    assert error["code"] == "plan_limit_reached"
    assert error["plan_limit"] == {"plan": "free", "limit": "tasks_per_month", "allowed": 2, "used": 2,
                                   "resets_at": f"{resets.isoformat()}T00:00:00+00:00"}
    assert "allows 2 tasks a month" in error["message"] and _reset_date() in error["message"]
    until_reset = datetime(resets.year, resets.month, 1, tzinfo=timezone.utc) - datetime.now(timezone.utc)
    assert abs(int(refused.headers["Retry-After"]) - until_reset.total_seconds()) < 60
    # The document describes the answer (ErrorDetail's plan_limit).
    document = json.loads(client.get("/api/v1/openapi.json").data)  # over the 64 KiB bound of request bodies
    assert "plan_limit" in document["components"]["schemas"]["ErrorDetail"]["properties"]


def test_over_the_monthly_megapixels_the_page_says_so_too(planned, photo_bytes, fake_run):
    # boat.jpg is 0.92 megapixels: one fits in 1.5, two do not.
    app, account, bearer = planned({"small": {"megapixels_per_month": 1.5}})
    client = app.test_client()
    assert upload(client, bearer, photo_bytes("boat.jpg")).status_code == 202
    refused = upload(client, bearer, photo_bytes("boat.jpg"))
    assert refused.status_code == 429
    assert refused.get_json()["error"]["plan_limit"]["limit"] == "megapixels_per_month"

    page = app.test_client()
    assert sign_in(page, account.email).status_code == 302
    form = {"csrf_token": csrf_token(page, "/"), "operation": "remove_background",
            "photo": (io.BytesIO(photo_bytes("boat.jpg")), "boat.jpg")}
    response = page.post("/tasks", data=form, content_type="multipart/form-data")
    assert response.status_code == 429
    text = response.get_data(as_text=True)
    assert "allows 1.50 megapixels a month" in text and f"resets on {_reset_date()}" in text


def test_a_re_run_counts_against_the_limit(planned, photo_bytes, fake_run):
    app, account, bearer = planned({"free": {"tasks_per_month": 1}})
    client = app.test_client()
    task_id = upload(client, bearer, photo_bytes("boat.jpg")).get_json()["id"]
    run_worker(app)
    page = app.test_client()
    sign_in(page, account.email)
    response = page.post(f"/tasks/{task_id}/rerun", data={"csrf_token": csrf_token(page, "/"), "output": "mask"})
    assert response.status_code == 429 and "allows 1 task a month" in response.get_data(as_text=True)


def test_earlier_months_do_not_count(planned, photo_bytes, fake_run):
    app, account, bearer = planned({"free": {"tasks_per_month": 1}})
    last_month = today().replace(day=1) - timedelta(days=1)
    with app.app_context():
        db.session.add(DailyUsage(user_id=account.id, day=last_month, operation="remove_background", tasks=50,
                                  completed_tasks=50, pixels_in=10 ** 9, pixels_out=0, processing_seconds=9.0))
        db.session.commit()
    assert upload(app.test_client(), bearer, photo_bytes("boat.jpg")).status_code == 202


def test_a_plan_sets_the_accounts_unfinished_cap_and_share_of_the_workers(planned, make_user, make_token,
                                                                          photo_bytes):
    app, account, bearer = planned({"basic": {}, "tight": {"max_unfinished_tasks": 1, "concurrency": 3}},
                                   STUDIO_MAX_UNFINISHED_TASKS=100, STUDIO_ACCOUNT_CONCURRENCY=2)
    client = app.test_client()
    with app.app_context():
        db.session.get(User, account.id).plan = "tight"
        db.session.commit()
    task_id = upload(client, bearer, photo_bytes("boat.jpg")).get_json()["id"]
    second = upload(client, bearer, photo_bytes("boat.jpg"))
    assert second.status_code == 429 and second.get_json()["error"]["code"] == "too_many_unfinished_tasks"
    # Others keep the site's settings.
    others = make_token(make_user("other@example.com"))
    other_ids = [upload(client, others, photo_bytes("boat.jpg")).get_json()["id"] for _ in range(2)]
    with app.app_context():
        connection = get_redis()
        assert Job.fetch(task_id, connection=connection).rate_limit_concurrency == 3
        assert Job.fetch(other_ids[0], connection=connection).rate_limit_concurrency == 2


@pytest.mark.parametrize("plans, default, message", [
    ({"free": {"tasks_a_month": 3}}, None, "unknown setting 'tasks_a_month'"),
    ({"free": {"tasks_per_month": -1}}, None, "at least 0"),
    ({"free": {"tasks_per_month": 2.5}}, None, "whole number"),
    ({"free": {"concurrency": 0}}, None, "at least 1"),
    ({"Free Plan": {}}, None, "plan name"),
    ({"free": {}}, "pro", "STUDIO_DEFAULT_PLAN 'pro' is not one of STUDIO_PLANS"),
])
def test_a_mistake_in_the_plans_stops_the_app_with_a_readable_error(plans, default, message):
    with pytest.raises(ValueError, match=message):
        create_app({"TESTING": True, "SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                    "STUDIO_PLANS": plans, "STUDIO_DEFAULT_PLAN": default})


def test_plans_are_read_from_the_environment():
    config = from_environment({"STUDIO_PLANS": '{"free": {"tasks_per_month": 100}, "pro": {}}',
                               "STUDIO_DEFAULT_PLAN": "pro"})
    assert (config["STUDIO_PLANS"], config["STUDIO_DEFAULT_PLAN"]) == (
        {"free": {"tasks_per_month": 100}, "pro": {}}, "pro")
    assert from_environment({})["STUDIO_PLANS"] == {"standard": {}}
    with pytest.raises(ValueError, match="STUDIO_PLANS must be a JSON object"):
        from_environment({"STUDIO_PLANS": "[1, 2]"})


def test_the_account_page_shows_the_months_usage_against_the_plan(planned, photo_bytes, fake_run):
    app, account, bearer = planned({"free": {"tasks_per_month": 10, "megapixels_per_month": 100}})
    client = app.test_client()
    upload(client, bearer, photo_bytes("boat.jpg"))
    run_worker(app)
    page = app.test_client()
    sign_in(page, account.email, PASSWORD)
    text = page.get("/account").get_data(as_text=True)
    assert "Your plan: <strong>free</strong>" in text
    assert "Tasks: 1 of 10" in text and "Megapixels: 0.9 of 100" in text
    assert f'data-label="{today().day}" data-total="1"' in text  # today's bar in the chart
    assert f"Counts start again on {_reset_date()}" in text
    # Each number names its column, for the cards the table becomes on a phone (tests/browser/test_layout_browser.py).
    assert 'class="usage-table"' in text and '<td data-label="Tasks">1</td>' in text
