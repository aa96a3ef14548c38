"""Guessing is slowed without handing attackers a lockout (device cookies), and a session alone cannot mint tokens
or keep them alive past "sign out everywhere"."""

from __future__ import annotations

import pytest

from studio.auth import devices
from tests.support.security import PASSWORD, csrf_token, login

pytestmark = pytest.mark.integration

EMAIL = "ada@example.com"
DOMAIN = "studio.test"  # the test apps' SERVER_NAME


@pytest.fixture
def limited(security_app, make_user, moved_clock):
    """An app whose auth tier allows 3 attempts a minute, counted in memory."""
    app = security_app(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://", RATELIMIT_AUTH="3 per minute")
    make_user(EMAIL)
    return app


def _guess(app, address: str, email: str = EMAIL, cookie: str | None = None) -> int:
    client = app.test_client()
    if cookie:
        client.set_cookie(devices.COOKIE_NAME, cookie, domain=DOMAIN)
    return login(client, email, "wrong password", REMOTE_ADDR=address).status_code


def _device_cookie(client) -> str:
    cookie = client.get_cookie(devices.COOKIE_NAME, domain=DOMAIN)
    assert cookie is not None and cookie.http_only
    return cookie.value


def test_a_browser_that_signed_in_before_is_not_locked_out_by_guessing_from_anywhere(limited):
    owner = limited.test_client()
    assert login(owner, EMAIL, REMOTE_ADDR="192.0.2.10").status_code == 302
    owner.post("/logout", data={"csrf_token": csrf_token(owner, "/account")})

    # Guesses from one address, then from many: the account is locked for clients it does not know (the owner's
    # first sign-in, from a browser it did not know yet, counted there too).
    assert [_guess(limited, "198.51.100.7") for _ in range(4)] == [401, 401, 429, 429]
    assert [_guess(limited, f"203.0.113.{number}") for number in range(3)] == [429, 429, 429]
    assert login(limited.test_client(), EMAIL, REMOTE_ADDR="192.0.2.99").status_code == 429

    # The owner's browser, from its usual address or another, signs in with the right password all the same.
    assert login(owner, EMAIL, REMOTE_ADDR="192.0.2.10").status_code == 302
    assert owner.get("/account").status_code == 200
    other_network = limited.test_client()
    other_network.set_cookie(devices.COOKIE_NAME, _device_cookie(owner), domain=DOMAIN)
    assert login(other_network, EMAIL, REMOTE_ADDR="198.51.100.7").status_code == 302


def test_the_token_exchange_honours_the_device_cookie_too(limited):
    owner = limited.test_client()
    response = owner.post("/api/v1/tokens", json={"email": EMAIL, "password": PASSWORD},
                          environ_base={"REMOTE_ADDR": "192.0.2.10"})
    assert response.status_code == 201
    assert [_guess(limited, "198.51.100.7") for _ in range(4)][-1] == 429
    again = owner.post("/api/v1/tokens", json={"email": EMAIL, "password": PASSWORD},
                       environ_base={"REMOTE_ADDR": "198.51.100.7"})
    assert again.status_code == 201


def _signed_in(app, email: str, address: str):
    client = app.test_client()
    assert login(client, email, REMOTE_ADDR=address).status_code == 302
    return client


def _token_guess(client, email: str, address: str) -> int:
    return client.post("/api/v1/tokens", json={"email": email, "password": "wrong password"},
                       environ_base={"REMOTE_ADDR": address}).status_code


def test_a_session_buys_no_guesses_of_its_own_against_another_account(limited, make_user):
    for number in range(2):
        make_user(f"mallory{number}@example.com")
    first, second = (_signed_in(limited, f"mallory{number}@example.com", f"192.0.2.{20 + number}")
                     for number in range(2))
    # Each attacker account guesses from its own address: the victim's allowance is one, whoever is signed in.
    guesses = [_token_guess(first, EMAIL, "198.51.100.20") for _ in range(2)]
    guesses += [_token_guess(second, EMAIL, "198.51.100.21") for _ in range(2)]
    assert guesses == [401, 401, 401, 429]


def test_a_session_buys_no_guesses_of_its_own_from_an_address(limited, make_user):
    for name in ("mallory0", "mallory1", "bob", "carol"):
        make_user(f"{name}@example.com")
    first, second = (_signed_in(limited, f"mallory{number}@example.com", f"192.0.2.{20 + number}")
                     for number in range(2))
    # Two accounts signed in on one address, each guessing at another victim: the address's allowance is one.
    guesses = [_token_guess(first, "bob@example.com", "198.51.100.30") for _ in range(2)]
    guesses += [_token_guess(second, "carol@example.com", "198.51.100.30") for _ in range(2)]
    assert guesses == [401, 401, 401, 429]


def test_a_device_cookie_only_counts_for_its_own_account_and_is_throttled_on_its_own(limited, make_user):
    make_user("mallory@example.com")
    attacker = limited.test_client()
    assert login(attacker, "mallory@example.com", REMOTE_ADDR="198.51.100.7").status_code == 302
    own_cookie = _device_cookie(attacker)
    forged = own_cookie[:-4] + ("AAAA" if not own_cookie.endswith("AAAA") else "BBBB")

    # Mallory's cookie, or a forged one, buys no allowance of its own on Ada's account.
    statuses = [_guess(limited, f"203.0.113.{number}", cookie=cookie)
                for number, cookie in enumerate([own_cookie, forged, own_cookie, forged])]
    assert statuses == [401, 401, 401, 429]

    # A device cookie of Ada's that guesses (a stolen one) runs out of its own allowance, and only that.
    # (The window has not moved: Ada's allowance for unknown clients is still spent.)
    ada_device = limited.test_client()
    ada_device.set_cookie(devices.COOKIE_NAME, _issue_cookie(limited), domain=DOMAIN)
    assert [login(ada_device, EMAIL, "wrong", REMOTE_ADDR="192.0.2.10").status_code for _ in range(4)] \
        == [401, 401, 401, 429]
    other_device = limited.test_client()
    other_device.set_cookie(devices.COOKIE_NAME, _issue_cookie(limited), domain=DOMAIN)
    assert login(other_device, EMAIL, REMOTE_ADDR="192.0.2.11").status_code == 302


def _issue_cookie(app) -> str:
    """Return a fresh device cookie for Ada, as her successful sign-in on a new device sets it."""
    with app.test_request_context("/login", method="POST"):
        devices.remember(EMAIL)
        response = app.process_response(app.response_class())
    return response.headers["Set-Cookie"].split(";", 1)[0].split("=", 1)[1]


def test_creating_a_token_on_the_account_page_asks_for_the_password_again(security_app, make_user):
    app = security_app()
    make_user(EMAIL)
    client = app.test_client()
    assert login(client, EMAIL).status_code == 302
    for password in (None, "", "wrong password"):
        data = {"name": "stolen session", "csrf_token": csrf_token(client, "/account")}
        if password is not None:
            data["password"] = password
        response = client.post("/account/tokens", data=data)
        assert response.status_code == 400 and "password is not correct" in response.get_data(as_text=True)
        assert "new-token-value" not in response.get_data(as_text=True)
    response = client.post("/account/tokens", data={"name": "script", "password": PASSWORD,
                                                    "csrf_token": csrf_token(client, "/account")})
    assert response.status_code == 201 and "new-token-value" in response.get_data(as_text=True)


@pytest.mark.parametrize("revoke", [True, False])
def test_sign_out_everywhere_offers_to_revoke_the_api_tokens(security_app, make_user, make_token, revoke):
    app = security_app()
    user = make_user(EMAIL)
    bearer = make_token(user)
    client = app.test_client()
    assert login(client, EMAIL).status_code == 302
    assert "revoke_tokens" in client.get("/account").get_data(as_text=True)
    data = {"csrf_token": csrf_token(client, "/account")}
    if revoke:
        data["revoke_tokens"] = "true"
    assert client.post("/account/sessions/end", data=data).status_code == 302
    assert client.get("/account").status_code == 302  # signed out here too
    assert app.test_client().get("/api/v1/tasks", headers=bearer).status_code == (401 if revoke else 200)
