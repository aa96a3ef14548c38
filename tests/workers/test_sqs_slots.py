"""An account's plan concurrency on SQS (studio/sqs_queue.py): its tasks are dealt over that many message groups of
a real FIFO queue (moto's server), so that many of its photos can be in flight at once and no more, while other
accounts' photos are handed out beside them."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image
from redis import Redis

from studio import sqs_queue
from studio.extensions import db
from studio.models import User
from tests.support.sqs import make_queues
from tests.support.studio import upload

pytestmark = pytest.mark.integration

PLANS = {"one": {"concurrency": 1}, "two": {"concurrency": 2}}


@pytest.fixture
def sqs_app(make_app, s3_endpoint, monkeypatch):
    """Return an app whose tasks go to a fresh FIFO queue (with its dead-letter queue), and the queues."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", s3_endpoint)
    queues = make_queues(s3_endpoint, max_receive_count=3, visibility=300)
    app = make_app(STUDIO_QUEUE_BACKEND="sqs", STUDIO_SQS_QUEUE_URL=queues.url, STUDIO_PLANS=PLANS,
                   STUDIO_DEFAULT_PLAN="one")
    return app, queues


@pytest.fixture
def account(sqs_app, make_user, make_token):
    """Return a factory of accounts on a plan, as the bearer headers of each."""
    app, _ = sqs_app

    def make(plan: str) -> dict[str, str]:
        user = make_user()
        with app.app_context():
            db.session.get(User, user.id).plan = plan
            db.session.commit()
        return make_token(user)
    return make


def _photo() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 80, 40)).save(buffer, "PNG")
    return buffer.getvalue()


def send(client, headers: dict[str, str], count: int, **options: str) -> list[str]:
    """Upload photos through the API; return their task ids in upload order."""
    ids = []
    for number in range(count):
        response = upload(client, headers, _photo(), filename=f"p{number}.png", **options)
        assert response.status_code == 202, response.get_data(as_text=True)
        ids.append(response.get_json()["id"])
    return ids


def receivable(queues) -> list[str]:
    """Receive one message at a time, as each worker does, until SQS hands out none; return their tasks' ids (the
    messages stay in flight)."""
    received = []
    while True:
        messages = queues.client.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=1,
                                                 WaitTimeSeconds=0).get("Messages", [])
        if not messages:
            return received
        received += [json.loads(message["Body"])["task_id"] for message in messages]


def test_an_account_has_as_many_photos_in_flight_as_its_plan_allows_and_others_are_not_held_back(
        sqs_app, account):
    app, queues = sqs_app
    client = app.test_client()
    two, one, late = account("two"), account("one"), account("one")
    double = send(client, two, 4)
    single = send(client, one, 3)
    last = send(client, late, 1)

    # Two of the first account's photos, one of the second's, and the photo uploaded last by a third account.
    assert sorted(receivable(queues)) == sorted([double[0], double[1], single[0], last[0]])


def test_a_slot_hands_out_its_next_photo_once_its_photo_is_done_in_upload_order(sqs_app, account):
    app, queues = sqs_app
    client = app.test_client()
    double = send(client, account("two"), 4)
    first = queues.client.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=1)["Messages"][0]
    assert json.loads(first["Body"])["task_id"] == double[0]
    assert receivable(queues) == [double[1]]

    queues.client.delete_message(QueueUrl=queues.url, ReceiptHandle=first["ReceiptHandle"])

    # The freed slot's next photo: the third (dealt round-robin), before the fourth in the slot still busy.
    assert receivable(queues) == [double[2]]


def test_slow_work_has_slots_of_its_own(sqs_app, account):
    app, queues = sqs_app
    client = app.test_client()
    headers = account("one")
    cutouts = send(client, headers, 2)
    upscales = send(client, headers, 2, operation="upscale")

    # One slot per class: a cutout and an upscale in flight at once, never two of either.
    assert sorted(receivable(queues)) == sorted([cutouts[0], upscales[0]])


def test_without_redis_every_task_goes_to_the_first_slot(redis_url):
    dead = Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.5)
    live = Redis.from_url(redis_url)
    assert sqs_queue.next_slot(dead, 7, "quick", 3) == 0
    assert [sqs_queue.next_slot(live, 7, "quick", 3) for _ in range(5)] == [0, 1, 2, 0, 1]
    assert [sqs_queue.next_slot(live, 7, "slow", 3) for _ in range(2)] == [0, 1]
    assert sqs_queue.next_slot(live, 8, "quick", 1) == 0
    live.delete(sqs_queue.SLOT_KEY.format(7, "quick"), sqs_queue.SLOT_KEY.format(7, "slow"))
