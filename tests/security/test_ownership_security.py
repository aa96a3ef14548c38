"""Owners only: every route that takes a task id, page or API, answers 404 to any other account, with every method."""

from __future__ import annotations

import uuid

import pytest
from flask import Flask

from studio.models import TaskStatus
from tests.support.security import TASK_ARGUMENTS, csrf_token, login, methods, route_path, routes, snapshot, task_exists

OWNER, INTRUDER = "owner@example.com", "intruder@example.com"


def task_rules(app: Flask):
    """Return every rule with a task id in its URL, found in the URL map (so a new route cannot be left out)."""
    return [rule for rule in routes(app) if rule.arguments & TASK_ARGUMENTS]


def is_api(rule) -> bool:
    """Return True for the bearer-token API."""
    return rule.rule.startswith("/api/")


@pytest.fixture
def parties(app, make_user, make_token, make_stored_task):
    """Return the owner's task and signed-in clients of the owner and an intruder, for pages and the API."""
    owner, intruder = make_user(OWNER), make_user(INTRUDER)
    pages = {}
    for name in (OWNER, INTRUDER):
        client = app.test_client()
        assert login(client, name).status_code == 302
        pages[name] = client
    return {
        "task_id": make_stored_task(owner.id),
        "owner": owner,
        "pages": pages,
        "bearer": {OWNER: make_token(owner), INTRUDER: make_token(intruder)},
    }


def call(app, parties, who, rule, method, task_id):
    """Call one route as one account: pages with its session and CSRF token, the API with its bearer token only."""
    path = route_path(rule, task_id)
    data = {"model": "u2netp", "output": "mask"}
    if is_api(rule):
        # A fresh client with no cookie: the API must decide on the bearer token alone.
        return app.test_client().open(path, method=method, headers=parties["bearer"][who], data=data)
    client = parties["pages"][who]
    # The CSRF token is sent, so it is ownership, not CSRF protection, that has to refuse the request.
    headers = {"X-CSRFToken": csrf_token(client, "/tasks")}
    return client.open(path, method=method, headers=headers, data=data)


def test_the_task_routes_found_in_the_url_map_include_pages_fragments_files_and_the_api(app):
    endpoints = {rule.endpoint for rule in task_rules(app)}
    assert {"tasks.detail", "tasks.status", "tasks.result", "tasks.input_image", "tasks.rerun", "tasks.delete",
            "api.get_task", "api.task_result", "api.delete_task"} <= endpoints


def test_every_url_argument_of_every_route_is_classified(app):
    # route_path fails on an argument it does not know, e.g. a new <photo_id> or <uuid:task>: whoever adds one has
    # to say here whether it names a task (and is then covered below) or something else.
    for rule in routes(app):
        route_path(rule)


def test_every_task_route_and_method_is_a_404_for_another_account(app, parties):
    task_id, before = parties["task_id"], snapshot(app)
    checked = []
    for rule in task_rules(app):
        for method in methods(rule):
            other = call(app, parties, INTRUDER, rule, method, task_id)
            missing = call(app, parties, INTRUDER, rule, method, str(uuid.uuid4()))
            label = f"{method} {rule.rule}"
            assert other.status_code == 404, f"{label} answered {other.status_code} to another account"
            assert missing.status_code == 404, f"{label} answered {missing.status_code} for a missing task"
            if is_api(rule):
                # Same answer as for a task that does not exist: the API reveals nothing about other accounts.
                assert other.get_json() == missing.get_json(), label
            checked.append(label)
    assert len(checked) >= 9
    # Nothing the intruder did touched the owner's rows or files.
    assert snapshot(app) == before


def test_every_task_route_and_method_works_for_the_owner(app, parties, make_stored_task):
    # The other half of the proof: the same calls are not refused for the owner, so the 404s above mean ownership.
    for rule in task_rules(app):
        for method in methods(rule):
            # Only an unfinished task can be cancelled.
            cancelling = rule.endpoint in ("tasks.cancel", "api.cancel_task")
            task_id = make_stored_task(parties["owner"].id, TaskStatus.PENDING if cancelling else TaskStatus.COMPLETED)
            response = call(app, parties, OWNER, rule, method, task_id)
            # rerun may answer 503 here (no model weights in this test); it found the task before saying so.
            assert response.status_code in (200, 201, 202, 204, 302, 503), \
                f"{method} {rule.rule} answered {response.status_code} to the owner"
            if rule.endpoint in ("tasks.delete", "api.delete_task"):
                assert not task_exists(app, task_id)


def test_task_ids_in_any_spelling_do_not_reach_another_accounts_task(app, parties):
    task_id = parties["task_id"]
    client = parties["pages"][INTRUDER]
    for spelling in (task_id.upper(), task_id.replace("-", ""), "{" + task_id + "}", f"urn:uuid:{task_id}"):
        assert client.get(f"/tasks/{spelling}").status_code == 404, spelling
        assert app.test_client().get(f"/api/v1/tasks/{spelling}",
                                     headers=parties["bearer"][INTRUDER]).status_code == 404, spelling


def test_lists_show_only_the_accounts_own_tasks(app, parties, make_stored_task):
    own = make_stored_task(_user_id(app, INTRUDER), TaskStatus.PENDING)
    owners_task = parties["task_id"]
    page = parties["pages"][INTRUDER].get("/tasks").get_data(as_text=True)
    assert own in page and owners_task not in page
    api = app.test_client().get("/api/v1/tasks?per_page=100", headers=parties["bearer"][INTRUDER]).get_json()
    assert [item["id"] for item in api["items"]] == [own]
    upload_page = parties["pages"][INTRUDER].get("/").get_data(as_text=True)
    assert owners_task not in upload_page


def test_another_accounts_api_token_cannot_be_revoked(app, parties):
    # Revoke routes take a token id: the owner's token id, tried by the intruder, is a 404 and the token still works.
    from studio.extensions import db
    from studio.models import ApiToken

    with app.app_context():
        token_id = db.session.query(ApiToken.id).filter(ApiToken.user_id == parties["owner"].id).scalar()
    client = parties["pages"][INTRUDER]
    response = client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf_token(client, "/account")})
    assert response.status_code == 404
    assert app.test_client().get("/api/v1/tasks", headers=parties["bearer"][OWNER]).status_code == 200


def _user_id(app, email):
    from studio.auth.service import find_user

    with app.app_context():
        return find_user(email).id
