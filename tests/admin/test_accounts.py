"""Managing accounts: disable and enable (sign-in, sessions, tokens, tasks), the administrator role, the storage
quota and the plan; each action leaves one audit row saying who did what to whom."""

from __future__ import annotations

import pytest
from rq.job import Job

from studio.queue import get_redis
from tests.support.admin import ADMIN, PASSWORD, audit_entries, load_user, post, sign_in
from tests.support.studio import load_task, upload

pytestmark = pytest.mark.integration

DISABLED_MESSAGE = "This account is disabled"


@pytest.fixture
def member(make_user):
    """Return an ordinary account."""
    return make_user("member@example.com")


def test_disabling_ends_sessions_refuses_tokens_and_sign_in_and_cancels_tasks(
        app, client, admin_client, member, make_token, photo_bytes):
    bearer = make_token(member)
    session = app.test_client()
    assert sign_in(session, member.email).status_code == 302
    waiting = [upload(client, bearer, photo_bytes("boat.jpg")).get_json()["id"] for _ in range(2)]

    response = post(admin_client, f"/admin/users/{member.id}/status", {"disabled": "true"})
    assert response.status_code == 302

    assert load_user(app, member.id).disabled_at is not None
    # The open session and the token stop working at once.
    assert session.get("/account").status_code == 302
    assert client.get("/api/v1/tasks", headers=bearer).status_code == 401
    # Its waiting tasks are cancelled and their jobs gone.
    for task_id in waiting:
        task = load_task(app, task_id)
        assert (task.status, task.error) == ("CANCELLED", "Cancelled: the account was disabled by an administrator.")
        with app.app_context():
            assert not Job.exists(task_id, connection=get_redis())
    # Sign-in says so only after the right password; a wrong one gets the usual answer.
    right = sign_in(app.test_client(), member.email)
    wrong = sign_in(app.test_client(), member.email, "not the password")
    assert right.status_code == 403 and DISABLED_MESSAGE in right.get_data(as_text=True)
    assert wrong.status_code == 401 and DISABLED_MESSAGE not in wrong.get_data(as_text=True)
    # No new token either (the API answers as for a wrong password).
    assert client.post("/api/v1/tokens", json={"email": member.email, "password": PASSWORD}).status_code == 401

    [entry] = audit_entries(app)
    assert (entry.action, entry.actor_email, entry.target_user_id) == ("user.disable", ADMIN, member.id)
    assert "2 unfinished tasks cancelled" in entry.detail


def test_enabling_lets_the_account_back_in_but_not_its_old_sessions(app, client, admin_client, member, make_token):
    bearer = make_token(member)
    session = app.test_client()
    sign_in(session, member.email)
    post(admin_client, f"/admin/users/{member.id}/status", {"disabled": "true"})
    post(admin_client, f"/admin/users/{member.id}/status", {"disabled": "false"})

    assert load_user(app, member.id).disabled_at is None
    assert client.get("/api/v1/tasks", headers=bearer).status_code == 200
    assert session.get("/account").status_code == 302
    assert sign_in(app.test_client(), member.email).status_code == 302
    assert [entry.action for entry in audit_entries(app)] == ["user.disable", "user.enable"]


def test_an_administrator_cannot_disable_or_demote_themselves(app, admin_client, admin):
    for path, data in ((f"/admin/users/{admin.id}/status", {"disabled": "true"}),
                       (f"/admin/users/{admin.id}/role", {"admin": "false"})):
        page = post(admin_client, path, data, follow_redirects=True).get_data(as_text=True)
        assert "cannot" in page
    account = load_user(app, admin.id)
    assert account.is_admin and account.disabled_at is None
    assert audit_entries(app) == []


