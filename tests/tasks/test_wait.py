"""GET /api/v1/tasks/<id>?wait=N: the answer comes when the task finishes (long polling), over the real Redis."""

from __future__ import annotations

import threading
import time

import pytest

from jobs import process_image as job_module
from ml.runner import EncodedOutput
from studio import metrics
from studio.queue import get_redis
from studio.tasks.waiting import CHANNEL
from tests.support.studio import run_worker, upload

pytestmark = pytest.mark.integration

PHOTO = "rifle2.jpeg"


class Waiter(threading.Thread):
    """A client waiting on a task in a thread of its own: the response, and how long it took."""

    def __init__(self, client, headers, task_id: str, seconds: int) -> None:
        super().__init__(daemon=True)
        self.request = (client, headers, f"/api/v1/tasks/{task_id}?wait={seconds}")
        self.response, self.took = None, None

    def run(self) -> None:
        client, headers, url = self.request
        started = time.monotonic()
        self.response = client.get(url, headers=headers)
        self.took = time.monotonic() - started


def _pending_task(client, headers, photo_bytes) -> str:
    response = upload(client, headers, photo_bytes(PHOTO))
    assert response.status_code == 202
    return response.get_json()["id"]


def _wait_until_subscribed(app, task_id: str) -> None:
    with app.app_context():
        redis = get_redis()
        for _ in range(500):
            if dict(redis.pubsub_numsub(CHANNEL.format(task_id)))[CHANNEL.format(task_id).encode()]:
                return
            time.sleep(0.01)
    raise AssertionError("the request never started waiting")


def test_a_waiting_request_answers_as_soon_as_the_worker_finishes_the_task(app, client, headers, photo_bytes,
                                                                           monkeypatch):
    task_id = _pending_task(client, headers, photo_bytes)
    waiter = Waiter(app.test_client(), headers, task_id, 20)
    waiter.start()
    _wait_until_subscribed(app, task_id)
    assert waiter.response is None  # still waiting: the task is PENDING

    monkeypatch.setattr(job_module, "process",
                        lambda *args, **kwargs: [EncodedOutput("result", b"\x89PNG fake", "image/png", ".png")])
    run_worker(app)
    waiter.join(30)

    assert waiter.response.status_code == 200
    assert waiter.response.get_json()["status"] == "COMPLETED"
    # Woken by the finish, not by its 20 s deadline (which would also find it COMPLETED).
    assert waiter.took < 15
    # A finished task is answered at once, waiting or not.
    assert client.get(f"/api/v1/tasks/{task_id}?wait=20", headers=headers).get_json()["status"] == "COMPLETED"


def test_a_wait_that_runs_out_answers_with_the_task_as_it_is(client, headers, photo_bytes):
    task_id = _pending_task(client, headers, photo_bytes)
    response = client.get(f"/api/v1/tasks/{task_id}?wait=1", headers=headers)
    assert response.status_code == 200
    assert response.get_json()["status"] == "PENDING"


def test_a_task_deleted_during_the_wait_is_a_404(app, client, headers, photo_bytes):
    task_id = _pending_task(client, headers, photo_bytes)
    waiter = Waiter(app.test_client(), headers, task_id, 2)
    waiter.start()
    _wait_until_subscribed(app, task_id)
    assert client.delete(f"/api/v1/tasks/{task_id}", headers=headers).status_code == 204
    waiter.join(30)
    assert waiter.response.status_code == 404


def test_with_every_waiting_place_taken_the_request_answers_at_once(make_app, make_user, make_token, photo_bytes):
    app = make_app(STUDIO_API_MAX_WAITING=0)
    client = app.test_client()
    headers = make_token(make_user())
    task_id = _pending_task(client, headers, photo_bytes)
    waiter = Waiter(client, headers, task_id, 20)
    waiter.run()
    assert waiter.response.get_json()["status"] == "PENDING"
    assert waiter.took < 15


@pytest.mark.parametrize("value", ["0", "21", "-1", "1.5", "soon", ""])
def test_a_wait_that_is_not_a_whole_number_of_seconds_from_1_to_20_is_a_400(client, headers, photo_bytes, value):
    task_id = _pending_task(client, headers, photo_bytes)
    response = client.get(f"/api/v1/tasks/{task_id}?wait={value}", headers=headers)
    assert response.status_code == 400
    assert "wait must be a whole number from 1 to 20" in response.get_json()["error"]["message"]


def test_a_request_that_waits_is_counted_but_kept_out_of_the_latency_histogram(client, headers, photo_bytes,
                                                                               monkeypatch):
    timed, counted = [], []

    class Recorder:
        def __init__(self, into):
            self.into = into

        def labels(self, endpoint, method, *status):
            self.into.append(endpoint)
            return self

        def observe(self, seconds):
            pass

        def inc(self):
            pass

    monkeypatch.setattr(metrics, "HTTP_REQUEST_SECONDS", Recorder(timed))
    monkeypatch.setattr(metrics, "HTTP_REQUESTS", Recorder(counted))
    task_id = _pending_task(client, headers, photo_bytes)
    client.get(f"/api/v1/tasks/{task_id}?wait=1", headers=headers)
    client.get(f"/api/v1/tasks/{task_id}", headers=headers)
    assert counted == ["api.create_task", "api.get_task", "api.get_task"]
    assert timed == ["api.create_task", "api.get_task"]  # the second read only: the first waited a second
