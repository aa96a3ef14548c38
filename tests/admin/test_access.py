"""The dashboard is for administrators only: every /admin route and method is a 404 to anyone else, signed in or
not, and changes nothing; administrators reach every page, linked from the navigation."""

from __future__ import annotations

import pytest

from tests.support.admin import audit_entries, csrf_token, load_user, sign_in

pytestmark = pytest.mark.integration


def admin_routes(app):
    """Return (path, method) for every route of the admin blueprint, from the URL map."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint.startswith("admin."):
            path = rule.build({"user_id": 1}, append_unknown=False)[1]
            found += [(path, method) for method in sorted(rule.methods - {"HEAD", "OPTIONS"})]
    return found


def test_the_routes_found_include_every_area(app):
    paths = {path for path, _ in admin_routes(app)}
    assert {"/admin/", "/admin/users", "/admin/users/1", "/admin/tasks", "/admin/tasks/retry", "/admin/tasks/cancel",
            "/admin/audit", "/admin/usage", "/admin/usage.csv", "/admin/users/1/status"} <= paths


@pytest.mark.parametrize("who", ["anonymous", "signed-in user"])
def test_every_admin_route_is_a_404_to_everyone_else(app, make_user, admin, who):
    client = app.test_client()
    if who == "signed-in user":
        make_user("someone@example.com")
        assert sign_in(client, "someone@example.com").status_code == 302
    token = csrf_token(client, "/login" if who == "anonymous" else "/account")
    checked = []
    for path, method in admin_routes(app):
        # With a valid CSRF token and plausible fields: only the administrator check can refuse it.
        response = client.open(path, method=method, headers={"X-CSRFToken": token},
                               data={"disabled": "true", "admin": "true", "task": "x", "month": "2026-01"})
        assert response.status_code == 404, f"{method} {path} answered {response.status_code} to {who}"
        assert b"admin" not in response.data.lower().replace(b"/admin", b""), f"{path} says it exists"
        checked.append(path)
    assert len(checked) >= 14
    assert audit_entries(app) == []
    assert load_user(app, admin.id).disabled_at is None and load_user(app, admin.id).is_admin


def test_an_administrator_reaches_every_page_from_the_navigation(app, admin_client, admin):
    home = admin_client.get("/account").get_data(as_text=True)
    assert 'href="/admin/"' in home
    for path, method in admin_routes(app):
        if method == "GET":
            response = admin_client.get(path)
            assert response.status_code == 200, f"GET {path} answered {response.status_code}"
    overview = admin_client.get("/admin/").get_data(as_text=True)
    assert 'href="/admin/rq/"' in overview


def test_the_navigation_shows_no_admin_link_to_others(app, make_user):
    make_user("someone@example.com")
    client = app.test_client()
    sign_in(client, "someone@example.com")
    assert 'href="/admin/"' not in client.get("/account").get_data(as_text=True)
