"""How long a task will take, from what this server measured, and where a waiting one stands in line
(studio/tasks/estimates.py): on tasks rows in PostgreSQL, and on real RQ queues in Redis."""

from __future__ import annotations

import io
import re
import uuid
from datetime import timedelta

import pytest
from PIL import Image

from ml.operations import get_operation
from studio.extensions import db
from studio.models import Task, TaskStatus, utcnow
from studio.tasks import estimates
from tests.support.studio import upload
from tests.support.uploads import sign_in

MEGAPIXEL = 1_000_000


@pytest.fixture(autouse=True)
def fresh_costs():
    estimates.forget_costs()
    yield
    estimates.forget_costs()


def add_task(user_id: int, operation: str, status: TaskStatus, work_pixels: int, seconds: float | None = None,
             progress: int = 0, started_ago: float | None = None) -> Task:
    """Add a task row as the lifecycle leaves it: a finished one ran `seconds`, a running one started a while ago."""
    now = utcnow()
    task = Task(id=str(uuid.uuid4()), user_id=user_id, operation=operation, status=status.value, model="",
                options={}, input_key="inputs/x.png", input_content_type="image/png", work_pixels=work_pixels,
                progress=progress)
    if seconds is not None:
        task.started_at, task.finished_at = now - timedelta(seconds=seconds + 60), now - timedelta(seconds=60)
    if started_ago is not None:
        task.started_at = now - timedelta(seconds=started_ago)
    db.session.add(task)
    db.session.commit()
    return task


def test_an_operations_cost_is_measured_on_its_completed_tasks_here(app, user):
    with app.app_context():
        for work, seconds in ((2 * MEGAPIXEL, 10), (MEGAPIXEL, 6), (MEGAPIXEL, 4)):
            add_task(user.id, "remove_background", TaskStatus.COMPLETED, work, seconds)
        # Neither a failed task nor another operation's says what a cutout costs.
        add_task(user.id, "remove_background", TaskStatus.FAILED, MEGAPIXEL, 300)
        add_task(user.id, "stylize", TaskStatus.COMPLETED, MEGAPIXEL, 100)
        assert estimates.operation_cost("remove_background") == estimates.Cost(20 / 4, 3)
        waiting = add_task(user.id, "remove_background", TaskStatus.PENDING, 3 * MEGAPIXEL)
        assert estimates.seconds_left(waiting) == 15
        running = add_task(user.id, "remove_background", TaskStatus.PROCESSING, 4 * MEGAPIXEL, progress=30,
                           started_ago=8)
        assert estimates.seconds_left(running) == 12
        done = add_task(user.id, "remove_background", TaskStatus.COMPLETED, MEGAPIXEL, 5)
        assert estimates.seconds_left(done) is None


def test_without_enough_history_the_declarations_own_figure_stands(app, user):
    with app.app_context():
        for _ in range(estimates.MIN_HISTORY - 1):
            add_task(user.id, "upscale", TaskStatus.COMPLETED, MEGAPIXEL, 1)
        declared = get_operation("upscale").seconds_per_megapixel
        assert estimates.operation_cost("upscale") == estimates.Cost(declared, 0)
        # A 400x300 photo: the network makes its 4x image, 16 times its pixels.
        task = add_task(user.id, "upscale", TaskStatus.PENDING, 400 * 300 * 16)
        assert estimates.seconds_left(task) == round(declared * 1.92)
        assert estimates.page_costs()["upscale"] == {"seconds_per_megapixel": declared, "work_per_pixel": 16.0}


def test_a_task_slower_than_its_estimate_is_given_what_its_own_pace_says(app, user):
    with app.app_context():
        for _ in range(estimates.MIN_HISTORY):
            add_task(user.id, "detect", TaskStatus.COMPLETED, MEGAPIXEL, 2)
        slow = add_task(user.id, "detect", TaskStatus.PROCESSING, MEGAPIXEL, progress=40, started_ago=20)
        assert estimates.seconds_left(slow) == 30  # 20 s for 40 %: 30 s for the other 60 %


def _small_photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 80, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def test_waiting_tasks_say_their_place_in_line_in_the_api_and_on_their_page(app, client, user, headers):
    # No worker runs: the account's share (2) is queued, the third is held back behind them by RQ's limit.
    ids = [upload(client, headers, _small_photo(), filename=f"p{index}.png").get_json()["id"] for index in range(3)]
    bodies = [client.get(f"/api/v1/tasks/{task_id}", headers=headers).get_json() for task_id in ids]
    assert [body["queue_position"] for body in bodies] == [1, 2, 3]
    assert all(body["status"] == "PENDING" and body["estimated_seconds_left"] >= 1 for body in bodies)

    client.delete(f"/api/v1/tasks/{ids[0]}", headers=headers)  # the first leaves the line: the others move up
    assert [client.get(f"/api/v1/tasks/{task_id}", headers=headers).get_json()["queue_position"]
            for task_id in ids[1:]] == [1, 2]

    sign_in(client, user.email)
    page = client.get(f"/tasks/{ids[2]}/status").get_data(as_text=True)
    assert re.search(r"2nd in line · then about \d+ s of work", page), page


@pytest.mark.parametrize(("seconds", "text"), [(7, "7 s"), (12, "10 s"), (44, "45 s"), (89, "1 min"),
                                               (200, "3 min"), (3600, "1 h"), (4500, "1 h 15 min")])
def test_durations_read_as_people_say_them(seconds, text):
    assert estimates.duration_text(seconds) == text


@pytest.mark.parametrize(("number", "text"), [(1, "1st"), (2, "2nd"), (3, "3rd"), (4, "4th"), (11, "11th"),
                                              (12, "12th"), (13, "13th"), (21, "21st"), (102, "102nd")])
def test_places_in_line_read_as_ordinals(number, text):
    assert estimates.ordinal(number) == text


def test_on_sqs_the_place_in_line_is_the_pending_tasks_created_before(
        make_app, make_user, make_token, s3_endpoint, monkeypatch):
    from tests.support.sqs import make_queues

    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", s3_endpoint)
    queues = make_queues(s3_endpoint, max_receive_count=3, visibility=300)
    app = make_app(STUDIO_QUEUE_BACKEND="sqs", STUDIO_SQS_QUEUE_URL=queues.url)
    client = app.test_client()
    first, second = (make_token(make_user()) for _ in range(2))
    ids = [upload(client, first, _small_photo(), filename=f"p{index}.png").get_json()["id"] for index in range(2)]
    # An upscale (slow work) and another account's photo wait in the same line: one FIFO queue carries both.
    ids.append(upload(client, first, _small_photo(), operation="upscale").get_json()["id"])
    ids.append(upload(client, second, _small_photo()).get_json()["id"])
    assert queues.count(queues.url) == 4

    owners = {**{task_id: first for task_id in ids[:3]}, ids[3]: second}

    def positions(task_ids: list[str]) -> list[int | None]:
        return [client.get(f"/api/v1/tasks/{task_id}", headers=owners[task_id]).get_json()["queue_position"]
                for task_id in task_ids]

    assert positions(ids) == [1, 2, 3, 4]

    with app.app_context():  # a worker started the first: it leaves the line
        db.session.get(Task, ids[0]).status = TaskStatus.PROCESSING.value
        db.session.commit()
    assert client.delete(f"/api/v1/tasks/{ids[1]}", headers=first).status_code == 204  # the second was cancelled
    assert positions([ids[0], *ids[2:]]) == [None, 1, 2]
