"""Usage per account, day and operation: counted once per task whatever RQ retried, kept when tasks are deleted,
served at GET /api/v1/usage and exported as CSV for a billing system."""

from __future__ import annotations

import csv
import io
import json
from datetime import timedelta

import pytest
from openapi_schema_validator import OAS31Validator

from studio.models import utcnow
from studio.tasks.service import delete_tasks_created_before
from studio.usage import today
from tests.support.admin import ADMIN, OUTPUT_SIZE, audit_entries, fake_run_failures, post, usage_rows
from tests.support.studio import load_task, run_worker, upload

pytestmark = pytest.mark.integration


def _completed(app, client, headers, photo_bytes, name: str = "boat.jpg") -> str:
    task_id = upload(client, headers, photo_bytes(name)).get_json()["id"]
    run_worker(app)
    assert load_task(app, task_id).status == "COMPLETED"
    return task_id


def test_a_job_that_failed_twice_then_completed_counts_one_task(app, client, headers, user, photo_bytes, fake_run):
    fake_run_failures.extend([ConnectionError("storage timed out"), RuntimeError("worker hiccup")])
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    run_worker(app)

    task = load_task(app, task_id)
    assert (task.status, task.attempts, len(fake_run)) == ("COMPLETED", 3, 3)
    [row] = usage_rows(app, user.id)
    assert (row.day, row.operation, row.tasks, row.completed_tasks) == (today(), "remove_background", 1, 1)
    assert row.pixels_in == task.input_width * task.input_height > 0
    assert row.pixels_out == OUTPUT_SIZE[0] * OUTPUT_SIZE[1]
    # The seconds of the attempt that completed, not of the three together.
    assert row.processing_seconds == pytest.approx((task.finished_at - task.started_at).total_seconds())


def test_tasks_of_a_day_add_up_in_one_row_per_operation(app, client, headers, user, photo_bytes, fake_run):
    tasks = [load_task(app, _completed(app, client, headers, photo_bytes, name)) for name in ("boat.jpg", "horse.jpg")]
    fake_run_failures.extend([RuntimeError("down")] * 3)
    failed = load_task(app, _failed(app, client, headers, photo_bytes))
    [row] = usage_rows(app, user.id)
    assert (row.tasks, row.completed_tasks) == (3, 2)
    assert row.pixels_in == sum(task.input_width * task.input_height for task in [*tasks, failed])
    assert row.pixels_out == 2 * OUTPUT_SIZE[0] * OUTPUT_SIZE[1]


def _failed(app, client, headers, photo_bytes) -> str:
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    run_worker(app)
    assert load_task(app, task_id).status == "FAILED"
    return task_id


def test_usage_stays_when_the_owner_or_retention_deletes_the_tasks(app, client, headers, user, photo_bytes,
                                                                   fake_run):
    kept_by_owner = _completed(app, client, headers, photo_bytes)
    _completed(app, client, headers, photo_bytes, "horse.jpg")
    before = [(row.tasks, row.pixels_in, row.pixels_out, row.processing_seconds) for row in usage_rows(app)]

    assert client.delete(f"/api/v1/tasks/{kept_by_owner}", headers=headers).status_code == 204
    with app.app_context():
        assert delete_tasks_created_before(utcnow() + timedelta(days=1)) == 1
    assert client.get("/api/v1/tasks", headers=headers).get_json()["total"] == 0
    after = [(row.tasks, row.pixels_in, row.pixels_out, row.processing_seconds) for row in usage_rows(app)]
    assert after == before and before[0][0] == 2
    assert client.get("/api/v1/usage", headers=headers).get_json()["totals"]["tasks"] == 2


def _validate(client, response, path: str = "/usage", status: str = "200") -> None:
    document = json.loads(client.get("/api/v1/openapi.json").get_data())
    answer = document["paths"]["/api/v1" + path]["get"]["responses"][status]
    if "$ref" in answer:
        answer = document["components"]["responses"][answer["$ref"].rsplit("/", 1)[-1]]
    schema = {**answer["content"]["application/json"]["schema"], "components": document["components"]}
    OAS31Validator(schema).validate(response.get_json())