def test_making_and_unmaking_an_administrator(app, admin_client, member):
    post(admin_client, f"/admin/users/{member.id}/role", {"admin": "true"})
    assert load_user(app, member.id).is_admin
    promoted = app.test_client()
    sign_in(promoted, member.email)
    assert promoted.get("/admin/").status_code == 200
    post(admin_client, f"/admin/users/{member.id}/role", {"admin": "false"})
    assert not load_user(app, member.id).is_admin
    assert promoted.get("/admin/").status_code == 404
    assert [(entry.action, entry.target_user_id) for entry in audit_entries(app)] == [
        ("user.admin_on", member.id), ("user.admin_off", member.id)]


def test_a_quota_of_its_own_applies_to_the_accounts_uploads(app, client, admin_client, member, make_token,
                                                            photo_bytes):
    bearer = make_token(member)
    post(admin_client, f"/admin/users/{member.id}/quota", {"quota_mib": "0"})
    assert load_user(app, member.id).quota_bytes == 0
    app.config["STUDIO_USER_QUOTA_BYTES"] = 1000  # the site's quota: far too small for the photo
    assert upload(client, bearer, photo_bytes("boat.jpg")).status_code == 202  # its own: no limit

    post(admin_client, f"/admin/users/{member.id}/quota", {"quota_mib": "1"})
    assert load_user(app, member.id).quota_bytes == 1024 * 1024
    answers = [upload(client, bearer, photo_bytes("boat.jpg")) for _ in range(12)]  # 12 x 156 kB: over 1 MiB
    refused = [answer for answer in answers if answer.status_code == 413]
    assert refused and "1,048,576 bytes" in refused[0].get_json()["error"]["message"]
    assert 0 < load_user(app, member.id).storage_bytes <= 1024 * 1024

    post(admin_client, f"/admin/users/{member.id}/quota", {"quota_mib": ""})
    assert load_user(app, member.id).quota_bytes is None
    page = post(admin_client, f"/admin/users/{member.id}/quota", {"quota_mib": "-5"}, follow_redirects=True)
    assert "whole number" in page.get_data(as_text=True) and load_user(app, member.id).quota_bytes is None
    assert [entry.detail for entry in audit_entries(app)] == [
        "member@example.com: no limit", "member@example.com: 1,048,576 bytes",
        "member@example.com: the site's default"]


def test_changing_the_plan(make_app, make_user, make_token):
    app = make_app(STUDIO_PLANS={"free": {"tasks_per_month": 5}, "pro": {}}, STUDIO_DEFAULT_PLAN="free")
    make_user(ADMIN, is_admin=True)
    member = make_user("member@example.com")
    admin_client = app.test_client()
    sign_in(admin_client, ADMIN)
    page = admin_client.get(f"/admin/users/{member.id}").get_data(as_text=True)
    assert "Plan <strong>free</strong> (the default)" in page and "5 tasks a month" in page

    post(admin_client, f"/admin/users/{member.id}/plan", {"plan": "pro"})
    assert load_user(app, member.id).plan == "pro"
    usage = app.test_client().get("/api/v1/usage", headers=make_token(member)).get_json()
    assert (usage["plan"]["name"], usage["plan"]["tasks_per_month"]) == ("pro", None)
    post(admin_client, f"/admin/users/{member.id}/plan", {"plan": "gold"})
    assert load_user(app, member.id).plan == "pro"
    post(admin_client, f"/admin/users/{member.id}/plan", {"plan": ""})
    assert load_user(app, member.id).plan is None
    assert [entry.detail for entry in audit_entries(app)] == ["member@example.com: pro",
                                                              "member@example.com: the default plan"]


def test_searching_accounts_by_email(app, admin_client, make_user):
    for name in ("alice@example.com", "bob@example.org", "al_x@example.net"):
        make_user(name)
    found = admin_client.get("/admin/users?q=AL").get_data(as_text=True)
    assert "alice@example.com" in found and "al_x@example.net" in found and "bob@example.org" not in found
    # LIKE's wildcards are plain characters in the search.
    underscore = admin_client.get("/admin/users?q=al_").get_data(as_text=True)
    assert "al_x@example.net" in underscore and "alice@example.com" not in underscore
