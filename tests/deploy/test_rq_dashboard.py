"""rq-dashboard at /admin/rq: admins only (everyone else 404), read-only, on the app's Redis."""

from __future__ import annotations

import base64
import hashlib
import re

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue

from studio.dashboard import INLINE_SCRIPT
from studio.extensions import db
from studio.models import User
from tests.support.deploy import make_app

pytestmark = pytest.mark.integration


@pytest.fixture
def app(tmp_path, redis_connection) -> Flask:
    """Return an app on a fresh SQLite database and the emptied test Redis."""
    return make_app(tmp_path)


def signed_in_client(app: Flask, *, is_admin: bool) -> FlaskClient:
    """Return a client whose session belongs to a new account."""
    with app.app_context():
        user = User(email=f"{'admin' if is_admin else 'user'}@example.com", password_hash="unused", is_admin=is_admin)
        db.session.add(user)
        db.session.commit()
        identity = user.get_id()
    client = app.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = identity
        session["_fresh"] = True
    return client


DASHBOARD_PATHS = ["/admin/rq/", "/admin/rq/0/view/workers", "/admin/rq/0/data/queues.json"]


@pytest.mark.parametrize("path", DASHBOARD_PATHS)
def test_the_dashboard_is_a_404_for_anonymous_visitors(app: Flask, path: str) -> None:
    assert app.test_client().get(path).status_code == 404


@pytest.mark.parametrize("path", DASHBOARD_PATHS)
def test_the_dashboard_is_a_404_for_accounts_that_are_not_admins(app: Flask, path: str) -> None:
    assert signed_in_client(app, is_admin=False).get(path).status_code == 404


def test_admins_see_the_queues_and_jobs_of_the_apps_redis(app: Flask, redis_connection) -> None:
    job = Queue("default", connection=redis_connection).enqueue("os.getcwd")
    client = signed_in_client(app, is_admin=True)

    page = client.get("/admin/rq/")
    queues = client.get("/admin/rq/0/data/queues.json").get_json()["queues"]
    details = client.get(f"/admin/rq/0/data/job/{job.id}.json")

    assert page.status_code == 200
    assert [(queue["name"], queue["count"]) for queue in queues] == [("default", 1)]
    assert details.get_json()["id"] == job.id


def test_unknown_jobs_and_other_redis_instances_are_404s(app: Flask) -> None:
    client = signed_in_client(app, is_admin=True)

    assert client.get("/admin/rq/0/data/job/no-such-job.json").status_code == 404
    assert client.get("/admin/rq/0/view/job/no-such-job").status_code == 404
    assert client.get("/admin/rq/1/view/queues").status_code == 404


def test_the_dashboard_cannot_change_the_queue(app: Flask, redis_connection) -> None:
    queue = Queue("default", connection=redis_connection)
    job = queue.enqueue("os.getcwd")
    client = signed_in_client(app, is_admin=True)

    emptied = client.post("/admin/rq/queue/default/queued/empty")
    deleted = client.post(f"/admin/rq/job/{job.id}/delete")

    assert emptied.status_code == 400
    assert deleted.status_code == 400
    assert queue.job_ids == [job.id]


def test_dashboard_pages_allow_exactly_their_own_inline_script(app: Flask) -> None:
    client = signed_in_client(app, is_admin=True)

    page = client.get("/admin/rq/")
    other = client.get("/login")

    policy = page.headers["Content-Security-Policy"]
    scripts = INLINE_SCRIPT.findall(page.get_data(as_text=True))
    assert scripts
    for script in scripts:
        digest = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
        assert f"'sha256-{digest}'" in policy
    assert "'unsafe-inline'" not in policy
    assert re.search(r"script-src 'self';", other.headers["Content-Security-Policy"])


def test_every_dashboard_page_leads_back_to_the_studio(app: Flask) -> None:
    client = signed_in_client(app, is_admin=True)
    for path in ("/admin/rq/", "/admin/rq/0/view/workers", "/admin/rq/0/view/jobs"):
        page = client.get(path).get_data(as_text=True)
        assert '<a href="/admin/" class="nav-link" id="back-to-studio">' in page, path
        # Its own navigation is still there.
        assert "/admin/rq/0/view/queues" in page