def test_the_usage_api_answers_per_day_and_operation_with_the_plan(app, client, headers, photo_bytes, fake_run):
    task = load_task(app, _completed(app, client, headers, photo_bytes))
    response = client.get("/api/v1/usage", headers=headers)
    assert response.status_code == 200
    _validate(client, response)
    body = response.get_json()
    start = today().replace(day=1)
    assert body["from"] == start.isoformat() and body["to"] >= today().isoformat()
    [item] = body["items"]
    megapixels_in = task.input_width * task.input_height / 1e6
    seconds = (task.finished_at - task.started_at).total_seconds()
    assert item == {"date": today().isoformat(), "operation": "remove_background", "tasks": 1, "completed_tasks": 1,
                    "megapixels_in": pytest.approx(megapixels_in),
                    "megapixels_out": pytest.approx(OUTPUT_SIZE[0] * OUTPUT_SIZE[1] / 1e6),
                    "processing_seconds": pytest.approx(seconds, abs=0.001)}
    assert body["totals"]["tasks"] == 1
    assert body["plan"]["name"] == "standard" and body["plan"]["tasks_per_month"] is None
    assert body["plan"]["tasks_this_month"] == 1 and body["plan"]["unfinished_tasks"] == 0

    yesterday = today() - timedelta(days=1)
    earlier = client.get(f"/api/v1/usage?from={yesterday - timedelta(days=40)}&to={yesterday}", headers=headers)
    _validate(client, earlier)
    earlier = earlier.get_json()
    assert earlier["items"] == [] and earlier["totals"]["tasks"] == 0


@pytest.mark.parametrize("query", ["from=2026-13-01", "from=yesterday", "to=2026-02-30",
                                   "from=2026-05-02&to=2026-05-01", "from=2024-01-01&to=2025-12-31"])
def test_the_usage_api_refuses_bad_periods(client, headers, query):
    response = client.get(f"/api/v1/usage?{query}", headers=headers)
    assert response.status_code == 400, query
    assert response.get_json()["error"]["code"] == "bad_request"


def test_the_usage_api_needs_a_token(client):
    assert client.get("/api/v1/usage").status_code == 401


def test_the_monthly_csv_for_billing_lists_every_account_and_is_audited(
        app, client, headers, user, make_user, make_token, admin_client, photo_bytes, fake_run):
    task = load_task(app, _completed(app, client, headers, photo_bytes))
    other = make_user("=other@example.com")  # a spreadsheet would run this as a formula
    _completed(app, client, make_token(other), photo_bytes, "horse.jpg")

    page = admin_client.get("/admin/usage").get_data(as_text=True)
    assert user.email in page and "=other@example.com" in page
    month = today().strftime("%Y-%m")
    response = post(admin_client, "/admin/usage.csv", {"month": month})
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert f'filename="usage-{month}.csv"' in response.headers["Content-Disposition"]
    lines = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [line["email"] for line in lines] == [user.email, "'=other@example.com"]
    first = lines[0]
    assert (first["date"], first["account_id"], first["plan"], first["operation"], first["tasks"],
            first["completed_tasks"]) == (today().isoformat(), str(user.id), "standard", "remove_background", "1", "1")
    assert first["megapixels_in"] == f"{task.input_width * task.input_height / 1e6:.6f}"
    assert first["megapixels_out"] == f"{OUTPUT_SIZE[0] * OUTPUT_SIZE[1] / 1e6:.6f}"
    [entry] = audit_entries(app)
    assert (entry.action, entry.actor_email, entry.detail) == ("usage.export", ADMIN, f"{month}: 2 lines")

    empty = post(admin_client, "/admin/usage.csv", {"month": "2001-01"}).get_data(as_text=True)
    assert empty.splitlines() == ["date,account_id,email,plan,operation,tasks,completed_tasks,megapixels_in,"
                                  "megapixels_out,processing_seconds"]
    assert post(admin_client, "/admin/usage.csv", {"month": "2001-13"}).status_code == 302


def test_the_command_line_exports_the_same_csv(app, client, headers, admin_client, photo_bytes, fake_run, tmp_path):
    _completed(app, client, headers, photo_bytes)
    month = today().strftime("%Y-%m")
    from_page = post(admin_client, "/admin/usage.csv", {"month": month}).get_data(as_text=True)
    output = tmp_path / "usage.csv"
    result = app.test_cli_runner().invoke(args=["admin", "usage-csv", "--month", month, "--output", str(output)])
    assert result.exit_code == 0, result.output
    assert output.read_bytes().decode() == from_page
    assert [entry.actor_email for entry in audit_entries(app)] == [ADMIN, "command line"]
    bad = app.test_cli_runner().invoke(args=["admin", "usage-csv", "--month", "May"])
    assert bad.exit_code != 0 and "YYYY-MM" in bad.output
