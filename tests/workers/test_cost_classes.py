"""Cost classes: which operations are slow, the queue and the account slots each class gets, and a waiting task's
place in line across the queues. (Real workers serving quick work first: tests/workers/test_quick_before_slow.py.)"""

from __future__ import annotations

import pytest
from PIL import Image
from redis import Redis
from rq.job import Job, JobStatus

from ml.operations import COST_CLASSES, OPERATIONS
from studio import settings
from studio.models import Task
from studio.queue import account_share, cost_class, photo_queues, queue_name, queue_position
from tests.support.images import encoded
from tests.support.studio import load_task, upload

CONFIG = {"STUDIO_QUEUE": "photos", "STUDIO_SLOW_QUEUE": None, "STUDIO_ACCOUNT_CONCURRENCY": 2}


def test_upscale_is_the_one_slow_operation_and_every_declaration_has_a_class() -> None:
    classes = {name: operation.cost_class for name, operation in OPERATIONS.items()}

    assert set(classes.values()) <= set(COST_CLASSES)
    assert [name for name, cost in classes.items() if cost == "slow"] == ["upscale"]


@pytest.mark.parametrize("operation, expected", [("upscale", "photos-slow"), ("remove_background", "photos"),
                                                 ("stylize", "photos"), ("no_such_operation", "photos")])
def test_a_task_goes_on_the_queue_of_its_operations_class(operation: str, expected: str) -> None:
    # An unknown operation fails at once on the quick queue, with the reason.
    assert queue_name(cost_class(Task(operation=operation, user_id=1)), CONFIG) == expected


def test_workers_serve_quick_work_first_and_the_slow_queue_can_be_named() -> None:
    assert photo_queues(CONFIG) == ["photos", "photos-slow"]
    assert photo_queues({**CONFIG, "STUDIO_SLOW_QUEUE": "minutes"}) == ["photos", "minutes"]
    # One queue for both is allowed (the old behaviour): listed once.
    assert photo_queues({**CONFIG, "STUDIO_SLOW_QUEUE": "photos"}) == ["photos"]
    assert settings.from_environment({"STUDIO_SLOW_QUEUE": "minutes"})["STUDIO_SLOW_QUEUE"] == "minutes"
    assert settings.from_environment({})["STUDIO_SLOW_QUEUE"] is None


def test_each_class_has_the_accounts_share_of_slots_of_its_own() -> None:
    quick, slow = (account_share(7, CONFIG, None, cost) for cost in COST_CLASSES)

    assert quick.key != slow.key
    # Quick work keeps the key photos had before the classes, so jobs queued then release the right slots.
    assert quick.key == "account:7"
    assert quick.concurrency == slow.concurrency == 2
    assert account_share(7, CONFIG, 3, "slow").concurrency == 3


def test_uploads_go_on_their_class_queue_and_a_slow_task_counts_the_quick_ones_ahead(
        make_app, make_user, make_token) -> None:
    app = make_app(STUDIO_ACCOUNT_CONCURRENCY=1)
    client, headers = app.test_client(), make_token(make_user())
    small = encoded(_photo(), "JPEG")

    def send(**options: str) -> str:
        response = upload(client, headers, small, filename="small.jpg", **options)
        assert response.status_code == 202, response.get_data(as_text=True)
        return response.get_json()["id"]

    upscales = [send(operation="upscale"), send(operation="upscale")]
    cutouts = [send(), send()]

    connection = Redis.from_url(app.config["REDIS_URL"])
    jobs = {task_id: Job.fetch(task_id, connection=connection) for task_id in [*upscales, *cutouts]}
    quick, slow = photo_queues(app.config)
    assert {jobs[task_id].origin for task_id in upscales} == {slow}
    assert {jobs[task_id].origin for task_id in cutouts} == {quick}
    # One slot per class: the first of each class is queued, the second waits for its account's slot.
    assert [jobs[task_id].get_status() for task_id in [*upscales, *cutouts]] == [
        JobStatus.QUEUED, JobStatus.RATE_LIMITED, JobStatus.QUEUED, JobStatus.RATE_LIMITED]
    with app.app_context():
        positions = [queue_position(load_task(app, task_id)) for task_id in [*upscales, *cutouts]]
    # Workers take the queued cutout first, then the first upscale (uploaded first, but on the slow queue); each
    # held-back job comes after its queue's waiting ones.
    assert positions == [1, 2, 0, 1]


def test_a_task_not_waiting_on_a_queue_has_no_position(app, client, headers) -> None:
    response = upload(client, headers, encoded(_photo(), "JPEG"), filename="small.jpg")
    task_id = response.get_json()["id"]
    Job.fetch(task_id, connection=Redis.from_url(app.config["REDIS_URL"])).delete(remove_from_queue=True)

    with app.app_context():
        assert queue_position(load_task(app, task_id)) is None


def _photo() -> Image.Image:
    return Image.new("RGB", (64, 40), (120, 90, 60))
