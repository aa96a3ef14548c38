"""Accounts through the real pages: sign-up, sign-in, sign-out, sessions, password changes and API tokens."""

from __future__ import annotations

import hashlib
import re

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from studio.auth import service
from studio.extensions import db
from studio.models import ApiToken, User
from tests.support.web import PASSWORD, AuthActions, csrf_token


def _user(app, email="ada@example.com") -> User:
    with app.app_context():
        user = db.session.scalar(select(User).where(User.email == email))
        db.session.expunge_all()
        return user


def test_register_creates_the_account_and_sends_to_the_sign_in_form_filled_in(app, client, auth):
    response = auth.register(email="  Ada@Example.COM ")
    assert response.status_code == 302 and response.headers["Location"] == "/login"
    assert _user(app).email == "ada@example.com"
    # Nobody is signed in by a sign-up: the person signs in with the password just chosen.
    assert client.get("/account").status_code == 302
    form = client.get("/login").get_data(as_text=True)
    assert 'value="ada@example.com"' in form and "Sign in with your email and the password you chose" in form
    assert auth.login().status_code == 302
    assert b"ada@example.com" in client.get("/account").data


def test_register_stores_an_argon2_hash_never_the_password(app, auth):
    auth.register()
    user = _user(app)
    assert user.password_hash.startswith("$argon2id$")
    assert PASSWORD not in user.password_hash


@pytest.mark.parametrize("email, password, confirm, message", [
    ("not-an-email", PASSWORD, None, "valid email"),
    ("ada@example.com", "short1!", None, "at least 8 characters"),
    ("ada@example.com", "Password123", None, "too common"),
    ("ada@example.com", PASSWORD, "something else", "do not match"),
])
def test_register_refuses_bad_input_with_a_readable_message(app, auth, email, password, confirm, message):
    response = auth.register(email=email, password=password, confirm=confirm)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert _user(app, email) is None


def _sign_up(app, email: str, password: str = "another long pass phrase"):
    """Sign up from a fresh client; return the answer, the session it leaves, and the sign-in page it leads to."""
    client = app.test_client()
    response = AuthActions(client).register(email=email, password=password)
    with client.session_transaction() as session:
        left = {key: value for key, value in session.items() if key != "csrf_token"}
    page = client.get(response.headers.get("Location", "/login")).get_data(as_text=True)
    return response, left, page.replace(email.strip().lower(), "EMAIL")


def test_signing_up_with_a_taken_email_answers_exactly_as_a_new_one(app, make_user):
    make_user()

    taken = _sign_up(app, "ADA@example.com")
    new = _sign_up(app, "grace@example.com")

    (taken_response, taken_session, taken_page), (new_response, new_session, new_page) = taken, new
    assert taken_response.status_code == new_response.status_code == 302
    assert taken_response.headers["Location"] == new_response.headers["Location"]
    assert taken_response.get_data() == new_response.get_data().replace(b"grace@example.com", b"ADA@example.com")
    assert taken_session == {**new_session, "sign_in_email": "ada@example.com"}
    assert "_user_id" not in taken_session and "_user_id" not in new_session
    assert _csrf_free(taken_page) == _csrf_free(new_page)


def _csrf_free(page: str) -> str:
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    return page.replace(token, "TOKEN")


def test_signing_up_with_a_taken_email_changes_nothing_of_its_account(app, auth, make_user):
    make_user()
    before = _user(app)

    _sign_up(app, "ada@example.com", password="the intruders pass phrase")

    after = _user(app)
    assert (after.password_hash, after.session_version, after.disabled_at) == \
        (before.password_hash, before.session_version, before.disabled_at)
    assert auth.login(password="the intruders pass phrase").status_code == 401
    assert auth.login().status_code == 302


def test_a_sign_up_costs_one_argon2_hash_whether_or_not_the_email_is_taken(app, make_user, monkeypatch):
    make_user()
    hashed = []

    class CountingHasher(PasswordHasher):
        def hash(self, password, **kwargs):
            hashed.append(password)
            return super().hash(password, **kwargs)

    monkeypatch.setattr(service, "password_hasher", CountingHasher(time_cost=1, memory_cost=8, parallelism=1))

    _sign_up(app, "ada@example.com", password="taken address pass")
    _sign_up(app, "grace@example.com", password="new address pass")

    assert hashed == ["taken address pass", "new address pass"]


def test_two_sign_ups_of_one_email_at_once_make_one_account_and_no_error(app, monkeypatch):
    # The second request looked before the first inserted: its own insert meets the unique email.
    assert _sign_up(app, "ada@example.com")[0].status_code == 302
    monkeypatch.setattr(service, "find_user", lambda email: None)

    response, session, _ = _sign_up(app, "ada@example.com", password="a racing pass phrase")

    assert response.status_code == 302 and "_user_id" not in session
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(User)) == 1


