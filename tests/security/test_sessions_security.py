"""Sessions: a new session on sign-in, sign-out revoked server-side, password changes end other sessions and tokens."""

from __future__ import annotations

from datetime import timedelta

from studio.auth.sessions import SESSION_ID_KEY, id_hash, purge_expired_revocations
from studio.extensions import db
from studio.models import RevokedSession, User, utcnow
from tests.support.security import PASSWORD, csrf_token, login, session_cookie, signed_in, with_cookie

EMAIL = "ada@example.com"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"


def session_id(client) -> str | None:
    """Return the server-side session id the client's cookie carries."""
    with client.session_transaction() as session:
        return session.get(SESSION_ID_KEY)


def logout(client):
    """Post the sign-out form."""
    return client.post("/logout", data={"csrf_token": csrf_token(client, "/tasks")})


def test_sign_in_starts_a_new_session_and_the_cookie_from_before_is_worth_nothing(app, make_user):
    make_user(EMAIL)
    client = app.test_client()
    with client.session_transaction() as session:
        # What an attacker who planted a cookie in the victim's browser would know.
        session[SESSION_ID_KEY] = "planted-by-attacker"
        session["planted"] = True
    client.get("/login")
    before = session_cookie(client)
    assert login(client, EMAIL).status_code == 302
    after = session_cookie(client)
    assert after != before
    assert session_id(client) not in (None, "planted-by-attacker")
    with client.session_transaction() as session:
        assert "planted" not in session
    assert signed_in(client)
    assert not signed_in(with_cookie(app, before)), "the pre-sign-in cookie must not be signed in"


def test_each_sign_in_gets_its_own_session_id(app, make_user):
    make_user(EMAIL)
    first, second = app.test_client(), app.test_client()
    login(first, EMAIL)
    login(second, EMAIL)
    assert session_id(first) and session_id(second) and session_id(first) != session_id(second)


def test_a_cookie_replayed_after_sign_out_is_refused(app, make_user):
    make_user(EMAIL)
    client = app.test_client()
    login(client, EMAIL)
    stolen, revoked = session_cookie(client), session_id(client)
    assert signed_in(with_cookie(app, stolen))
    assert logout(client).status_code == 302
    assert not signed_in(client)
    replay = with_cookie(app, stolen)
    assert not signed_in(replay)
    assert replay.get("/tasks").status_code == 302
    # The replayed request is answered with an anonymous cookie, so the revoked id is not re-signed and kept alive.
    with replay.session_transaction() as session:
        assert "_user_id" not in session and SESSION_ID_KEY not in session
    with app.app_context():
        # Kept as a digest, for as long as Flask would accept the cookie's signature, and no longer.
        record = db.session.get(RevokedSession, id_hash(revoked))
        lifetime = app.permanent_session_lifetime
        assert utcnow() + lifetime - timedelta(minutes=1) < record.expires_at <= utcnow() + lifetime
        assert db.session.get(RevokedSession, revoked) is None


def test_expired_revocations_are_purged_and_live_ones_kept(app, make_user):
    make_user(EMAIL)
    client = app.test_client()
    login(client, EMAIL)
    logout(client)
    with app.app_context():
        assert purge_expired_revocations() == 0
        record = db.session.scalars(db.select(RevokedSession)).one()
        record.expires_at = utcnow() - timedelta(seconds=1)  # as if PERMANENT_SESSION_LIFETIME had passed
        db.session.commit()
        assert purge_expired_revocations() == 1
        db.session.commit()
        assert db.session.scalars(db.select(RevokedSession)).all() == []


def test_signing_out_one_browser_leaves_the_others_signed_in(app, make_user):
    make_user(EMAIL)
    laptop, phone = app.test_client(), app.test_client()
    login(laptop, EMAIL)
    login(phone, EMAIL)
    logout(laptop)
    assert not signed_in(laptop) and signed_in(phone)


def test_sign_out_holds_through_a_redis_outage_and_works_during_one(app, security_app, make_user):
    make_user(EMAIL)
    client, other = app.test_client(), app.test_client()
    login(client, EMAIL)
    login(other, EMAIL)
    stolen = session_cookie(client)
    logout(client)
    # The same site while Redis is unreachable: the revocation lives in PostgreSQL, so the stolen cookie stays dead.
    outage = security_app(REDIS_URL=UNREACHABLE_REDIS)
    assert not signed_in(with_cookie(outage, stolen))
    during = with_cookie(outage, session_cookie(other))
    assert signed_in(during), "a Redis outage must not sign people out"
    # Signing out during the outage ends that session alone, as always.
    copied = session_cookie(during)
    assert during.post("/logout", data={"csrf_token": csrf_token(during, "/tasks")}).status_code == 302
    assert not signed_in(with_cookie(outage, copied)) and not signed_in(with_cookie(app, copied))


def test_password_change_ends_other_sessions_and_api_tokens_but_not_this_one(app, make_user, make_token):
    user = make_user(EMAIL)
    bearer = make_token(user)
    mine, other = app.test_client(), app.test_client()
    login(mine, EMAIL)
    login(other, EMAIL)
    old_cookie = session_cookie(mine)
    assert app.test_client().get("/api/v1/tasks", headers=bearer).status_code == 200
    response = mine.post("/account/password", data={
        "current_password": PASSWORD, "new_password": "a brand new pass phrase", "confirm": "a brand new pass phrase",
        "csrf_token": csrf_token(mine, "/account")})
    assert response.status_code == 302
    assert signed_in(mine)
    assert not signed_in(other)
    assert not signed_in(with_cookie(app, old_cookie))
    assert app.test_client().get("/api/v1/tasks", headers=bearer).status_code == 401
    assert login(app.test_client(), EMAIL).status_code == 401
    assert login(app.test_client(), EMAIL, "a brand new pass phrase").status_code == 302


def test_sign_out_everywhere_ends_every_session(app, make_user):
    make_user(EMAIL)
    mine, other = app.test_client(), app.test_client()
    login(mine, EMAIL)
    login(other, EMAIL)
    assert mine.post("/account/sessions/end", data={"csrf_token": csrf_token(mine, "/account")}).status_code == 302
    assert not signed_in(mine) and not signed_in(other)


def test_a_refused_session_version_stays_refused(app, make_user):
    user = make_user(EMAIL)
    client = app.test_client()
    login(client, EMAIL)
    cookie = session_cookie(client)
    with app.app_context():
        db.session.get(User, user.id).session_version += 1
        db.session.commit()
    assert not signed_in(with_cookie(app, cookie))
