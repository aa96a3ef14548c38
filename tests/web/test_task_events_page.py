"""The pages' event stream, /tasks/<id>/events: the session's cookie signs it in, as EventSource sends it."""

from __future__ import annotations

import json

from studio.models import TaskStatus
from studio.tasks import events


def _events(body: str) -> list[tuple[str, dict]]:
    found = []
    for block in body.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if "data" in fields:
            found.append((fields["event"], json.loads(fields["data"])))
    return found


def test_a_signed_in_page_streams_its_tasks_events(client, auth, make_user, make_task, monkeypatch):
    monkeypatch.setattr(events, "MAX_STREAM_SECONDS", 0.5)
    user = make_user()
    auth.login()
    running = make_task(user.id, TaskStatus.PROCESSING, progress=40, stage="tile 3 of 8")
    finished = make_task(user.id, TaskStatus.FAILED, error="the model ran out of memory")

    response = client.get(f"/tasks/{running}/events")
    assert response.mimetype == "text/event-stream"
    assert _events(response.get_data(as_text=True)) == [
        ("progress", {"status": "PROCESSING", "progress": 40, "stage": "tile 3 of 8"})]
    [(name, task)] = _events(client.get(f"/tasks/{finished}/events").get_data(as_text=True))
    assert (name, task["status"], task["error"]) == ("finished", "FAILED", "the model ran out of memory")


def test_the_pages_event_stream_needs_a_signed_in_user(client, make_user, make_task):
    task_id = make_task(make_user().id)
    response = client.get(f"/tasks/{task_id}/events")
    assert response.status_code == 302 and "/login" in response.headers["Location"]
