"""The overview: tasks by status and operation per hour and per day (an SVG chart with its numbers in words and
in a table), the failure rate, the slowest tasks, the storage in use, the queues and what each worker runs."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest

from jobs import process_image as job_module
from ml.runner import EncodedOutput
from studio.extensions import db
from studio.models import Task, User, utcnow
from tests.support.admin import png
from tests.support.studio import run_worker, upload

pytestmark = pytest.mark.integration


def _task(app, user_id: int, status: str, *, age: timedelta = timedelta(0), took: float | None = None,
          operation: str = "remove_background") -> str:
    """Insert a task created `age` ago; a finished one finished now, after running `took` seconds."""
    now = utcnow()
    task = Task(id=str(uuid.uuid4()), user_id=user_id, operation=operation, status=status, model="u2netp",
                options={}, input_key="inputs/x.png", input_content_type="image/png", input_width=10,
                input_height=10, created_at=now - age)
    if took is not None:
        task.started_at, task.finished_at = now - timedelta(seconds=took), now
    with app.app_context():
        db.session.add(task)
        db.session.commit()
        return task.id


def _bar(page: str, chart: str, label: str) -> int:
    """Return the total a chart's bar shows (its data-total), found by its label."""
    section = page[page.index(f'id="{chart}"'):]
    return int(re.search(rf'data-label="{re.escape(label)}" data-total="(\d+)"', section).group(1))


def test_the_charts_count_tasks_by_hour_day_and_status(app, admin_client, user):
    for status in ("COMPLETED", "COMPLETED", "FAILED", "PENDING"):
        _task(app, user.id, status, took=1.0 if status in ("COMPLETED", "FAILED") else None)
    _task(app, user.id, "COMPLETED", age=timedelta(hours=3), took=2.0)
    _task(app, user.id, "CANCELLED", age=timedelta(days=2), operation="mask_stats")
    _task(app, user.id, "COMPLETED", age=timedelta(days=20))  # older than both charts
    with app.app_context():
        created = [task.created_at for task in db.session.query(Task).order_by(Task.created_at.desc())]

    page = admin_client.get("/admin/").get_data(as_text=True)
    now = utcnow()
    # Expected from the rows themselves, so the test holds at any hour (3 hours ago may be yesterday).
    for chart, label, since in (("chart-hourly", "%H:00", timedelta(hours=24)),
                                ("chart-daily", "%d %b", timedelta(days=14))):
        expected: dict[str, int] = {}
        for moment in created:
            if now - moment < since:
                expected[moment.strftime(label)] = expected.get(moment.strftime(label), 0) + 1
        assert len(expected) >= 2
        assert {name: _bar(page, chart, name) for name in expected} == expected
    this_hour = created[0].strftime("%H:00")  # the newest: one of the first four
    # In words for screen readers, per bar and in all, and as a table.
    assert f"<title>{this_hour}: 1 waiting, 2 completed, 1 failed</title>" in page
    assert "6 in all: 1 waiting, 3 completed, 1 failed, 1 cancelled." in page
    assert 'role="img"' in page and "as a table</summary>" in page
    # No inline style anywhere: the CSP would block it.
    assert "style=" not in page
    # Failure rate over 24 hours: 1 failed against 3 completed (the 3-hour-old one included).
    assert re.search(r'id="failure-rate">\s*25\.0%', page)


def test_the_slowest_tasks_and_the_storage_in_use(app, admin_client, user, make_user):
    fast = _task(app, user.id, "COMPLETED", took=3.0)
    slow = _task(app, user.id, "COMPLETED", took=95.0)
    with app.app_context():
        db.session.get(User, user.id).storage_bytes = 3 * 1024 ** 3
        db.session.commit()
    page = admin_client.get("/admin/").get_data(as_text=True)
    slowest = page[page.index('id="slowest-heading"'):]
    assert slowest.index("1.6 min") < slowest.index("3.0 s")
    assert fast not in page and slow not in page  # listed by what they are, not by id
    assert "3.0 GiB" in page


