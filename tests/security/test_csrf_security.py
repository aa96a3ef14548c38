"""CSRF: every state-changing page route refuses a form or HTMX post without a valid token (a clear 400, JSON for JSON
clients), the layout hands HTMX the token, and no GET changes state."""

from __future__ import annotations

import re

import pytest
from flask import Flask
from redis import Redis
from rq import Queue

from studio.models import TaskStatus
from tests.support.security import (
    PASSWORD, STATE_CHANGING_METHODS, csrf_token, login, methods, route_path, routes, snapshot, task_exists,
)


def state_changing_page_routes(app: Flask):
    """Return (rule, method) for every POST/PUT/PATCH/DELETE outside the token APIs (the studio's, remove.bg's), from
    the URL map. The token APIs never read the session cookie (tests/api/test_removebg.py checks remove.bg's)."""
    return [(rule, method) for rule in routes(app) if not rule.rule.startswith(("/api/v1/", "/v1.0/"))
            for method in methods(rule) if method in STATE_CHANGING_METHODS]


@pytest.fixture
def admin_with_task(app, make_user, make_token, make_stored_task):
    """Return a signed-in admin client (so the admin-only routes are reachable too) and one of its tasks."""
    admin = make_user("admin@example.com", is_admin=True)
    make_token(admin)
    client = app.test_client()
    assert login(client, "admin@example.com").status_code == 302
    return client, make_stored_task(admin.id)


def test_the_state_changing_page_routes_found_include_the_forms(app):
    endpoints = {rule.endpoint for rule, _ in state_changing_page_routes(app)}
    assert {"auth.login", "auth.register", "auth.logout", "auth.change_password", "auth.create_token",
            "auth.revoke_token", "auth.end_sessions", "tasks.create", "tasks.rerun", "tasks.delete"} <= endpoints


@pytest.mark.parametrize("kind", ["form", "htmx", "wrong token", "token of another session"])
def test_every_state_changing_page_route_refuses_a_request_without_a_valid_token(app, admin_with_task, kind):
    client, task_id = admin_with_task
    headers = {"HX-Request": "true"} if kind == "htmx" else {}
    data = {"email": "admin@example.com", "password": "x", "name": "t", "model": "u2netp"}
    if kind == "wrong token":
        data["csrf_token"] = headers["X-CSRFToken"] = "not-a-token"
    elif kind == "token of another session":
        data["csrf_token"] = headers["X-CSRFToken"] = csrf_token(app.test_client(), "/login")
    before = snapshot(app)
    routes_checked = state_changing_page_routes(app)
    for rule, method in routes_checked:
        response = client.open(route_path(rule, task_id), method=method, data=data, headers=headers)
        assert response.status_code == 400, f"{method} {rule.rule} answered {response.status_code} ({kind})"
        assert b"security token" in response.data, f"{method} {rule.rule} refused for another reason"
    assert len(routes_checked) >= 10
    assert snapshot(app) == before
    assert signed_in(client), "logout without a token must not have signed out"


def test_the_same_requests_with_the_token_go_through(app, admin_with_task):
    # Control: with the token the delete and the sign-out really happen, so the 400s above were CSRF's doing.
    client, task_id = admin_with_task
    token = csrf_token(client, "/tasks")
    assert client.post(f"/tasks/{task_id}/delete", headers={"HX-Request": "true", "X-CSRFToken": token}) \
        .status_code == 302
    assert not task_exists(app, task_id)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 302
    assert not signed_in(client)


def test_the_api_is_exempt_only_because_cookies_do_not_authenticate_it(app, admin_with_task):
    client, task_id = admin_with_task
    for rule in routes(app):
        if not rule.rule.startswith("/api/v1/") or rule.endpoint == "api.create_token":
            continue
        for method in methods(rule):
            response = client.open(route_path(rule, task_id), method=method)
            if rule.endpoint != "api.openapi_document":
                # A signed-in browser's cookie is worth nothing here, so a cross-site request can do nothing.
                assert response.status_code == 401, f"{method} {rule.rule} answered {response.status_code}"
    assert task_exists(app, task_id)


def test_no_get_changes_state(app, admin_with_task, make_token):
    client, task_id = admin_with_task
    bearer = make_token(_admin(app))
    redis = Redis.from_url(app.config["REDIS_URL"])
    queue = Queue(app.config["STUDIO_QUEUE"], connection=redis)
    # A failed job in the registry, so that a GET that requeues ("requeue all" in rq-dashboard did) would show.
    job = queue.enqueue("os.getcwd", job_id=task_id)
    queue.failed_job_registry.add(job, exc_string="boom")
    queue.remove(job)
    before, queued_before = snapshot(app), (queue.count, queue.failed_job_registry.count)
    called = []
    for rule in routes(app):
        if "GET" not in rule.methods:
            continue
        path = route_path(rule, task_id, job_id=task_id)
        for query in ("", "?download=1", "?view=row"):
            headers = bearer if rule.rule.startswith("/api/") else {}
            response = client.get(path + query, headers=headers)
            assert response.status_code < 500, f"GET {path}{query} answered {response.status_code}"
            called.append(rule.endpoint)
    assert {"tasks.detail", "tasks.result", "tasks.input_image", "tasks.status", "api.get_task", "api.task_result",
            "rq_dashboard.requeue_all", "rq_dashboard.queues_overview", "auth.account"} <= set(called)
    assert snapshot(app) == before
    assert (queue.count, queue.failed_job_registry.count) == queued_before
    assert signed_in(client)


def signed_in(client) -> bool:
    """Return True when the client is still signed in."""
    return client.get("/account").status_code == 200


def _admin(app):
    from studio.auth.service import find_user
    from studio.extensions import db

    with app.app_context():
        user = find_user("admin@example.com")
        db.session.expunge(user)
        return user


def test_form_post_without_csrf_token_is_refused(client, make_user):
    make_user("ada@example.com")
    response = client.post("/login", data={"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    with client.session_transaction() as session:
        assert "_user_id" not in session


def test_htmx_post_needs_the_csrf_header(client, make_user, make_stored_task):
    user = make_user("ada@example.com")
    assert login(client, "ada@example.com").status_code == 302
    task_id = make_stored_task(user.id, TaskStatus.PENDING)
    headers = {"HX-Request": "true"}
    assert client.post(f"/tasks/{task_id}/delete", headers=headers).status_code == 400
    assert client.get(f"/tasks/{task_id}").status_code == 200
    headers["X-CSRFToken"] = csrf_token(client, "/tasks")
    assert client.post(f"/tasks/{task_id}/delete", headers=headers).status_code == 302
    assert client.get(f"/tasks/{task_id}").status_code == 404


def test_csrf_error_is_json_for_json_clients(client):
    response = client.post("/login", headers={"Accept": "application/json"})
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "csrf_failed"


def test_base_layout_hands_htmx_the_csrf_token(client):
    html = client.get("/login").get_data(as_text=True)
    assert re.search(r"<body hx-headers='\{&#34;X-CSRFToken&#34;: &#34;[^&]+&#34;\}'>|"
                     r"<body hx-headers='\{\"X-CSRFToken\": \"[^\"]+\"\}'>", html)
