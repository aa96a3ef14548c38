"""PostgreSQL restarted under the app and under a job: clean 503s while it is down, full recovery after."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest
from flask import request
from rq.job import Job, JobStatus
from sqlalchemy import text

from studio.extensions import db
from studio.models import User
from studio.queue import get_redis
from tests.support.processes import PostgresCluster, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def restartable(postgres: PostgresCluster) -> Iterator[PostgresCluster]:
    """Return the cluster, started again after the test whatever happened."""
    yield postgres
    try:
        postgres.start()
    except Exception:  # noqa: BLE001 - already running
        pass


def _sign_in(studio) -> None:
    """Give the test client a signed-in session for the account that owns the API token."""
    with studio.app.app_context():
        user = User.query.one()
        identity = user.get_id()
    with studio.client.session_transaction() as session:
        session["_user_id"] = identity
        session["_fresh"] = True


def test_requests_get_a_clean_503_while_the_database_is_down_and_work_again_after(make_studio, restartable):
    studio = make_studio()
    _sign_in(studio)
    # Pooled connections exist before the restart: afterwards each is dead, and pool_pre_ping must replace it.
    assert studio.client.get("/api/v1/tasks", headers=studio.headers).status_code == 200
    assert studio.client.get("/tasks").status_code == 200

    restartable.stop()

    api = studio.client.get("/api/v1/tasks", headers=studio.headers)
    page = studio.client.get("/tasks")
    assert (api.status_code, api.mimetype, api.headers["Retry-After"]) == (503, "application/json", "10")
    assert api.get_json()["error"]["code"] == "service_unavailable"
    assert (page.status_code, page.mimetype) == (503, "text/html")
    for response in (api, page):
        body = response.get_data(as_text=True)
        assert "Traceback" not in body and "psycopg2" not in body and "OperationalError" not in body

    restartable.start()

    assert studio.client.get("/api/v1/tasks", headers=studio.headers).status_code == 200
    assert studio.client.get("/tasks").status_code == 200

    # A restart between two requests: no failed request has flushed the pool, only the pre-ping notices.
    restartable.stop()
    restartable.start()
    assert studio.client.get("/api/v1/tasks", headers=studio.headers).status_code == 200
    assert studio.client.get("/tasks").status_code == 200


@pytest.mark.parametrize("path, mimetype", [("/api/v1/tasks", "application/json"), ("/tasks", "text/html")])
def test_a_request_in_flight_when_the_database_stops_gets_a_clean_503(make_studio, restartable, path, mimetype):
    studio = make_studio()
    in_transaction, release = threading.Event(), threading.Event()

    @studio.app.before_request
    def pause_inside_a_transaction() -> None:
        # Test-only: the request holds a pooled connection in an open transaction, then waits for the test.
        if request.headers.get("X-Pause-In-Transaction") and not release.is_set():
            db.session.execute(text("SELECT 1"))
            in_transaction.set()
            release.wait(30)

    _sign_in(studio)
    responses = []
    client = studio.app.test_client()
    with client.session_transaction() as session, studio.client.session_transaction() as signed_in:
        session.update(signed_in)
    thread = threading.Thread(target=lambda: responses.append(
        client.get(path, headers={**studio.headers, "X-Pause-In-Transaction": "1"})))
    thread.start()
    assert in_transaction.wait(30)

    restartable.stop()  # fast shutdown: the server ends the request's connection under it
    release.set()
    thread.join(30)

    [response] = responses
    assert (response.status_code, response.mimetype, response.headers["Retry-After"]) == (503, mimetype, "10")
    body = response.get_data(as_text=True)
    assert "Traceback" not in body and "psycopg2" not in body and "OperationalError" not in body
    restartable.start()
    assert client.get(path, headers=studio.headers).status_code == 200


@pytest.mark.slow
def test_a_job_caught_by_a_database_restart_is_retried_and_completes(make_studio, restartable, photo):
    studio = make_studio()
    studio.start_worker(STUDIO_FAULT_INJECTION="sleep=2")
    task_id = studio.upload(photo)
    studio.wait_for_status(task_id, "PROCESSING")

    restartable.stop()
    # Every attempt fails while the database is down, and the last one cannot record the failure either: the
    # task stays PROCESSING in a database that RQ no longer has a live job for.
    with studio.app.app_context():
        connection = get_redis()
        wait_until(lambda: Job.fetch(task_id, connection=connection).get_status() == JobStatus.FAILED,
                   "RQ gives up on the job", diagnostics=studio.logs)
    restartable.start()

    task = studio.wait_for_status(task_id, "COMPLETED", reconcile=True)
    assert task.error is None and task.attempts == 2
    assert [path.name for path in studio.result_files()] == [f"{task_id}.png"]
