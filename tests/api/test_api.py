"""The JSON API: token exchange, bearer-only authentication, owner isolation, JSON errors and rate limits."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from jobs import process_image as job_module
from ml.runner import EncodedOutput
from tests.support.studio import PASSWORD, load_task, run_worker, upload

pytestmark = pytest.mark.integration


def _complete_with_fake_result(app, monkeypatch) -> None:
    monkeypatch.setattr(job_module, "process",
                        lambda *args, **kwargs: [EncodedOutput("result", b"\x89PNG fake", "image/png", ".png")])
    run_worker(app)


def test_token_flow(app, client, user):
    response = client.post("/api/v1/tokens", json={"email": "ADA@example.com ", "password": PASSWORD,
                                                   "name": "laptop"})
    assert response.status_code == 201
    token = response.get_json()["token"]
    assert response.get_json()["name"] == "laptop"
    listed = client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {token}"})
    assert listed.status_code == 200 and listed.get_json()["items"] == []
    # The scheme is case-insensitive, the token is not.
    assert client.get("/api/v1/tasks", headers={"Authorization": f"bearer {token}"}).status_code == 200
    assert client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {token.upper()}"}).status_code == 401


@pytest.mark.parametrize("body, status", [
    ({"email": "ada@example.com", "password": "wrong password"}, 401),
    ({"email": "nobody@example.com", "password": PASSWORD}, 401),
    ({"email": "ada@example.com"}, 400),
    ({"email": ["ada@example.com"], "password": PASSWORD}, 400),
    ("not an object", 400),
])
def test_token_exchange_refuses_bad_credentials_and_malformed_bodies(client, user, body, status):
    response = client.post("/api/v1/tokens", json=body)
    assert response.status_code == status
    assert set(response.get_json()["error"]) == {"status", "code", "message"}
    assert "token" not in response.get_json()


@pytest.mark.parametrize("headers", [
    {},
    {"Authorization": "Bearer ps_not-a-real-token"},
    {"Authorization": "Basic YWRhOnBhc3N3b3Jk"},
    {"Authorization": "Bearer"},
])
def test_requests_without_a_valid_bearer_token_are_401(client, user, headers):
    response = client.get("/api/v1/tasks", headers=headers)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "unauthorized"
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")


def test_session_cookie_does_not_authenticate_the_api(app, client, user):
    with client.session_transaction() as session:
        # What Flask-Login stores for a signed-in browser.
        session["_user_id"] = user.get_id()
        session["_fresh"] = True
    assert client.get("/tasks").status_code == 200  # the cookie does sign in to the pages
    assert client.get("/api/v1/tasks").status_code == 401


def test_revoked_token_stops_working(app, client, user, headers):
    from studio.auth.service import revoke_api_token
    from studio.extensions import db
    from studio.models import ApiToken, User

    assert client.get("/api/v1/tasks", headers=headers).status_code == 200
    with app.app_context():
        owner = db.session.get(User, user.id)
        revoke_api_token(owner, db.session.query(ApiToken).one().id)
    assert client.get("/api/v1/tasks", headers=headers).status_code == 401


def test_other_accounts_tasks_are_404_on_every_route(app, client, headers, make_user, make_token, photo_bytes,
                                                     monkeypatch):
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    _complete_with_fake_result(app, monkeypatch)
    intruder = make_token(make_user("mallory@example.com"))
    for method, path in (("GET", f"/api/v1/tasks/{task_id}"), ("GET", f"/api/v1/tasks/{task_id}/result"),
                         ("DELETE", f"/api/v1/tasks/{task_id}")):
        response = client.open(path, method=method, headers=intruder)
        assert response.status_code == 404, (method, path)
        assert response.get_json()["error"]["code"] == "not_found"
    assert client.get("/api/v1/tasks", headers=intruder).get_json()["total"] == 0
    assert load_task(app, task_id).status == "COMPLETED"
    assert client.get(f"/api/v1/tasks/{task_id}/result", headers=headers).status_code == 200


@pytest.mark.parametrize("task_id", [str(uuid.uuid4()), "not-a-uuid", "1' OR '1'='1", "..%2f..%2fetc"])
def test_unknown_and_malformed_ids_are_json_404(client, headers, task_id):
    for path in (f"/api/v1/tasks/{task_id}", f"/api/v1/tasks/{task_id}/result"):
        response = client.get(path, headers=headers)
        assert response.status_code == 404 and response.is_json


def test_result_before_completion_is_404(client, headers, photo_bytes):
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    response = client.get(f"/api/v1/tasks/{task_id}/result", headers=headers)
    assert response.status_code == 404 and "no result yet" in response.get_json()["error"]["message"]


def test_delete_removes_the_row_and_both_files(app, client, headers, photo_bytes, monkeypatch):
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    _complete_with_fake_result(app, monkeypatch)
    task = load_task(app, task_id)
    root = Path(app.config["STUDIO_STORAGE_DIR"])
    result = task.outputs["result"]["key"]
    assert (root / task.input_key).is_file() and (root / result).is_file()
    response = client.delete(f"/api/v1/tasks/{task_id}", headers=headers)
    assert response.status_code == 204 and response.data == b""
    assert load_task(app, task_id) is None
    assert not (root / task.input_key).exists() and not (root / result).exists()
    assert client.get(f"/api/v1/tasks/{task_id}", headers=headers).status_code == 404


def test_unknown_route_and_wrong_method_are_json(client, headers):
    missing = client.get("/api/v1/nothing-here", headers=headers)
    assert missing.status_code == 404 and missing.is_json
    wrong = client.put("/api/v1/tasks", headers=headers)
    assert wrong.status_code == 405 and wrong.is_json
    assert {"GET", "POST"} <= set(wrong.headers["Allow"].split(", "))


def test_upload_rate_limit_is_json_429(make_app, make_user, make_token, photo_bytes):
    app = make_app(RATELIMIT_UPLOAD="2 per minute")
    client = app.test_client()
    headers = make_token(make_user())
    statuses = [upload(client, headers, photo_bytes("boat.jpg")).status_code for _ in range(3)]
    assert statuses == [202, 202, 429]
    limited = upload(client, headers, photo_bytes("boat.jpg"))
    assert limited.get_json()["error"]["code"] == "too_many_requests"
    assert "Retry-After" in limited.headers


def test_token_rate_limit(make_app, make_user):
    app = make_app(RATELIMIT_AUTH="2 per minute")
    make_user("ada@example.com")
    client = app.test_client()
    body = {"email": "ada@example.com", "password": "wrong password"}
    assert [client.post("/api/v1/tokens", json=body).status_code for _ in range(3)] == [401, 401, 429]


def test_database_down_is_json_503(make_app, headers):
    app = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg2://postgres@127.0.0.1:1/none")
    response = app.test_client().get("/api/v1/tasks", headers=headers)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "service_unavailable"
    assert response.headers["Retry-After"]
