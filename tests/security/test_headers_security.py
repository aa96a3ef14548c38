"""Security headers on every response (the CSP itself, caching), templates and pages without inline code, and the
session cookie's flags."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from studio import settings
from studio.models import TaskStatus
from studio.security import content_security_policy
from tests.support.security import CSRF_FIELD, PASSWORD, login, methods, route_path, routes

TEMPLATES = Path(settings.PROJECT_ROOT) / "templates"
EMAIL = "admin@example.com"


def directives(policy: str) -> dict[str, list[str]]:
    """Return a CSP as {directive: [sources]}."""
    parsed = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


def assert_security_headers(response, label: str) -> None:
    """Check the headers every response must carry."""
    policy = response.headers.get("Content-Security-Policy")
    assert policy, f"{label}: no Content-Security-Policy"
    csp = directives(policy)
    assert csp["frame-ancestors"] == ["'none'"], label
    assert "'unsafe-inline'" not in csp["script-src"], label
    assert "*" not in csp["script-src"] and "data:" not in csp["script-src"], label
    assert csp["object-src"] == ["'none'"], label
    assert csp["base-uri"] == ["'self'"], label
    assert response.headers.get("X-Content-Type-Options") == "nosniff", label
    assert response.headers.get("Referrer-Policy") in ("same-origin", "no-referrer", "strict-origin"), label
    assert response.headers.get("X-Frame-Options") == "DENY", label


@pytest.fixture
def signed_in_admin(app, make_user, make_stored_task):
    """Return an admin's signed-in client (so even the admin pages answer) and one of its tasks."""
    admin = make_user(EMAIL, is_admin=True)
    client = app.test_client()
    assert login(client, EMAIL).status_code == 302
    return client, make_stored_task(admin.id)


def test_every_route_answers_with_the_security_headers(app, signed_in_admin):
    client, task_id = signed_in_admin
    anonymous = app.test_client()
    statuses = set()
    for rule in routes(app):
        for method in methods(rule):
            path = route_path(rule, task_id)
            for who, caller in (("admin", client), ("anonymous", anonymous)):
                response = caller.open(path, method=method)
                assert_security_headers(response, f"{who} {method} {rule.rule} ({response.status_code})")
                statuses.add(response.status_code)
    # Successes, redirects and refusals (CSRF 400, 401, 404, 405) alike.
    assert {200, 302, 400, 401, 404} <= statuses


def test_error_pages_carry_the_headers_too(app):
    client = app.test_client()
    for response in (client.get("/no-such-page"), client.get("/api/v1/nothing"), client.put("/login"),
                     client.get("/tasks/not-a-uuid", headers={"Accept": "application/json"})):
        assert_security_headers(response, f"{response.status_code}")


@pytest.mark.parametrize("path", ["/", "/login", "/static/vendor/htmx.min.js", "/no-such-page", "/api/no-such-thing"])
def test_every_response_carries_the_exact_policy(client, path):
    response = client.get(path)
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "same-origin"
    policy = directives(response.headers["Content-Security-Policy"])
    assert policy["script-src"] == ["'self'"]
    assert policy["style-src"] == ["'self'"]
    assert policy["frame-ancestors"] == ["'none'"]
    assert policy["img-src"] == ["'self'", "data:", "blob:"]


def test_pages_are_not_cached_but_static_files_may_be(client):
    assert client.get("/login").headers["Cache-Control"] == "no-store"
    assert "no-store" not in client.get("/static/css/studio.css").headers.get("Cache-Control", "")


def test_csp_allows_images_from_the_s3_endpoint():
    policy = directives(content_security_policy({"STUDIO_S3_BUCKET": "photos",
                                                 "STUDIO_S3_ENDPOINT_URL": "http://minio.local:9000/base"}))
    assert policy["img-src"] == ["'self'", "data:", "blob:", "http://minio.local:9000"]
    aws = directives(content_security_policy({"STUDIO_S3_BUCKET": "photos", "STUDIO_S3_ENDPOINT_URL": None}))
    assert aws["img-src"][-1] == "https:"
    local = directives(content_security_policy({"STUDIO_S3_BUCKET": None, "STUDIO_S3_ENDPOINT_URL": "http://x:1"}))
    assert "http://x:1" not in local["img-src"]


# Inline code the CSP would block anyway; kept out of the source so no page ever needs 'unsafe-inline'.
INLINE_CODE = {
    "inline <script> body": re.compile(r"<script\b[^>]*>(?!\s*</script>)", re.I),
    "<script> without src": re.compile(r"<script(?![^>]*\bsrc\s*=)[^>]*>", re.I),
    "on* event handler attribute": re.compile(r"<[^>]*\son[a-z]+\s*=", re.I),
    "htmx hx-on handler": re.compile(r"\bhx-on", re.I),
    "javascript: URL": re.compile(r"javascript:", re.I),
    "inline style attribute": re.compile(r"<[^>]*\sstyle\s*=", re.I),
    "<style> block": re.compile(r"<style\b", re.I),
}


