"""Sign-in and token creation: no account enumeration, throttled per account and per address, lockouts that expire,
and a password policy that refuses weak passwords and keeps every other one exactly as typed."""

from __future__ import annotations

import re

import pytest
from argon2 import PasswordHasher

from studio.auth import service as account_service
from tests.support.security import PASSWORD, csrf_token, login

EMAIL = "ada@example.com"
# A signed CSRF token (itsdangerous: payload.timestamp.signature), different on every page.
SIGNED_TOKEN = re.compile(r"[\w-]{20,}\.[\w-]{4,}\.[\w-]{20,}")


class RecordingHasher(PasswordHasher):
    """The fast test hasher, recording every verify call."""

    def __init__(self) -> None:
        super().__init__(time_cost=1, memory_cost=1024, parallelism=1)
        self.verified: list[str] = []
        self.hashed: list[str] = []

    def hash(self, password, **kwargs):
        """Record the password hashed, then hash it."""
        self.hashed.append(password)
        return super().hash(password, **kwargs)

    def verify(self, hash, password):  # noqa: A002 - argon2's own parameter name
        """Record the hash checked, then verify."""
        self.verified.append(hash)
        return super().verify(hash, password)


@pytest.fixture
def hasher(monkeypatch) -> RecordingHasher:
    """Swap in the recording hasher for the account service."""
    recording = RecordingHasher()
    monkeypatch.setattr(account_service, "password_hasher", recording)
    return recording


def _page_without_tokens(response) -> str:
    return SIGNED_TOKEN.sub("TOKEN", response.get_data(as_text=True))


def test_unknown_account_and_wrong_password_look_the_same_and_both_verify_a_hash(app, make_user, hasher):
    # The same address twice, before and after the account exists, so the pages may differ in nothing at all.
    unknown = login(app.test_client(), EMAIL, "wrong password 1")
    unknown_api = app.test_client().post("/api/v1/tokens", json={"email": EMAIL, "password": "wrong password 1"})
    calls_for_unknown = list(hasher.verified)
    make_user(EMAIL)
    hasher.verified.clear()
    wrong = login(app.test_client(), EMAIL, "wrong password 1")
    wrong_api = app.test_client().post("/api/v1/tokens", json={"email": EMAIL, "password": "wrong password 1"})

    assert unknown.status_code == wrong.status_code == 401
    assert _page_without_tokens(unknown) == _page_without_tokens(wrong)
    assert unknown_api.status_code == wrong_api.status_code == 401
    assert unknown_api.get_json() == wrong_api.get_json()
    assert unknown_api.headers.get("WWW-Authenticate") == wrong_api.headers.get("WWW-Authenticate")
    # Similar work: one Argon2 verification per attempt either way (a dummy hash for the unknown account).
    assert len(calls_for_unknown) == len(hasher.verified) == 2
    assert all(hashed.startswith("$argon2id$") for hashed in calls_for_unknown + hasher.verified)


def _signed_up(app, password):
    """Sign up from a fresh client; return the answer, the page it leads to and whether the client is signed in."""
    client = app.test_client()
    response = client.post("/register", data={"email": EMAIL, "password": password, "confirm": password,
                                              "csrf_token": csrf_token(client, "/register")})
    following = client.get(response.headers["Location"])
    with client.session_transaction() as session:
        signed_in = "_user_id" in session
    return response, following, signed_in


def test_a_sign_up_looks_the_same_whether_the_email_has_an_account_or_not(app, hasher):
    # The same address twice: the first sign-up makes the account, the second meets it.
    new, new_page, new_signed_in = _signed_up(app, "first pass phrase")
    hashes_for_new = list(hasher.hashed)
    hasher.hashed.clear()
    taken, taken_page, taken_signed_in = _signed_up(app, "second pass phrase")

    assert new.status_code == taken.status_code == 302
    assert new.headers["Location"] == taken.headers["Location"]
    assert new.get_data() == taken.get_data()
    assert _page_without_tokens(new_page) == _page_without_tokens(taken_page)
    assert new_signed_in is taken_signed_in is False
    # Similar work: one Argon2 hash either way.
    assert (hashes_for_new, hasher.hashed) == (["first pass phrase"], ["second pass phrase"])
    # The account is the first sign-up's, untouched by the second.
    assert login(app.test_client(), EMAIL, "second pass phrase").status_code == 401
    assert login(app.test_client(), EMAIL, "first pass phrase").status_code == 302


