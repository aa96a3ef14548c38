"""Password reset: one-time links issued by an administrator (page and CLI) or mailed through a real local SMTP
server; expired, used, replaced and wrong links refused; the Host header never names the link's site; one answer for
every email; CSRF on every form."""

from __future__ import annotations

import logging
import queue
import re
import socket
from datetime import timedelta
from email import message_from_bytes
from typing import Iterator

import pytest
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

from studio.auth import mail, reset, service
from studio.extensions import db, limiter
from studio.models import ApiToken, AuditEntry, PasswordResetToken, User, utcnow
from tests.support.web import CSRF_FIELD, PASSWORD, csrf_token, make_app

EMAIL = "ada@example.com"
ADMIN = "root@example.com"
NEW_PASSWORD = "a brand new passphrase"
PUBLIC_URL = "https://photos.example.org"
# A session's CSRF token, as the form field and as the header HTMX sends.
CSRF_VALUES = re.compile(r'(name="csrf_token" value="|"X-CSRFToken": ")[^"]+')
LINK = re.compile(r"(https?://[^\s\"<?]+)?(/reset\?token=[A-Za-z0-9_-]+)")
# A bound on waiting for the background sender, not a timing claim: the mail normally arrives in milliseconds.
MAIL_WAIT_SECONDS = 30


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


# "Forgot password?"

def test_without_smtp_the_page_says_to_ask_an_administrator(app, client, ada, monkeypatch):
    sent = []
    monkeypatch.setattr(mail, "request_link", sent.append)
    assert "Forgot password?" in client.get("/login").get_data(as_text=True)
    page = client.get("/forgot").get_data(as_text=True)
    assert "Ask the site's administrator" in page and 'name="email"' not in page
    response = client.post("/forgot", data={"email": EMAIL, "csrf_token": csrf_token(client)})
    assert response.status_code == 200 and "Ask the site's administrator" in response.get_data(as_text=True)
    assert sent == [] and tokens_of(app, ada.id) == []


