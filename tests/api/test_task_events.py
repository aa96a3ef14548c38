"""GET /api/v1/tasks/<id>/events: a real client reads the Server-Sent Events over HTTP while a real worker runs the
job, over the real Redis and database."""

from __future__ import annotations

import time
from typing import Any, Iterator

import pytest
import requests
from redis import Redis

from jobs import process_image as job_module
from ml.runner import EncodedOutput
from studio.tasks import events, lifecycle
from tests.support.events import StreamReader, read_stream, wait_until_streaming
from tests.support.network import free_port
from tests.support.removebg import HttpServer
from tests.support.studio import run_worker, upload

pytestmark = pytest.mark.integration

PHOTO = "rifle2.jpeg"
# (pause before, percent, stage). A step after the reporter's interval (jobs/progress.py) is written by the job's
# thread; one right after another is held back and written by the reporter's own thread: both must reach the
# stream. Each is written before the next comes, so none is replaced by a newer one.
STEPS = [(0.6, 10, "finding the subject"), (0, 40, "finding the subject"), (0.6, 40, "cutting it out"),
         (0.6, 80, "encoding")]
PAUSE_SECONDS = 0.6  # after the last step, so the reporter's thread writes it before the job ends


class Served:
    """An app served over real HTTP, its test client, and a bearer header of an account."""

    def __init__(self, app, headers: dict[str, str]) -> None:
        self.app, self.client, self.headers = app, app.test_client(), headers
        self.server = HttpServer(app)

    def events_url(self, task_id: str) -> str:
        return f"{self.server.url}/api/v1/tasks/{task_id}/events"

    def pending_task(self, photo: bytes) -> str:
        response = upload(self.client, self.headers, photo)
        assert response.status_code == 202, response.get_data(as_text=True)
        return response.get_json()["id"]


@pytest.fixture
def served(make_app, headers) -> Iterator[Served]:
    served = Served(make_app(SERVER_NAME=None), headers)
    yield served
    served.server.close()


def _slow_fake_run(*args: Any, progress, **kwargs: Any) -> list[EncodedOutput]:
    for pause, percent, stage in STEPS:
        time.sleep(pause)
        progress(percent, stage)
    time.sleep(PAUSE_SECONDS)
    return [EncodedOutput("result", b"\x89PNG fake", "image/png", ".png")]


def _recording_writes(monkeypatch) -> list[tuple[int, str | None]]:
    """Record each progress write that reached the task's row, as the reporter made it."""
    written, progressed = [], lifecycle.progressed

    def record(task_id: str, percent: int, stage: str | None = None, **kwargs: Any) -> bool:
        moved = progressed(task_id, percent, stage, **kwargs)
        if moved:
            written.append((percent, stage))
        return moved

    monkeypatch.setattr(lifecycle, "progressed", record)
    return written


def test_the_stream_delivers_every_progress_write_and_the_end_then_closes(served, photo_bytes, monkeypatch):
    task_id = served.pending_task(photo_bytes(PHOTO))
    reader = StreamReader(served.events_url(task_id), served.headers)
    reader.start()
    wait_until_streaming(served.app, task_id)
    monkeypatch.setattr(job_module, "process", _slow_fake_run)
    written = _recording_writes(monkeypatch)

    run_worker(served.app)
    stream = reader.result()

    assert stream.status == 200
    assert stream.headers["Content-Type"].startswith("text/event-stream")
    assert stream.headers["X-Accel-Buffering"] == "no"
    assert stream.retry[0] == events.RETRY_MILLISECONDS
    first, *changes, last = stream.events
    assert (first.event, first.data["status"], first.data["progress"]) == ("progress", "PENDING", 0)
    assert changes[0].data == {"status": "PROCESSING", "progress": 0, "stage": None}  # the job started
    progress = [(event.data["progress"], event.data["stage"]) for event in changes[1:]]
    assert {event.event for event in changes} == {"progress"}
    assert len(written) == len(STEPS) + 1  # the job's own first stage, then the run's
    assert progress == written
    assert (last.event, last.data["status"], last.data["id"]) == ("finished", "COMPLETED", task_id)
    assert last.data["result_url"].endswith(f"/api/v1/tasks/{task_id}/result")
    ids = [int(event.id) for event in stream.events]
    assert ids == sorted(set(ids))  # they only grow


def test_a_resumed_stream_sends_the_current_state_only_when_newer(served, photo_bytes, monkeypatch):
    task_id = served.pending_task(photo_bytes(PHOTO))
    reader = StreamReader(served.events_url(task_id), served.headers)
    reader.start()
    wait_until_streaming(served.app, task_id)
    monkeypatch.setattr(job_module, "process", _slow_fake_run)
    run_worker(served.app)
    seen = reader.result().events

    # Cut off after the second event: the resumed stream sends the task as it is now, the end, and closes.
    resumed = read_stream(served.events_url(task_id), {**served.headers, "Last-Event-ID": seen[1].id})
    assert resumed.status == 200
    assert [(event.event, event.data["status"], event.id) for event in resumed.events] == \
        [("finished", "COMPLETED", seen[-1].id)]
    # Having seen the end: 204, which stops EventSource from reconnecting.
    ended = read_stream(served.events_url(task_id), {**served.headers, "Last-Event-ID": seen[-1].id})
    assert ended.status == 204 and not ended.events
    # A fresh stream of a finished task: its end at once.
    again = read_stream(served.events_url(task_id), served.headers)
    assert [(event.event, event.data["status"]) for event in again.events] == [("finished", "COMPLETED")]