def test_the_queues_and_what_each_worker_is_running(app, client, headers, user, admin_client, photo_bytes,
                                                    monkeypatch):
    seen = []

    def look_at_the_dashboard(*args, **kwargs):
        seen.append(admin_client.get("/admin/overview").get_data(as_text=True))
        return [EncodedOutput("result", png(), "image/png", ".png", 1200)]

    monkeypatch.setattr(job_module, "process", look_at_the_dashboard)
    running = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    waiting = admin_client.get("/admin/overview").get_data(as_text=True)
    assert re.search(r'id="queue-depth">1<', waiting)
    assert "No worker is running" in waiting

    run_worker(app)
    [during] = seen
    workers = during[during.index('id="workers"'):]
    assert running in workers and user.email in workers
    assert 'hx-trigger="load delay:10s"' in during  # it polls itself


def test_a_worker_that_died_is_reported_with_the_task_it_held(app, admin_client):
    from studio import worker_deaths
    from studio.queue import get_redis

    assert "worker-deaths" not in admin_client.get("/admin/overview").get_data(as_text=True)
    with app.app_context():
        worker_deaths.record(get_redis(), "studio-host-photos-0", ["task-it-held"])

    page = admin_client.get("/admin/overview").get_data(as_text=True)
    report = page[page.index('id="worker-deaths"'):]
    assert "1 worker death in the last 24 hours" in report
    assert "studio-host-photos-0" in report and "task-it-held" in report


def test_on_sqs_the_overview_shows_the_queue_waiting_in_flight_and_dead_lettered(
        make_app, admin, s3_endpoint, monkeypatch):
    from studio import sqs_state
    from tests.support.admin import ADMIN, sign_in
    from tests.support.sqs import make_queues

    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", s3_endpoint)
    sqs_state.forget()
    queues = make_queues(s3_endpoint, max_receive_count=3, visibility=300)
    for number in range(3):
        queues.client.send_message(QueueUrl=queues.url, MessageBody=f"{number}", MessageGroupId=f"account-{number}",
                                   MessageDeduplicationId=f"message-{number}")
    queues.client.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=1)  # a worker runs one
    for number in range(2):
        queues.client.send_message(QueueUrl=queues.dead_letter_url, MessageBody="failed", MessageGroupId="account-9",
                                   MessageDeduplicationId=f"dead-{number}")
    browser = make_app(STUDIO_QUEUE_BACKEND="sqs", STUDIO_SQS_QUEUE_URL=queues.url).test_client()
    assert sign_in(browser, ADMIN).status_code == 302

    page = browser.get("/admin/overview").get_data(as_text=True)

    assert re.search(r'id="queue-depth">2<', page)
    assert "1 in flight on SQS" in page
    table = page[page.index('id="sqs-queue"'):page.index("</table>", page.index('id="sqs-queue"'))]
    name, dead = queues.url.rsplit("/", 1)[1], queues.dead_letter_url.rsplit("/", 1)[1]
    cells = re.findall(r"<t[hd][^>]*>\s*([^<]*?)\s*<", table.split("<tbody>")[1])
    assert cells[:5] == [name, "2", "1", "0", "2"]
    assert f"in {dead}" in table
    sqs_state.forget()


def test_on_sqs_a_queue_that_does_not_answer_is_said_on_the_overview(make_app, admin, s3_endpoint, monkeypatch):
    from studio import sqs_state
    from tests.support.admin import ADMIN, sign_in

    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", s3_endpoint)  # a queue that does not exist there
    sqs_state.forget()
    browser = make_app(STUDIO_QUEUE_BACKEND="sqs",
                       STUDIO_SQS_QUEUE_URL=f"{s3_endpoint}/123456789012/no-such-queue.fifo").test_client()
    assert sign_in(browser, ADMIN).status_code == 302

    response = browser.get("/admin/overview")

    assert response.status_code == 200
    assert "SQS cannot be reached: the photo queue is unknown right now." in response.get_data(as_text=True)
    sqs_state.forget()
