"""Security headers, CSRF, rate limits, proxies and error pages."""

from __future__ import annotations

import re

import pytest
from sqlalchemy.exc import OperationalError

from studio import create_app
from studio.extensions import db, limiter
from studio.security import content_security_policy, limiter_storage_uri
from tests.support.web import PASSWORD, csrf_token, make_app

UNREACHABLE_DATABASE = "postgresql+psycopg2://postgres@127.0.0.1:1/nothing"


def _directives(policy: str) -> dict[str, str]:
    return dict(part.strip().split(" ", 1) for part in policy.split(";"))


@pytest.mark.parametrize("path", ["/", "/login", "/static/vendor/htmx.min.js", "/no-such-page", "/api/no-such-thing"])
def test_every_response_carries_the_security_headers(client, path):
    response = client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    policy = _directives(response.headers["Content-Security-Policy"])
    assert policy["script-src"] == "'self'"
    assert policy["style-src"] == "'self'"
    assert policy["frame-ancestors"] == "'none'"
    assert policy["img-src"].split() == ["'self'", "data:", "blob:"]


def test_pages_are_not_cached_but_static_files_may_be(client):
    assert client.get("/login").headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/static/css/studio.css").headers.get("Cache-Control", "")


def test_csp_allows_images_from_the_s3_endpoint():
    policy = _directives(content_security_policy({"STUDIO_S3_BUCKET": "photos",
                                                  "STUDIO_S3_ENDPOINT_URL": "http://minio.local:9000/base"}))
    assert policy["img-src"].split() == ["'self'", "data:", "blob:", "http://minio.local:9000"]
    aws = _directives(content_security_policy({"STUDIO_S3_BUCKET": "photos", "STUDIO_S3_ENDPOINT_URL": None}))
    assert aws["img-src"].split()[-1] == "https:"
    local = _directives(content_security_policy({"STUDIO_S3_BUCKET": None, "STUDIO_S3_ENDPOINT_URL": "http://x:1"}))
    assert "http://x:1" not in local["img-src"]


def test_limiter_storage_uri_spells_unix_sockets_the_limits_way():
    assert limiter_storage_uri("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert limiter_storage_uri("unix:///tmp/redis.sock?db=2") == "redis+unix:///tmp/redis.sock?db=2"


INLINE_CODE = [
    re.compile(r"<script(?![^>]*\bsrc=)[^>]*>", re.I),
    re.compile(r"\sstyle\s*=", re.I),
    re.compile(r"<style", re.I),
    re.compile(r"\son[a-z]+\s*=", re.I),
    re.compile(r"javascript:", re.I),
]


def test_pages_have_no_inline_script_or_style(client, auth, make_user, make_task):
    for path in ("/", "/login", "/register"):
        _assert_no_inline_code(client, path)
    user = make_user()
    auth.login()
    task_id = make_task(user.id)
    for path in ("/", "/tasks", "/account", f"/tasks/{task_id}", f"/tasks/{task_id}/status", "/no-such-page"):
        _assert_no_inline_code(client, path)


def _assert_no_inline_code(client, path):
    html = client.get(path).get_data(as_text=True)
    for pattern in INLINE_CODE:
        assert not pattern.search(html), f"{path} has inline code matching {pattern.pattern}"


def test_form_post_without_csrf_token_is_refused(client, make_user):
    make_user()
    response = client.post("/login", data={"email": "ada@example.com", "password": PASSWORD})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    with client.session_transaction() as session:
        assert "_user_id" not in session


def test_htmx_post_needs_the_csrf_header(client, auth, make_user, make_task):
    user = make_user()
    auth.login()
    task_id = make_task(user.id)
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


@pytest.fixture
def limited_app(postgres_url, redis_url, tmp_path):
    """Return a function building an app with rate limits on and the auth tier at 2 per minute."""
    apps = []
    # Flask-Limiter is one module-level object and keeps the first default limits any app configured (another
    # test's RATELIMIT_DEFAULT, say); clear them so these apps are limited by their own config alone.
    limiter.limit_manager.set_default_limits([])
    limiter.limit_manager.set_application_limits([])

    def build(**overrides):
        config = {"RATELIMIT_ENABLED": True, "RATELIMIT_AUTH": "2 per minute", "RATELIMIT_STORAGE_URI": "memory://"}
        config.update(overrides)
        app = make_app(postgres_url, redis_url, tmp_path, **config)
        apps.append(app)
        return app

    yield build
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def _login_from(client, address, email, forwarded=None):
    environ = {"REMOTE_ADDR": address}
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    token = csrf_token(client, "/login")
    return client.post("/login", data={"email": email, "password": "wrong password", "csrf_token": token},
                       environ_base=environ, headers=headers)


def test_auth_tier_limits_per_address_with_retry_after(limited_app):
    client = limited_app().test_client()
    assert _login_from(client, "198.51.100.1", "a@example.com").status_code == 401
    assert _login_from(client, "198.51.100.1", "b@example.com").status_code == 401
    refused = _login_from(client, "198.51.100.1", "c@example.com")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too many requests" in refused.get_data(as_text=True)
    assert _login_from(client, "198.51.100.2", "d@example.com").status_code == 401


def test_auth_tier_limits_per_account_email_across_addresses(limited_app):
    client = limited_app().test_client()
    assert _login_from(client, "198.51.100.1", "ada@example.com").status_code == 401
    assert _login_from(client, "198.51.100.2", " ADA@example.com").status_code == 401
    assert _login_from(client, "198.51.100.3", "ada@example.com").status_code == 429


def test_login_page_views_are_not_counted(limited_app):
    client = limited_app().test_client()
    for _ in range(5):
        assert client.get("/login").status_code == 200
    assert _login_from(client, "198.51.100.1", "ada@example.com").status_code == 401


def test_rate_limits_fall_back_to_memory_when_redis_is_down(limited_app):
    client = limited_app(RATELIMIT_STORAGE_URI="redis://127.0.0.1:1/0").test_client()
    assert _login_from(client, "198.51.100.7", "a@example.com").status_code == 401
    assert _login_from(client, "198.51.100.7", "b@example.com").status_code == 401
    assert _login_from(client, "198.51.100.7", "c@example.com").status_code == 429


def test_proxy_count_decides_whose_address_is_limited(limited_app):
    behind_proxy = limited_app(STUDIO_PROXY_COUNT=1, RATELIMIT_AUTH="1 per minute").test_client()
    assert _login_from(behind_proxy, "10.0.0.2", "a@example.com", forwarded="203.0.113.1").status_code == 401
    assert _login_from(behind_proxy, "10.0.0.2", "b@example.com", forwarded="203.0.113.2").status_code == 401
    assert _login_from(behind_proxy, "10.0.0.2", "c@example.com", forwarded="203.0.113.1").status_code == 429

    direct = limited_app(STUDIO_PROXY_COUNT=0, RATELIMIT_AUTH="1 per minute").test_client()
    assert _login_from(direct, "10.0.0.2", "a@example.com", forwarded="203.0.113.1").status_code == 401
    # Without a trusted proxy a forged X-Forwarded-For changes nothing.
    assert _login_from(direct, "10.0.0.2", "b@example.com", forwarded="203.0.113.2").status_code == 429


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