def test_long_unicode_passwords_are_kept_whole(auth, client):
    password = "ünïcødé pass phrase ✓ " * 20  # 440 characters, far past bcrypt's 72 bytes
    assert auth.register(password=password).status_code == 302
    assert auth.login(password=password[:-1]).status_code == 401
    assert auth.login(password=password[:72]).status_code == 401
    assert auth.login(password=password).status_code == 302


def test_login_error_is_the_same_for_unknown_email_and_wrong_password(auth, make_user):
    make_user()
    wrong_password = auth.login(password="not the password")
    unknown_email = auth.login(email="nobody@example.com")
    assert wrong_password.status_code == unknown_email.status_code == 401
    for response in (wrong_password, unknown_email):
        assert "Invalid email or password" in response.get_data(as_text=True)
    assert "already exists" not in unknown_email.get_data(as_text=True)


def test_authenticate_checks_a_dummy_hash_for_unknown_accounts(app, monkeypatch):
    calls = []
    original = service._verify

    def recording_verify(hashed: str, password: str) -> bool:
        calls.append(hashed)
        return original(hashed, password)

    monkeypatch.setattr(service, "_verify", recording_verify)
    with app.app_context():
        assert service.authenticate("nobody@example.com", PASSWORD) is None
    assert len(calls) == 1 and calls[0].startswith("$argon2")


def test_login_accepts_the_email_in_any_case_and_redirects_to_next(auth, make_user):
    make_user()
    response = auth.login(email=" ADA@example.com", next="/tasks?page=2")
    assert response.status_code == 302
    assert response.headers["Location"] == "/tasks?page=2"


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/", "/\\evil.example", "javascript:x",
                                    "/\t/evil.example", "/\n/evil.example", " //evil.example"])
def test_login_never_redirects_to_another_site(auth, make_user, target):
    make_user()
    response = auth.login(next=target)
    assert response.status_code == 302
    assert response.headers["Location"] == "/"


def test_login_rehashes_when_the_hash_parameters_change(app, auth, make_user, monkeypatch):
    make_user()
    old_hash = _user(app).password_hash
    stronger = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1)
    monkeypatch.setattr(service, "password_hasher", stronger)
    assert auth.login().status_code == 302
    new_hash = _user(app).password_hash
    assert new_hash != old_hash
    assert not stronger.check_needs_rehash(new_hash)
    assert stronger.verify(new_hash, PASSWORD)


def test_login_does_not_rehash_a_current_hash(app, auth, make_user):
    make_user()
    old_hash = _user(app).password_hash
    auth.login()
    assert _user(app).password_hash == old_hash


def test_login_starts_a_fresh_session(client, auth, make_user):
    make_user()
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    auth.login()
    with client.session_transaction() as session:
        assert "planted" not in session
        assert session["_user_id"].endswith(":1")


def test_logout_is_post_only_and_ends_the_session(client, auth, make_user):
    make_user()
    auth.login()
    assert client.get("/logout").status_code == 405
    assert client.get("/account").status_code == 200
    assert auth.logout().status_code == 302
    assert client.get("/account").status_code == 302


def test_pages_need_a_signed_in_user(client):
    response = client.get("/account")
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=/account")


def test_htmx_requests_from_an_ended_session_get_a_client_redirect(client):
    response = client.get("/tasks", headers={"HX-Request": "true"})
    assert response.status_code == 401
    assert response.headers["HX-Redirect"] == "/login"


def test_a_session_with_a_stale_version_is_refused(app, client, auth, make_user):
    user = make_user()
    auth.login()
    with app.app_context():
        service.end_other_sessions(db.session.get(User, user.id))
    assert client.get("/account").status_code == 302


@pytest.mark.parametrize("identity", ["", "abc", "1", "1:", ":1", "1:x", "999:1"])
def test_malformed_session_identities_are_anonymous(app, make_user, identity):
    make_user()
    with app.app_context():
        assert service.load_session_user(identity) is None


def test_password_change_signs_out_other_sessions_but_keeps_this_one(app, auth, make_user):
    make_user()
    other = app.test_client()
    type(auth)(other).login()
    auth.login()
    response = auth.client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": "a brand new passphrase", "confirm": "a brand new passphrase",
        "csrf_token": csrf_token(auth.client, "/account")})
    assert response.status_code == 302
    assert auth.client.get("/account").status_code == 200
    assert other.get("/account").status_code == 302
    auth.logout()
    assert auth.login().status_code == 401
    assert auth.login(password="a brand new passphrase").status_code == 302


def test_password_change_needs_the_current_password(app, auth, make_user):
    make_user()
    auth.login()
    response = auth.client.post("/account/password", data={
        "current_password": "wrong one", "new_password": "a brand new passphrase",
        "confirm": "a brand new passphrase", "csrf_token": csrf_token(auth.client, "/account")})
    assert response.status_code == 400
    assert "current password is not correct" in response.get_data(as_text=True)
    assert service.password_hasher.verify(_user(app).password_hash, PASSWORD)


