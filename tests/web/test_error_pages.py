"""Error pages: JSON for the API and JSON clients, HTML otherwise; a plain 500 page; a database outage is a 503,
never a traceback. (Security headers, CSRF and rate limits: tests/security/.)"""

from __future__ import annotations

import pytest
from sqlalchemy.exc import OperationalError

from studio import create_app
from studio.extensions import db
from tests.support.web import PASSWORD, csrf_token

UNREACHABLE_DATABASE = "postgresql+psycopg2://postgres@127.0.0.1:1/nothing"


def test_not_found_is_json_for_the_api_and_json_clients_html_otherwise(client):
    api = client.get("/api/no-such-thing")
    assert api.status_code == 404 and api.get_json()["error"]["code"] == "not_found"
    asked = client.get("/no-such-page", headers={"Accept": "application/json"})
    assert asked.status_code == 404 and asked.is_json
    page = client.get("/no-such-page", headers={"Accept": "text/html,*/*;q=0.8"})
    assert page.status_code == 404 and page.mimetype == "text/html"
    assert "There is nothing here" in page.get_data(as_text=True)


def test_method_not_allowed_keeps_its_allow_header(client):
    response = client.get("/logout")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]


def test_unhandled_errors_show_a_plain_500_page(postgres_url, redis_url, tmp_path):
    app = create_app({"SQLALCHEMY_DATABASE_URI": postgres_url, "REDIS_URL": redis_url, "SECRET_KEY": "x",
                      "RATELIMIT_ENABLED": False})

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    body = response.get_data(as_text=True)
    assert "Something went wrong" in body
    assert "secret internals" not in body and "Traceback" not in body
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.fixture
def app_without_database(redis_url, tmp_path):
    """Return an app whose PostgreSQL cannot be reached."""
    app = create_app({"TESTING": True, "SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": UNREACHABLE_DATABASE,
                      "REDIS_URL": redis_url, "RATELIMIT_ENABLED": False,
                      "SQLALCHEMY_ENGINE_OPTIONS": {"connect_args": {"connect_timeout": 2}}})
    yield app
    with app.app_context():
        db.engine.dispose()


def test_database_outage_is_a_503_page_not_a_traceback(app_without_database):
    client = app_without_database.test_client()
    token = csrf_token(client, "/login")
    response = client.post("/login", data={"email": "ada@example.com", "password": PASSWORD, "csrf_token": token})
    assert response.status_code == 503
    assert response.headers["Retry-After"]
    body = response.get_data(as_text=True)
    assert "database is unavailable" in body
    assert "Traceback" not in body and "OperationalError" not in body
    assert response.headers["Content-Security-Policy"]


def test_database_outage_for_a_signed_in_session_and_for_json(app_without_database):
    client = app_without_database.test_client()
    with client.session_transaction() as session:
        session["_user_id"] = "1:1"
    page = client.get("/tasks")
    assert page.status_code == 503 and "Temporarily unavailable" in page.get_data(as_text=True)
    api = client.get("/tasks", headers={"Accept": "application/json"})
    assert api.status_code == 503 and api.get_json()["error"]["code"] == "service_unavailable"


def test_database_errors_really_come_from_the_database(app_without_database):
    with app_without_database.app_context():
        with pytest.raises(OperationalError):
            db.session.execute(db.text("select 1"))