def test_a_resumed_stream_with_nothing_new_waits_for_the_next_change(served, photo_bytes):
    task_id = served.pending_task(photo_bytes(PHOTO))
    reader = StreamReader(served.events_url(task_id), {**served.headers, "Last-Event-ID": "0"})
    reader.start()
    wait_until_streaming(served.app, task_id)
    assert served.client.post(f"/api/v1/tasks/{task_id}/cancel", headers=served.headers).status_code == 200
    stream = reader.result()
    # Nothing new at the start (the client had event 0): the end is the one event.
    assert [(event.event, event.data["status"]) for event in stream.events] == [("finished", "CANCELLED")]
    assert stream.retry == [events.RETRY_MILLISECONDS]


def test_another_account_gets_a_404_and_no_token_a_401(served, photo_bytes, make_user, make_token):
    task_id = served.pending_task(photo_bytes(PHOTO))
    other = make_token(make_user())
    assert read_stream(served.events_url(task_id), other).status == 404
    assert read_stream(served.events_url(task_id), {}).status == 401
    assert read_stream(served.events_url("not-a-task"), served.headers).status == 404


def test_with_every_place_taken_the_stream_is_the_current_state_once(make_app, headers, photo_bytes):
    served = Served(make_app(SERVER_NAME=None, STUDIO_API_MAX_WAITING=0), headers)
    try:
        task_id = served.pending_task(photo_bytes(PHOTO))
        stream = read_stream(served.events_url(task_id), served.headers)
    finally:
        served.server.close()
    assert stream.status == 200
    assert [(event.event, event.data["status"]) for event in stream.events] == [("progress", "PENDING")]
    assert stream.retry == [events.BUSY_RETRY_MILLISECONDS]  # EventSource asks again later, gently


def test_a_quiet_stream_sends_heartbeats_and_closes_at_its_time_limit(served, photo_bytes, monkeypatch):
    monkeypatch.setattr(events, "MAX_STREAM_SECONDS", 1.5)
    monkeypatch.setattr(events, "HEARTBEAT_SECONDS", 0.5)
    task_id = served.pending_task(photo_bytes(PHOTO))
    stream = read_stream(served.events_url(task_id), served.headers)
    assert stream.status == 200
    assert [event.data["status"] for event in stream.events] == ["PENDING"]
    assert "heartbeat" in stream.comments
    # The place was given back: a second stream is served, not turned away with the busy retry.
    assert read_stream(served.events_url(task_id), served.headers).retry == [events.RETRY_MILLISECONDS]


def test_a_real_worker_process_running_the_model_streams_its_stages_to_the_end(stack, photo_bytes):
    response = upload(stack.app.test_client(), stack.headers, photo_bytes(PHOTO))
    assert response.status_code == 202
    task_id = response.get_json()["id"]

    stream = read_stream(f"{stack.base_url}/api/v1/tasks/{task_id}/events", stack.headers)

    assert stream.status == 200
    *changes, last = stream.events
    assert (last.event, last.data["status"]) == ("finished", "COMPLETED"), stack.logs()
    assert all(event.event == "progress" and 0 <= event.data["progress"] <= 99 for event in changes)
    running = [event.data["progress"] for event in changes if event.data["status"] == "PROCESSING"]
    assert running == sorted(running)
    ids = [int(event.id) for event in stream.events]
    assert ids == sorted(set(ids))
    assert last.data["result_url"].startswith(stack.base_url)
    assert requests.get(last.data["result_url"], headers=stack.headers, timeout=30).status_code == 200


def test_with_redis_unreachable_a_job_still_completes_and_the_stream_is_the_state_once(served, photo_bytes,
                                                                                       monkeypatch):
    task_id = served.pending_task(photo_bytes(PHOTO))
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=0.5)
    monkeypatch.setattr(events, "get_redis", lambda app=None: unreachable)
    monkeypatch.setattr(job_module, "process", _slow_fake_run)

    run_worker(served.app)  # announcing each step fails; the job does not

    stream = read_stream(served.events_url(task_id), served.headers)
    assert [(event.event, event.data["status"]) for event in stream.events] == [("finished", "COMPLETED")]
    assert stream.retry == [events.BUSY_RETRY_MILLISECONDS]
    # Its place was given back: with Redis back, streams are served again.
    monkeypatch.undo()
    assert read_stream(served.events_url(task_id), served.headers).retry == [events.RETRY_MILLISECONDS]
