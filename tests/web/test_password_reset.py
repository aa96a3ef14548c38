"""Password reset: one-time links issued by an administrator (page and CLI); expired, used, replaced and wrong
links refused; CSRF on every form."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from studio.auth import service
from studio.extensions import db
from studio.models import ApiToken, AuditEntry, PasswordResetToken, User, utcnow
from tests.web.conftest import PASSWORD, csrf_token, make_app

EMAIL = "ada@example.com"
ADMIN = "root@example.com"
NEW_PASSWORD = "a brand new passphrase"
PUBLIC_URL = "https://photos.example.org"
LINK = re.compile(r"(https?://[^\s\"<?]+)?(/reset\?token=[A-Za-z0-9_-]+)")


def sign_in(client, email: str = EMAIL, password: str = PASSWORD):
    """Sign in through the real form."""
    return client.post("/login", data={"email": email, "password": password, "csrf_token": csrf_token(client)})


def set_password(client, path: str, password: str = NEW_PASSWORD, confirm: str | None = None):
    """Post the new-password form of a reset link."""
    return client.post(path, data={"password": password, "confirm": password if confirm is None else confirm,
                                   "csrf_token": csrf_token(client, "/login")})


def admin_link(app, client, user_id: int) -> str:
    """Press the admin page's reset-link button and return the path of the link it shows."""
    response = client.post(f"/admin/users/{user_id}/reset-link",
                           data={"csrf_token": csrf_token(client, f"/admin/users/{user_id}")})
    assert response.status_code == 201
    match = LINK.search(response.get_data(as_text=True))
    assert match, "no reset link on the page"
    return match.group(2)


def password_works(app, email: str, password: str) -> bool:
    with app.app_context():
        return service.authenticate(email, password) is not None


def tokens_of(app, user_id: int) -> list[PasswordResetToken]:
    with app.app_context():
        return list(db.session.scalars(select(PasswordResetToken).where(PasswordResetToken.user_id == user_id)))


@pytest.fixture
def ada(make_user) -> User:
    return make_user(EMAIL)


@pytest.fixture
def admin_client(app, make_user):
    make_user(ADMIN, is_admin=True)
    browser = app.test_client()
    assert sign_in(browser, ADMIN).status_code == 302
    return browser


# Links issued by an administrator.

def test_admin_link_sets_a_new_password_once_and_is_audited(app, client, admin_client, ada):
    path = admin_link(app, admin_client, ada.id)
    with app.app_context():
        stored = db.session.scalar(select(PasswordResetToken))
        assert stored.token_hash != path.split("=", 1)[1]  # only the digest is kept
        assert stored.expires_at - utcnow() > timedelta(hours=23)  # admin links last a day

    assert client.get(path).status_code == 200
    response = set_password(client, path)
    assert response.status_code == 302 and response.location.endswith("/login")
    assert password_works(app, EMAIL, NEW_PASSWORD)
    assert not password_works(app, EMAIL, PASSWORD)

    # Used once: the same link is refused, by GET and by POST, and the password stays.
    assert "not valid" in client.get(path).get_data(as_text=True)
    assert set_password(client, path, "yet another passphrase").status_code == 404
    assert password_works(app, EMAIL, NEW_PASSWORD)
    with app.app_context():
        actions = [entry.action for entry in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]
    assert actions == ["user.reset_link", "user.password_reset"]


def test_reset_signs_out_every_session_and_revokes_api_tokens(app, client, admin_client, ada):
    other_device = app.test_client()
    assert sign_in(other_device).status_code == 302
    assert other_device.get("/account").status_code == 200
    with app.app_context():
        service.create_api_token(db.session.get(User, ada.id), "laptop")

    set_password(client, admin_link(app, admin_client, ada.id))

    assert other_device.get("/account").status_code == 302  # back to the sign-in page
    with app.app_context():
        assert all(token.revoked_at is not None for token in db.session.scalars(select(ApiToken)))