class Inbox:
    """A real SMTP server on a local port; what it receives waits in a queue."""

    def __init__(self) -> None:
        self.messages: queue.Queue = queue.Queue()

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 (aiosmtpd's hook name)
        self.messages.put((envelope.rcpt_tos, message_from_bytes(envelope.content)))
        return "250 OK"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def inbox() -> Iterator[tuple[Inbox, int]]:
    handler = Inbox()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


@pytest.fixture
def mail_app(postgres_url, redis_url, tmp_path, inbox):
    """Return a factory of apps that mail through the test's SMTP server (or the given port), Host checks off."""
    apps = []

    def build(port: int | None = None, **overrides):
        app = make_app(postgres_url, redis_url, tmp_path, STUDIO_SMTP_HOST="127.0.0.1",
                       STUDIO_SMTP_PORT=port or inbox[1], STUDIO_SMTP_TLS="none", STUDIO_SMTP_TIMEOUT_SECONDS=5,
                       STUDIO_SMTP_FROM="studio@example.org", STUDIO_PUBLIC_URL=PUBLIC_URL, TRUSTED_HOSTS=None,
                       **overrides)
        with app.app_context():
            service.create_user(EMAIL, PASSWORD)
        apps.append(app)
        return app
    yield build
    for app in apps:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


@pytest.fixture
def senders(monkeypatch) -> list:
    """Keep the background senders' threads, so a test can wait for them to finish."""
    threads = []
    real = mail.request_link
    monkeypatch.setattr(mail, "request_link", lambda email: threads.append(real(email)) or threads[-1])
    return threads


def ask(client, email: str, headers: dict | None = None):
    """Post the "Forgot password?" form, its CSRF token fetched with the same headers (a Host, say)."""
    page = client.get("/forgot", headers=headers).get_data(as_text=True)
    token = CSRF_FIELD.search(page).group(1)
    return client.post("/forgot", data={"email": email, "csrf_token": token}, headers=headers)


def finish(threads: list) -> None:
    for thread in threads:
        thread.join(MAIL_WAIT_SECONDS)
        assert not thread.is_alive()


def test_emailed_link_resets_the_password_and_ignores_the_host_header(mail_app, inbox, senders):
    app = mail_app()
    client = app.test_client()
    response = ask(client, "ADA@example.com", headers={"Host": "attacker.example"})
    assert response.status_code == 302
    finish(senders)
    recipients, message = inbox[0].messages.get(timeout=MAIL_WAIT_SECONDS)
    assert recipients == [EMAIL] and message["From"] == "studio@example.org"
    text = message.get_payload(decode=True).decode()
    match = LINK.search(text)
    assert match and match.group(1) == PUBLIC_URL  # never the request's Host
    assert "attacker.example" not in text
    with app.app_context():
        stored = db.session.scalar(select(PasswordResetToken))
        assert timedelta(minutes=59) < stored.expires_at - utcnow() <= timedelta(hours=1)

    assert set_password(client, match.group(2)).status_code == 302
    assert password_works(app, EMAIL, NEW_PASSWORD)
    assert set_password(client, match.group(2), "yet another passphrase").status_code == 404


def test_an_unknown_email_gets_the_same_answer_and_no_mail(mail_app, inbox, senders):
    app = mail_app()
    known = ask(app.test_client(), EMAIL)
    unknown = ask(app.test_client(), "nobody@example.com")
    finish(senders)
    assert (known.status_code, known.location) == (unknown.status_code, unknown.location)
    shown = [app.test_client() for _ in range(2)]
    for browser, email in zip(shown, (EMAIL, "nobody@example.com")):
        ask(browser, email)
    finish(senders)
    # The next page, the message on it included, is the same but for the email and the session's CSRF token.
    pages = [CSRF_VALUES.sub("CSRF", browser.get("/login").get_data(as_text=True)).replace(email, "EMAIL")
             for browser, email in zip(shown, (EMAIL, "nobody@example.com"))]
    assert "If an account exists for EMAIL" in pages[0]
    assert pages[0] == pages[1]
    messages = []
    while not inbox[0].messages.empty():
        messages.append(inbox[0].messages.get())
    assert [recipients for recipients, _ in messages] == [[EMAIL], [EMAIL]]


def test_a_broken_smtp_server_changes_nothing_on_the_page_and_is_logged(mail_app, senders, caplog):
    app = mail_app(port=free_port())  # nothing listens there
    with caplog.at_level(logging.ERROR, logger="studio.auth.mail"):
        response = ask(app.test_client(), EMAIL)
        finish(senders)
    assert response.status_code == 302 and response.location.endswith("/login")
    assert "could not send a password reset email" in caplog.text
    with app.app_context():
        assert db.session.scalar(select(PasswordResetToken)) is None  # no link that nobody received


def test_an_invalid_email_is_a_clear_400(mail_app, senders):
    response = ask(mail_app().test_client(), "not an address")
    assert response.status_code == 400 and "valid email" in response.get_data(as_text=True)
    assert senders == []


def test_requests_are_limited_per_email_and_per_address(mail_app, senders):
    limiter.limit_manager.set_default_limits([])
    app = mail_app(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://", RATELIMIT_RESET="2 per hour")
    browsers = [app.test_client() for _ in range(4)]
    for number, browser in enumerate(browsers):
        browser.environ_base["REMOTE_ADDR"] = f"198.51.100.{number + 1}"
    # One email from many addresses.
    assert [ask(browser, EMAIL).status_code for browser in browsers[:3]] == [302, 302, 429]
    # Many emails from one address.
    assert [ask(browsers[3], f"user{number}@example.com").status_code for number in range(3)] == [302, 302, 429]
    finish(senders)
    assert len(senders) == 4


def test_a_link_for_a_disabled_account_is_not_mailed(mail_app, inbox, senders):
    app = mail_app()
    with app.app_context():
        db.session.execute(update(User).values(disabled_at=utcnow()))
        db.session.commit()
    ask(app.test_client(), EMAIL)
    finish(senders)
    assert inbox[0].messages.empty()
    with app.app_context():
        assert db.session.scalar(select(PasswordResetToken)) is None
    assert reset.INVALID_LINK


def test_a_reset_link_is_redacted_from_log_lines():
    from studio.logs import redact

    token = "Zq3-x_" + "a" * 37
    assert token not in redact(f"GET /reset?token={token} 200")


def test_the_admin_page_makes_the_link_for_the_public_url_whatever_the_host_header(postgres_url, redis_url,
                                                                                   tmp_path):
    app = make_app(postgres_url, redis_url, tmp_path, STUDIO_PUBLIC_URL=PUBLIC_URL, TRUSTED_HOSTS=None)
    try:
        with app.app_context():
            service.create_user(ADMIN, PASSWORD, is_admin=True)
            user_id = service.create_user(EMAIL, PASSWORD).id
        browser = app.test_client()
        browser.environ_base["HTTP_HOST"] = "attacker.example"
        assert sign_in(browser, ADMIN).status_code == 302
        response = browser.post(f"/admin/users/{user_id}/reset-link",
                                data={"csrf_token": csrf_token(browser, f"/admin/users/{user_id}")})
        assert response.status_code == 201
        page = response.get_data(as_text=True)
        assert LINK.search(page).group(1) == PUBLIC_URL
        assert "attacker.example/reset" not in page
    finally:
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()