@pytest.fixture
def limited(security_app, make_user, moved_clock):
    """Return an app whose auth tier allows 3 attempts a minute, counted in memory on a clock the test can move."""
    app = security_app(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://", RATELIMIT_AUTH="3 per minute")
    make_user(EMAIL)
    return app


def form_attempt(app, address, email=EMAIL, password="wrong password"):
    """Try to sign in through the form from one client address."""
    return login(app.test_client(), email, password, REMOTE_ADDR=address).status_code


def api_attempt(app, address, email=EMAIL, password="wrong password"):
    """Try to create an API token from one client address."""
    return app.test_client().post("/api/v1/tokens", json={"email": email, "password": password},
                                  environ_base={"REMOTE_ADDR": address}).status_code


@pytest.mark.parametrize("attempt", [form_attempt, api_attempt], ids=["form", "api"])
def test_brute_force_on_one_account_from_many_addresses_is_stopped_until_the_window_ends(limited, moved_clock,
                                                                                         attempt):
    statuses = [attempt(limited, f"198.51.100.{number}", email) for number, email in
                enumerate([EMAIL, " ADA@example.com", "Ada@Example.COM ", EMAIL, EMAIL], start=1)]
    assert statuses == [401, 401, 401, 429, 429]
    # Even the right password is refused while the account is locked: the attacker learns nothing from it.
    assert attempt(limited, "198.51.100.9", password=PASSWORD) == 429
    # Another account is not locked.
    assert attempt(limited, "198.51.100.10", "someone@example.com") == 401
    moved_clock(61)
    assert attempt(limited, "198.51.100.11", password=PASSWORD) in (201, 302)


@pytest.mark.parametrize("attempt", [form_attempt, api_attempt], ids=["form", "api"])
def test_one_address_trying_many_accounts_is_stopped_until_the_window_ends(limited, moved_clock, attempt):
    statuses = [attempt(limited, "203.0.113.5", f"guess{number}@example.com") for number in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    assert attempt(limited, "203.0.113.6", "guess9@example.com") == 401
    moved_clock(61)
    assert attempt(limited, "203.0.113.5", "guess10@example.com") == 401


def test_password_change_is_throttled_too(limited, moved_clock):
    client = limited.test_client()
    assert login(client, EMAIL, REMOTE_ADDR="192.0.2.1").status_code == 302
    statuses = [client.post("/account/password", data={
        "current_password": f"guess {number}", "new_password": "another pass phrase", "confirm": "another pass phrase",
        "csrf_token": csrf_token(client, "/account")}).status_code for number in range(4)]
    assert statuses[-1] == 429 and 429 not in statuses[:2]


def register(app, password, email=EMAIL):
    """Post the sign-up form."""
    client = app.test_client()
    return client.post("/register", data={"email": email, "password": password, "confirm": password,
                                          "csrf_token": csrf_token(client, "/register")})


@pytest.mark.parametrize("password, message", [
    ("short77", "at least 8 characters"),
    ("", "at least 8 characters"),
    ("password", "too common"),
    ("PassWord1", "too common"),
    ("qwertyuiop", "too common"),
    ("12345678", "too common"),
    ("x" * 1025, "at most 1024 characters"),
])
def test_weak_or_absurd_passwords_are_refused_with_the_reason(app, password, message):
    response = register(app, password)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert login(app.test_client(), EMAIL, password).status_code == 401


@pytest.mark.parametrize("password", [
    "eight ch",
    "y" * 500,
    "  Pässwörd mit Ümläuten und Leerzeichen  ",
    "密码是一个很长的句子",
    "🔒🔑 emoji only? 🔒🔑",
    "e\u0301te\u0301 de\u0301compose\u0301",  # decomposed accents: kept, not normalised
    "tab\tand\\backslash\"quote'",
], ids=["eight", "500 chars", "spaces and umlauts", "cjk", "emoji", "nfd", "specials"])
def test_long_and_unicode_passwords_are_kept_exactly_as_typed(app, password):
    assert register(app, password).status_code == 302
    assert login(app.test_client(), EMAIL, password).status_code == 302
    assert app.test_client().post("/api/v1/tokens", json={"email": EMAIL, "password": password}).status_code == 201
    # Nothing is trimmed or cut: a different string is a wrong password.
    for variant in {password.strip(), password[:-1], password + " "} - {password}:
        assert login(app.test_client(), EMAIL, variant).status_code == 401, repr(variant)


@pytest.mark.parametrize("path", ["/login", "/register"])
def test_control_characters_in_the_email_are_a_form_error_not_a_database_error(app, make_user, path):
    # PostgreSQL refuses any text holding NUL: the lookup itself must not turn that into a 500.
    make_user("ada@example.com")
    client = app.test_client()
    response = client.post(path, data={"email": "ada\x00@example.com", "password": PASSWORD,
                                       "confirm": PASSWORD, "csrf_token": csrf_token(client, path)})
    assert response.status_code in (200, 400, 401, 422)
    with app.app_context():
        assert account_service.find_user("ada\x00@example.com") is None
    with pytest.raises(account_service.AccountError):
        account_service.validate_email("ada\x01@example.com")
