"""Task event streams under gunicorn as deployed (deploy/gunicorn.conf.py: gthread, 4 threads a process): streams
take at most STUDIO_API_MAX_WAITING threads, the rest still serve, and a burst worker's job reaches every stream."""

from __future__ import annotations

import io

import pytest
import requests
from flask import Flask

from studio import create_app, settings
from studio.auth import service as account_service
from studio.extensions import db
from tests.support.events import StreamReader, read_stream, wait_until_streaming
from tests.support.servers import Gunicorn, run_burst_worker, small_model_dir, studio_environment

pytestmark = pytest.mark.integration


def _token(env: dict[str, str]) -> tuple[dict[str, str], Flask]:
    """Return the bearer header of a new account, and an app on the same database and Redis."""
    app = create_app(settings.from_environment(env))
    with app.app_context():
        db.create_all()  # the same SQLite file as gunicorn's
        user = account_service.create_user("ada@example.com", "correct horse battery")
        _, token = account_service.create_api_token(user, "tests")
    return {"Authorization": f"Bearer {token}"}, app


def test_streams_hold_only_their_places_and_all_see_the_end(redis_connection, tmp_path, photo_bytes) -> None:
    env = studio_environment(tmp_path, STUDIO_QUEUE="events-test", STUDIO_API_MAX_WAITING="2",
                             STUDIO_DEFAULT_MODEL="u2netp", STUDIO_MODEL_DIR=str(small_model_dir(tmp_path)))
    gunicorn = Gunicorn(env, tmp_path / "gunicorn.log", "--workers", "1")
    readers = []
    try:
        gunicorn.wait_until_serving()
        headers, app = _token(env)
        created = requests.post(gunicorn.url("/api/v1/tasks"), headers=headers, timeout=30,
                                files={"image": ("photo.jpg", io.BytesIO(photo_bytes("boat.jpg")), "image/jpeg")})
        assert created.status_code == 202, created.text
        task_id = created.json()["id"]
        readers = [StreamReader(gunicorn.url(f"/api/v1/tasks/{task_id}/events"), headers) for _ in range(2)]
        for reader in readers:
            reader.start()
        wait_until_streaming(app, task_id, subscribers=2)

        # Both places taken: a third stream is the task as it is, at once; the other threads still serve.
        third = read_stream(gunicorn.url(f"/api/v1/tasks/{task_id}/events"), headers)
        assert [event.data["status"] for event in third.events] == ["PENDING"] and third.retry == [10000]
        assert gunicorn.get("/livez")[0] == 200

        worker = run_burst_worker(env, tmp_path, "events-test")
        assert worker.returncode == 0, worker.stderr[-3000:]
        streams = [reader.result() for reader in readers]
    finally:
        gunicorn.stop()
    for stream in streams:
        assert stream.status == 200 and stream.headers["X-Accel-Buffering"] == "no"
        assert [event.event for event in stream.events][-1] == "finished", gunicorn.output()[-3000:]
        assert stream.events[-1].data["status"] == "COMPLETED"
        assert any(event.data.get("stage") for event in stream.events[:-1])  # the worker's stages came live