def test_expired_link_is_refused(app, client, admin_client, ada):
    path = admin_link(app, admin_client, ada.id)
    with app.app_context():
        db.session.execute(update(PasswordResetToken).values(expires_at=utcnow() - timedelta(seconds=1)))
        db.session.commit()
    assert client.get(path).status_code == 404
    assert set_password(client, path).status_code == 404
    assert password_works(app, EMAIL, PASSWORD)


@pytest.mark.parametrize("token", ["wrong-token-aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa", "x", "a" * 5000])
def test_wrong_token_is_refused(app, client, admin_client, ada, token):
    admin_link(app, admin_client, ada.id)
    assert client.get(f"/reset?token={token}").status_code == 404
    assert set_password(client, f"/reset?token={token}").status_code == 404
    assert password_works(app, EMAIL, PASSWORD)


def test_a_new_link_or_a_password_change_invalidates_the_old_one(app, client, admin_client, ada):
    first = admin_link(app, admin_client, ada.id)
    second = admin_link(app, admin_client, ada.id)
    assert client.get(first).status_code == 404
    assert client.get(second).status_code == 200
    assert len(tokens_of(app, ada.id)) == 1

    with app.app_context():
        service.change_password(db.session.get(User, ada.id), PASSWORD, "changed by its owner")
    assert client.get(second).status_code == 404
    assert password_works(app, EMAIL, "changed by its owner")


def test_the_new_password_follows_the_sign_up_rules_and_the_link_survives_a_refusal(app, client, admin_client,
                                                                                    ada):
    path = admin_link(app, admin_client, ada.id)
    short = set_password(client, path, "short")
    assert short.status_code == 400 and "at least 8 characters" in short.get_data(as_text=True)
    mismatch = set_password(client, path, NEW_PASSWORD, confirm="something else entirely")
    assert mismatch.status_code == 400 and "do not match" in mismatch.get_data(as_text=True)
    assert set_password(client, path).status_code == 302
    assert password_works(app, EMAIL, NEW_PASSWORD)


def test_forms_refuse_a_missing_csrf_token(app, client, admin_client, ada):
    assert admin_client.post(f"/admin/users/{ada.id}/reset-link").status_code == 400
    assert tokens_of(app, ada.id) == []
    path = admin_link(app, admin_client, ada.id)
    response = client.post(path, data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    assert response.status_code == 400
    assert password_works(app, EMAIL, PASSWORD)


def test_only_administrators_can_make_a_link(app, client, ada):
    assert sign_in(client).status_code == 302
    response = client.post(f"/admin/users/{ada.id}/reset-link", data={"csrf_token": csrf_token(client, "/account")})
    assert response.status_code == 404
    assert tokens_of(app, ada.id) == []


def test_cli_prints_a_link_on_the_public_url(postgres_url, redis_url, tmp_path, make_user):
    app = make_app(postgres_url, redis_url, tmp_path, STUDIO_PUBLIC_URL=PUBLIC_URL)
    try:
        with app.app_context():
            service.create_user(EMAIL, PASSWORD)
        result = app.test_cli_runner().invoke(args=["studio", "reset-link", "Ada@Example.com"])
        assert result.exit_code == 0, result.output
        match = LINK.search(result.output)
        assert match and match.group(1) == PUBLIC_URL
        assert set_password(app.test_client(), match.group(2)).status_code == 302
        assert password_works(app, EMAIL, NEW_PASSWORD)

        unknown = app.test_cli_runner().invoke(args=["studio", "reset-link", "nobody@example.com"])
        assert unknown.exit_code == 1 and "No account" in unknown.output
        with app.app_context():
            assert db.session.scalar(select(AuditEntry.actor_email)) == "command line"
    finally:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


def test_a_reset_link_is_redacted_from_log_lines():
    from studio.logs import redact

    token = "Zq3-x_" + "a" * 37
    assert token not in redact(f"GET /reset?token={token} 200")