def test_api_token_is_shown_once_and_stored_as_a_digest(app, client, auth, make_user):
    make_user()
    auth.login()
    response = client.post("/account/tokens", data={"name": "laptop script", "password": PASSWORD,
                                                    "csrf_token": csrf_token(client, "/account")})
    assert response.status_code == 201
    page = response.get_data(as_text=True)
    start = page.index('id="new-token-value" value="') + len('id="new-token-value" value="')
    plaintext = page[start:page.index('"', start)]
    assert plaintext.startswith("ps_") and len(plaintext) > 40
    with app.app_context():
        token = db.session.scalar(select(ApiToken))
        assert token.token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
        assert token.prefix == plaintext[:10]
        assert token.name == "laptop script"
        assert service.user_for_token(plaintext).email == "ada@example.com"
        assert db.session.scalar(select(ApiToken)).last_used_at is not None
    again = client.get("/account").get_data(as_text=True)
    assert plaintext not in again
    assert plaintext[:10] in again


def test_the_account_page_makes_and_replaces_the_webhook_signing_secret(app, client, auth, make_user):
    make_user()
    auth.login()
    page = client.get("/account").get_data(as_text=True)
    assert "Make a signing secret" in page and "whsec_" not in page
    assert _user(app).webhook_secret is None  # viewing the page makes nothing

    response = client.post("/account/webhook-secret", data={"csrf_token": csrf_token(client, "/account")})
    assert response.status_code == 302
    first = _user(app).webhook_secret
    assert first.startswith("whsec_") and first in client.get("/account").get_data(as_text=True)

    assert client.post("/account/webhook-secret").status_code == 400  # no CSRF token: nothing changes
    assert _user(app).webhook_secret == first

    client.post("/account/webhook-secret", data={"csrf_token": csrf_token(client, "/account")})
    second = _user(app).webhook_secret
    page = client.get("/account").get_data(as_text=True)
    assert second != first and second in page and first not in page and "Replace the secret" in page


def test_revoked_tokens_stop_working(app, make_user, client, auth):
    user = make_user()
    with app.app_context():
        token, plaintext = service.create_api_token(db.session.get(User, user.id), "ci")
        token_id = token.id
    auth.login()
    response = client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf_token(client, "/account")})
    assert response.status_code == 302
    with app.app_context():
        assert service.user_for_token(plaintext) is None


def test_a_token_of_another_account_cannot_be_revoked(app, make_user, client, auth):
    owner = make_user("owner@example.com")
    make_user()
    with app.app_context():
        token, plaintext = service.create_api_token(db.session.get(User, owner.id))
        token_id = token.id
    auth.login()
    response = client.post(f"/account/tokens/{token_id}/revoke", data={"csrf_token": csrf_token(client, "/account")})
    assert response.status_code == 404
    with app.app_context():
        assert service.user_for_token(plaintext).id == owner.id


def test_password_change_revokes_api_tokens(app, make_user):
    user = make_user()
    with app.app_context():
        account = db.session.get(User, user.id)
        _, plaintext = service.create_api_token(account)
        service.change_password(account, PASSWORD, "another long passphrase")
        assert service.user_for_token(plaintext) is None
        assert account.session_version == 2


@pytest.mark.parametrize("plaintext", ["", "ps_", "ps_unknown", "not-a-token", "ps_" + "x" * 500])
def test_unknown_tokens_find_no_one(app, make_user, plaintext):
    make_user()
    with app.app_context():
        assert service.user_for_token(plaintext) is None


def test_create_user_raises_account_error_with_readable_text(app):
    with app.app_context():
        with pytest.raises(service.AccountError, match="at least 8 characters"):
            service.create_user("ada@example.com", "short")
        admin = service.create_user("Root@Example.com", PASSWORD, is_admin=True)
        assert admin.is_admin and admin.email == "root@example.com"


def test_a_tokens_last_use_is_recorded_to_the_minute_without_a_write_on_every_request(app, make_user):
    make_user()
    with app.app_context():
        user = db.session.scalar(select(User))
        token, plaintext = service.create_api_token(user, "script")
        assert token.last_used_at is None
        assert service.user_for_token(plaintext).id == user.id
        first = db.session.scalar(select(ApiToken)).last_used_at
        assert first is not None
        assert service.user_for_token(plaintext).id == user.id
        assert db.session.scalar(select(ApiToken)).last_used_at == first  # within the minute: not written again
        token = db.session.scalar(select(ApiToken))
        token.last_used_at = first - service.LAST_USED_PRECISION
        db.session.commit()
        service.user_for_token(plaintext)
        assert db.session.scalar(select(ApiToken)).last_used_at > first - service.LAST_USED_PRECISION
