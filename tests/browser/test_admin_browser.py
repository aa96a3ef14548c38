"""The admin dashboard in a real browser on the real stack: the overview's chart, retrying a failed task until it
completes on the worker, and disabling an account, with no console errors (CSP violations would show there)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
import requests
from playwright.sync_api import expect

from studio import create_app
from studio.auth import service as account_service
from studio.extensions import db
from studio.models import Task
from tests.support.browser import collect_errors, sign_in
from tests.support.services import TEST_DATABASE_URL, TEST_REDIS_URL, database_of_its_own

ADMIN, MEMBER, PASSWORD = "admin-browser@example.com", "member-browser@example.com", "a long browser passphrase"
PHOTO = "rifle2.jpeg"
PROCESSING_SECONDS = 180


@pytest.fixture
def database(live_server):
    """Return an app on the live server's database, for setting the scene and checking the outcome."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_of_its_own(TEST_DATABASE_URL, "browser"),
                      "REDIS_URL": TEST_REDIS_URL, "SECRET_KEY": "x", "RATELIMIT_ENABLED": False})
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def _status(app, task_id: str) -> str:
    with app.app_context():
        status = db.session.get(Task, task_id).status
        db.session.remove()
        return status


def _wait_for(app, task_id: str, status: str) -> None:
    deadline = time.monotonic() + PROCESSING_SECONDS
    while _status(app, task_id) != status:
        assert time.monotonic() < deadline, f"task {task_id} did not become {status} (it is {_status(app, task_id)})"
        time.sleep(0.5)


def _failed_task(app, live_server: str, token: str, photos_dir: Path) -> str:
    """Process a photo on the live worker, then record it as FAILED the way a last failed attempt leaves it."""
    with open(photos_dir / PHOTO, "rb") as photo:
        answer = requests.post(f"{live_server}/api/v1/tasks", headers={"Authorization": f"Bearer {token}"},
                               files={"image": (PHOTO, photo, "image/jpeg")}, timeout=30)
    assert answer.status_code == 202, answer.text
    task_id = answer.json()["id"]
    _wait_for(app, task_id, "COMPLETED")
    with app.app_context():
        # Test set-up only: nothing in the app writes a status outside the lifecycle.
        task = db.session.get(Task, task_id)
        task.status = "FAILED"
        task.error = "Processing failed after 4 attempts; the error was logged as error-0a1b2c3d."
        task.outputs = {}
        db.session.commit()
        db.session.remove()
    return task_id


@pytest.mark.browser
@pytest.mark.integration
def test_an_administrator_reads_the_chart_retries_a_failed_task_and_disables_an_account(
        live_server, browser, database, photos_dir, screenshots):
    with database.app_context():
        account_service.create_user(ADMIN, PASSWORD, is_admin=True)
        member = account_service.create_user(MEMBER, PASSWORD)
        _, token = account_service.create_api_token(member, "browser test")
        db.session.remove()
    task_id = _failed_task(database, live_server, token, photos_dir)

    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console_errors = collect_errors(page)
    page.on("dialog", lambda dialog: dialog.accept())
    sign_in(page, live_server, ADMIN, PASSWORD)

    # The overview: a chart people read at a glance, drawn by the server.
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Admin").click()
    expect(page.get_by_role("heading", name="Overview")).to_be_visible()
    chart = page.locator("#chart-hourly svg")
    expect(chart).to_be_visible()
    assert chart.bounding_box()["width"] > 300
    expect(page.locator('#chart-daily .chart-bar[data-total="1"]')).to_have_count(1)  # today's one task
    expect(page.locator("#chart-daily rect.series-failed")).to_have_count(1)
    page.screenshot(path=str(screenshots / "admin-01-overview.png"), full_page=True)

    # Tasks: the failed one, retried, runs again on the worker and completes.
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Tasks").click()
    row = page.locator(f'tr.admin-task-row[data-task="{task_id}"]')
    expect(row).to_have_attribute("data-status", "FAILED")
    row.get_by_role("checkbox").check()
    page.screenshot(path=str(screenshots / "admin-02-failed-tasks.png"), full_page=True)
    page.get_by_role("button", name="Retry selected").click()
    expect(page.get_by_text("Retried 1 task.")).to_be_visible()
    _wait_for(database, task_id, "COMPLETED")
    page.goto(live_server + "/admin/tasks?status=COMPLETED")
    expect(page.locator(f'tr.admin-task-row[data-task="{task_id}"]')).to_have_attribute("data-status", "COMPLETED")

    # Accounts: find the member, disable the account.
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Accounts").click()
    page.get_by_label("Email contains").fill("member-browser")
    page.get_by_role("button", name="Search").click()
    page.get_by_role("link", name=MEMBER).click()
    expect(page.get_by_role("heading", name=MEMBER)).to_be_visible()
    page.get_by_role("button", name="Disable the account").click()
    expect(page.get_by_text(f"Disabled {MEMBER}; 0 unfinished tasks cancelled.")).to_be_visible()
    expect(page.get_by_role("button", name="Enable the account")).to_be_visible()
    page.screenshot(path=str(screenshots / "admin-03-account-disabled.png"), full_page=True)

    # The member is out: the token is refused, and signing in says why.
    assert requests.get(f"{live_server}/api/v1/tasks", headers={"Authorization": f"Bearer {token}"},
                        timeout=30).status_code == 401
    other = browser.new_context().new_page()
    sign_in(other, live_server, MEMBER, PASSWORD)
    expect(other.get_by_text("This account is disabled")).to_be_visible()
    other.context.close()

    # Everything done is in the audit log.
    page.get_by_role("navigation", name="Admin").get_by_role("link", name="Audit log").click()
    actions = page.locator(".audit-table tbody tr")
    expect(actions).to_have_count(2)
    expect(actions.nth(0)).to_have_attribute("data-action", "user.disable")
    expect(actions.nth(1)).to_have_attribute("data-action", "task.retry")
    assert [error for error in console_errors if not re.search(r"\b404\b", error)] == []
    context.close()