JINJA_COMMENT = re.compile(r"\{#.*?#\}", re.S)


def test_templates_contain_no_inline_script_or_handlers():
    templates = sorted(TEMPLATES.rglob("*.html"))
    assert len(templates) >= 10
    for template in templates:
        # Jinja comments never reach the browser (and may well talk about what is forbidden).
        source = JINJA_COMMENT.sub("", template.read_text(encoding="utf-8"))
        for name, pattern in INLINE_CODE.items():
            match = pattern.search(source)
            assert not match, f"{template.relative_to(TEMPLATES)} has {name}: {match.group(0)[:80]!r}"


def test_the_template_scan_catches_what_it_looks_for():
    samples = {
        "inline <script> body": '<script>alert(1)</script>',
        "<script> without src": '<script type="module"></script>',
        "on* event handler attribute": '<button type="button" onclick="go()">',
        "htmx hx-on handler": '<div hx-on:click="go()">',
        "javascript: URL": '<a href="javascript:go()">',
        "inline style attribute": '<p class="x" style="color: red">',
        "<style> block": "<style>p {}</style>",
    }
    for name, sample in samples.items():
        assert INLINE_CODE[name].search(sample), name
    assert not any(pattern.search('<script src="/static/js/studio.js" defer></script>')
                   for name, pattern in INLINE_CODE.items() if "script" in name)


def test_pages_have_no_inline_script_or_style(client, make_user, make_stored_task):
    for path in ("/", "/login", "/register"):
        _assert_no_inline_code(client, path)
    user = make_user(EMAIL)
    assert login(client, EMAIL).status_code == 302
    task_id = make_stored_task(user.id, TaskStatus.PENDING)
    for path in ("/", "/tasks", "/account", f"/tasks/{task_id}", f"/tasks/{task_id}/status", "/no-such-page"):
        _assert_no_inline_code(client, path)


def _assert_no_inline_code(client, path: str) -> None:
    """Check that the page the client gets at this path holds none of the inline code the templates must not."""
    html = client.get(path).get_data(as_text=True)
    for name, pattern in INLINE_CODE.items():
        match = pattern.search(html)
        assert not match, f"{path} has {name}: {match.group(0)[:80]!r}"


def session_set_cookie(response) -> str:
    """Return the Set-Cookie header of the session cookie."""
    cookies = [value for value in response.headers.getlist("Set-Cookie") if value.startswith("session=")]
    assert cookies, "no session cookie set"
    return cookies[-1]


def flags(set_cookie: str) -> set[str]:
    """Return the attribute names and values of a Set-Cookie header, lower-cased."""
    return {part.strip().lower() for part in set_cookie.split(";")[1:]}


def sign_in(app, headers: dict | None = None, environ: dict | None = None):
    """Create the account and return the response to signing in with the given request headers and environ."""
    from studio.auth import service
    from studio.extensions import db

    with app.app_context():
        service.create_user(EMAIL, PASSWORD)
        db.session.remove()
    client = app.test_client()
    request = {"headers": headers or {}, "environ_base": environ or {}}
    token = CSRF_FIELD.search(client.get("/login", **request).get_data(as_text=True)).group(1)
    return client.post("/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token}, **request)


def test_session_cookie_is_http_only_and_same_site_lax(app):
    response = sign_in(app)
    assert response.status_code == 302
    cookie = flags(session_set_cookie(response))
    assert "httponly" in cookie and "samesite=lax" in cookie
    assert "secure" not in cookie  # plain HTTP on a laptop: a Secure cookie would never come back


def test_session_cookie_is_secure_when_configured(security_app):
    config = settings.from_environment({"STUDIO_SECURE_COOKIES": "true"})
    app = security_app(SESSION_COOKIE_SECURE=config["SESSION_COOKIE_SECURE"])
    response = sign_in(app)
    cookie = flags(session_set_cookie(response))
    assert {"secure", "httponly", "samesite=lax"} <= cookie
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")


def test_session_cookie_is_secure_when_the_trusted_proxy_says_https(security_app):
    app = security_app(STUDIO_PROXY_COUNT=1)
    # Over HTTPS the CSRF check also wants a same-site Referer, which browsers send (Referrer-Policy: same-origin).
    response = sign_in(app, headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.7",
                                     "Referer": "https://studio.test/login"},
                       environ={"REMOTE_ADDR": "10.0.0.2"})
    assert response.status_code == 302
    assert {"secure", "httponly", "samesite=lax"} <= flags(session_set_cookie(response))
    assert "Strict-Transport-Security" in response.headers


def test_a_forged_https_header_without_a_trusted_proxy_changes_nothing(security_app):
    app = security_app(STUDIO_PROXY_COUNT=0)
    response = sign_in(app, headers={"X-Forwarded-Proto": "https"})
    assert response.status_code == 302
    assert "secure" not in flags(session_set_cookie(response))
    assert "Strict-Transport-Security" not in response.headers
