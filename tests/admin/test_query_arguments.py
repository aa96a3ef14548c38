"""Every /admin page takes any query argument without a 500: bad values are clamped or refused, pages past the
last show the last one, and the links a page builds carry only the arguments it knows."""

from __future__ import annotations

import re
from html import unescape
from urllib.parse import parse_qsl, urlsplit

import pytest

from studio.admin import audit, service
from tests.support.admin import post

pytestmark = pytest.mark.integration

HOSTILE_VALUES = ["0", "-1", "-99999999999999999999", "99999999999999999999", "9223372036854775807",
                  "2147483648", "1e9", "1.5", "abc", "", " 2", "２", "NaN", "%00", "\x00", "x" * 5000,
                  "9999-12", "0000-01", "javascript:alert(1)", "//evil.example", "ALL", "UNFINISHED"]
# The page's own arguments, others' arguments, and what url_for takes as its own keywords.
ARGUMENTS = ["page", "per_page", "q", "status", "reason", "operation", "email", "month", "sort", "order",
             "_external", "_scheme", "_anchor", "_method", "_server_name", "endpoint", "values", "user_id"]
LINK = re.compile(r'href="([^"]*)"')


def admin_get_paths(app, user_id: int) -> list[str]:
    """Return the path of every GET page of the dashboard, from the URL map."""
    return sorted(rule.build({"user_id": user_id}, append_unknown=False)[1] for rule in app.url_map.iter_rules()
                  if rule.endpoint.startswith("admin.") and "GET" in rule.methods)


@pytest.fixture
def many_pages(app, admin_client, make_user, monkeypatch):
    """Make every list several pages long: two rows a page, accounts and audit entries enough for three."""
    monkeypatch.setattr(service, "PER_PAGE", 2)
    monkeypatch.setattr(audit, "PER_PAGE", 2)
    users = [make_user(f"page-{number}@example.com") for number in range(5)]
    for user in users:
        post(admin_client, f"/admin/users/{user.id}/quota", {"quota_mib": "5"})
    return users


def test_no_argument_value_is_a_500_on_any_page(app, admin_client, many_pages):
    for path in admin_get_paths(app, many_pages[0].id):
        for value in HOSTILE_VALUES:
            # Every argument at once on a page that has links, then the page number alone.
            for query in ({**dict.fromkeys(ARGUMENTS, value), "page": "2"}, {"page": value}):
                response = admin_client.get(path, query_string=query)
                assert response.status_code in (200, 302, 400), f"{path}?{value[:20]!r}: {response.status_code}"


@pytest.mark.parametrize("path", ["/admin/users/99999999999999999999", "/admin/users/2147483648",
                                  "/admin/users/9223372036854775808"])
def test_an_account_id_past_any_integer_is_a_404(admin_client, path):
    assert admin_client.get(path).status_code == 404


@pytest.mark.parametrize("page, shown", [("0", 1), ("-3", 1), ("abc", 1), ("3", 3), ("4", 3),
                                         ("99999999999999999999", 3), ("9223372036854775807", 3)])
def test_a_page_number_is_clamped_to_the_pages_there_are(admin_client, many_pages, page, shown):
    for path in ("/admin/users", "/admin/audit"):
        response = admin_client.get(path, query_string={"page": page})
        assert response.status_code == 200
        assert f"Page {shown} of 3" in response.get_data(as_text=True), path


def test_page_links_carry_only_the_arguments_the_page_knows(admin_client, many_pages):
    hostile = {"_external": "1", "_scheme": "javascript", "_anchor": "x", "_server_name": "evil.example",
               "sort": "password_hash", "junk": "1", "page": "2"}
    for path, known in (("/admin/users", {"q": "page-"}), ("/admin/audit", {}),
                        ("/admin/tasks", {"status": "ALL", "email": "page-"})):
        response = admin_client.get(path, query_string={**hostile, **known})
        assert response.status_code == 200
        links = [unescape(link) for link in LINK.findall(response.get_data(as_text=True))]
        pages = [link for link in links if "page=" in link]
        for link in links:
            parts = urlsplit(link)
            assert not parts.scheme and not parts.netloc, link
            assert set(dict(parse_qsl(parts.query))) <= {"page", "q", "status", "reason", "operation", "email",
                                                         "month", "user_id"}, link
        if path != "/admin/tasks":  # no tasks here: one page
            assert pages and all(dict(parse_qsl(urlsplit(link).query)).items() >= known.items() for link in pages)


@pytest.mark.parametrize("per_page, page", [("0", "1"), ("8", "0"), ("x", "1"), ("8", "x"), ("201", "1"),
                                            ("8", "99999999999999999999"), ("99999999999999999999", "1"),
                                            ("-1", "1"), ("8", "-1")])
def test_the_job_dashboards_lists_refuse_page_numbers_out_of_range(admin_client, per_page, page):
    for kind in ("view", "data"):
        path = f"/admin/rq/0/{kind}/jobs/default/failed/{per_page}/asc/{page}" + (".json" if kind == "data" else "")
        assert admin_client.get(path).status_code == 404, path


def test_the_job_dashboards_lists_answer_within_range(admin_client):
    assert admin_client.get("/admin/rq/0/data/jobs/default/failed/200/asc/3.json").status_code == 200
    assert admin_client.get("/admin/rq/0/view/jobs/default/failed/8/asc/1").status_code == 200
