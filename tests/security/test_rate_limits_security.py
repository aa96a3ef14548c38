"""Rate limits: three configurable tiers on every route, informative 429s, the sign-in tier per address and per
account, real client addresses behind the proxy, and limiting that survives a Redis outage without a single 500."""

from __future__ import annotations

import io
import uuid

import pytest

from studio.security import limiter_storage_uri
from tests.support.security import PASSWORD, csrf_token, login, methods, png_bytes, route_path, routes

EMAIL = "ada@example.com"
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
# Routes with no limit, on purpose: static files (nginx serves them in production), the health probes (load
# balancers poll it), the API description (static JSON) and the admin-only job dashboard (a 404 for everyone else).
# /metrics is scraped every few seconds and answers only the long random STUDIO_METRICS_TOKEN.
UNLIMITED = {"static", "health.healthz", "health.livez", "health.readyz", "api.openapi_document", "metrics.metrics"}
UNLIMITED_PREFIXES = ("rq_dashboard.",)


def is_limited(rule) -> bool:
    """Return True for routes that must carry a rate limit."""
    return rule.endpoint not in UNLIMITED and not rule.endpoint.startswith(UNLIMITED_PREFIXES)


@pytest.fixture
def tiered(security_app):
    """Return a factory of apps with rate limits on, counted in memory, and the given tiers."""
    def build(auth="1 per minute", upload="2 per minute", read="3 per minute", **overrides):
        config = {"RATELIMIT_ENABLED": True, "RATELIMIT_STORAGE_URI": "memory://", "RATELIMIT_AUTH": auth,
                  "RATELIMIT_UPLOAD": upload, "RATELIMIT_READ": read}
        return security_app(**{**config, **overrides})
    return build


def fresh_account(app, make_token, address):
    """Create an account, sign it in from its own address and return (client, bearer headers, CSRF token)."""
    from studio.auth import service
    from studio.extensions import db
    from studio.models import User

    email = f"user-{uuid.uuid4().hex[:8]}@example.com"
    with app.app_context():
        user = service.create_user(email, PASSWORD)
        db.session.expunge(user)
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = address
    assert login(client, email).status_code == 302
    with app.app_context():
        user = db.session.get(User, user.id)
        db.session.expunge(user)
    return client, make_token(user), user


def call(client, rule, method, bearer, token, task_id):
    """Call a route as a signed-in client: pages with the CSRF token, the API with the bearer token (remove.bg's
    endpoints with the same token as their X-Api-Key)."""
    headers = dict(bearer) if rule.rule.startswith("/api/") else {"X-CSRFToken": token}
    if rule.rule.startswith("/v1.0/"):
        headers = {"X-Api-Key": bearer["Authorization"].removeprefix("Bearer ")}
    data = {"photo": (io.BytesIO(png_bytes()), "a.png")} if rule.endpoint == "tasks.create" else {}
    return client.open(route_path(rule, task_id), method=method, headers=headers, data=data)


def resume_session(app, client, user) -> str:
    """Sign the client in again as the account, without the (rate-limited) sign-in form; return a CSRF token."""
    from studio.extensions import db
    from studio.models import User

    with app.app_context():
        identity = db.session.get(User, user.id).get_id()
        db.session.remove()
    with client.session_transaction() as session:
        session.clear()
        session["_user_id"] = identity
        session["_fresh"] = True
    return identity


TOKEN_PAGES = ["/", "/tasks", "/account"]


def test_every_route_is_rate_limited(tiered, make_token, make_stored_task):
    app = tiered(auth="2 per minute", upload="2 per minute", read="2 per minute")
    checked = []
    for number, rule in enumerate(routes(app)):
        if not is_limited(rule):
            continue
        for method in methods(rule):
            # A new account and address per route: allowances are per account and per address.
            client, bearer, user = fresh_account(app, make_token, f"10.1.{number}.{len(checked) % 250}")
            task_id = make_stored_task(user.id)
            statuses = []
            for page in TOKEN_PAGES:
                # Sign-out, password change and "sign out everywhere" end the session: start one for each call.
                resume_session(app, client, user)
                token = csrf_token(client, page)
                statuses.append(call(client, rule, method, bearer, token, task_id).status_code)
            assert 429 in statuses, f"{method} {rule.rule} is not rate limited: {statuses}"
            checked.append(f"{method} {rule.rule}")
    assert len(checked) >= 20


def assert_informative_429(response, limit):
    """Check a refusal: status, Retry-After and the X-RateLimit-* headers a client needs to back off."""
    assert response.status_code == 429
    assert int(response.headers["Retry-After"]) > 0
    assert response.headers["X-RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining"] == "0"
    assert int(response.headers["X-RateLimit-Reset"]) > 0


def test_three_tiers_each_with_its_own_configured_limit(tiered, make_token):
    app = tiered(auth="1 per minute", upload="2 per minute", read="3 per minute")
    client, bearer, _ = fresh_account(app, make_token, "192.0.2.10")
    token = csrf_token(client, "/tasks")  # one read of /tasks used up

    reads = [client.get("/tasks") for _ in range(3)]
    assert [response.status_code for response in reads] == [200, 200, 429]
    assert reads[0].headers["X-RateLimit-Limit"] == "3"
    assert_informative_429(reads[-1], 3)
    api_reads = [client.get("/api/v1/tasks", headers=bearer) for _ in range(4)]
    assert [response.status_code for response in api_reads] == [200, 200, 200, 429]
    assert_informative_429(api_reads[-1], 3)
    assert api_reads[-1].get_json()["error"]["code"] == "too_many_requests"

    uploads = [client.post("/tasks", headers={"X-CSRFToken": token}) for _ in range(2)]
    assert [response.status_code for response in uploads] == [400, 400]  # no photo: refused, but counted
    assert uploads[0].headers["X-RateLimit-Limit"] == "2"
    # Pages and API share one upload allowance per account.
    assert_informative_429(client.post("/api/v1/tasks", headers=bearer), 2)

    other = app.test_client()
    signing_in = [login(other, f"x{number}@example.com", REMOTE_ADDR="192.0.2.20").status_code for number in range(2)]
    assert signing_in == [401, 429]
    form = {"email": "y@example.com", "password": "p", "csrf_token": csrf_token(other, "/login")}
    refused = other.post("/login", data=form, environ_base={"REMOTE_ADDR": "192.0.2.20"})
    assert_informative_429(refused, 1)
    assert "Too many requests" in refused.get_data(as_text=True)


def test_forged_forwarded_for_behind_the_proxy_does_not_escape_the_limit(tiered):
    app = tiered(auth="3 per minute", STUDIO_PROXY_COUNT=1)
    client = app.test_client()
    token = csrf_token(client, "/login")

    def attempt(real_client: str, number: int) -> int:
        # nginx appends the address it saw to whatever the client sent: "<forged>, <real>".
        forged = f"198.51.{number % 250}.{number // 250 + 1}"
        return client.post("/login", data={"email": f"n{number}@example.com", "password": "p", "csrf_token": token},
                           headers={"X-Forwarded-For": f"{forged}, {real_client}"},
                           environ_base={"REMOTE_ADDR": "10.0.0.2"}).status_code

    assert [attempt("203.0.113.9", number) for number in range(6)] == [401, 401, 401, 429, 429, 429]
    # The limit is on the real client, not on the proxy every request comes through.
    assert attempt("203.0.113.10", 99) == 401


def test_without_a_trusted_proxy_forwarded_for_is_ignored(tiered):
    app = tiered(auth="1 per minute", STUDIO_PROXY_COUNT=0)
    client = app.test_client()
    statuses = [client.post("/api/v1/tokens", json={"email": f"n{number}@example.com", "password": "p"},
                            headers={"X-Forwarded-For": f"198.51.100.{number}"}).status_code for number in range(2)]
    assert statuses == [401, 429]


@pytest.mark.parametrize("redis_down", ["limiter storage", "all of redis"])
def test_limits_hold_in_memory_and_nothing_is_a_500_when_redis_is_down(
        tiered, make_token, make_stored_task, redis_down):
    overrides = {"RATELIMIT_STORAGE_URI": UNREACHABLE_REDIS}
    if redis_down == "all of redis":
        overrides["REDIS_URL"] = UNREACHABLE_REDIS
    app = tiered(auth="2 per minute", read="3 per minute", **overrides)
    client, bearer, user = fresh_account(app, make_token, "192.0.2.30")
    task_id = make_stored_task(user.id)
    token = csrf_token(client, "/account")

    assert [client.get("/tasks").status_code for _ in range(4)] == [200, 200, 200, 429]
    assert [app.test_client().post("/api/v1/tokens", json={"email": "z@example.com", "password": "p"},
                                   environ_base={"REMOTE_ADDR": "192.0.2.31"}).status_code
            for _ in range(3)] == [401, 401, 429]
    for rule in routes(app):
        for method in methods(rule):
            if rule.endpoint in ("auth.logout", "auth.end_sessions", "auth.change_password"):
                continue  # would end the session the sweep runs in
            response = call(client, rule, method, bearer, token, task_id)
            # 503 is the honest answer of the pages that need Redis itself (the health probe, the job dashboard).
            assert response.status_code < 500 or response.status_code == 503, \
                f"{method} {rule.rule} answered {response.status_code} with Redis down"


def test_limiter_storage_uri_spells_unix_sockets_the_limits_way():
    assert limiter_storage_uri("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert limiter_storage_uri("unix:///tmp/redis.sock?db=2") == "redis+unix:///tmp/redis.sock?db=2"


@pytest.fixture
def limited_app(security_app):
    """Return a function building an app with rate limits on and only the sign-in tier set, at 2 per minute."""
    def build(**overrides):
        config = {"RATELIMIT_ENABLED": True, "RATELIMIT_AUTH": "2 per minute", "RATELIMIT_STORAGE_URI": "memory://"}
        return security_app(**{**config, **overrides})
    return build


def _login_from(client, address, email, forwarded=None):
    """Post the sign-in form with a wrong password from this address (and X-Forwarded-For, if given)."""
    environ = {"REMOTE_ADDR": address}
    headers = {"X-Forwarded-For": forwarded} if forwarded else {}
    token = csrf_token(client, "/login")
    return client.post("/login", data={"email": email, "password": "wrong password", "csrf_token": token},
                       environ_base=environ, headers=headers)


def test_auth_tier_limits_per_address_with_retry_after(limited_app):
    client = limited_app().test_client()
    assert _login_from(client, "198.51.100.1", "a@example.com").status_code == 401
    assert _login_from(client, "198.51.100.1", "b@example.com").status_code == 401
    refused = _login_from(client, "198.51.100.1", "c@example.com")
    assert refused.status_code == 429
    assert int(refused.headers["Retry-After"]) > 0
    assert "Too many requests" in refused.get_data(as_text=True)
    assert _login_from(client, "198.51.100.2", "d@example.com").status_code == 401


def test_auth_tier_limits_per_account_email_across_addresses(limited_app):
    client = limited_app().test_client()
    assert _login_from(client, "198.51.100.1", "ada@example.com").status_code == 401
    assert _login_from(client, "198.51.100.2", " ADA@example.com").status_code == 401
    assert _login_from(client, "198.51.100.3", "ada@example.com").status_code == 429


def test_login_page_views_are_not_counted(limited_app):
    client = limited_app().test_client()
    for _ in range(5):
        assert client.get("/login").status_code == 200
    assert _login_from(client, "198.51.100.1", "ada@example.com").status_code == 401


def test_rate_limits_fall_back_to_memory_when_redis_is_down(limited_app):
    client = limited_app(RATELIMIT_STORAGE_URI=UNREACHABLE_REDIS).test_client()
    assert _login_from(client, "198.51.100.7", "a@example.com").status_code == 401
    assert _login_from(client, "198.51.100.7", "b@example.com").status_code == 401
    assert _login_from(client, "198.51.100.7", "c@example.com").status_code == 429


def test_proxy_count_decides_whose_address_is_limited(limited_app):
    behind_proxy = limited_app(STUDIO_PROXY_COUNT=1, RATELIMIT_AUTH="1 per minute").test_client()
    assert _login_from(behind_proxy, "10.0.0.2", "a@example.com", forwarded="203.0.113.1").status_code == 401
    assert _login_from(behind_proxy, "10.0.0.2", "b@example.com", forwarded="203.0.113.2").status_code == 401
    assert _login_from(behind_proxy, "10.0.0.2", "c@example.com", forwarded="203.0.113.1").status_code == 429

    direct = limited_app(STUDIO_PROXY_COUNT=0, RATELIMIT_AUTH="1 per minute").test_client()
    assert _login_from(direct, "10.0.0.2", "a@example.com", forwarded="203.0.113.1").status_code == 401
    # Without a trusted proxy a forged X-Forwarded-For changes nothing.
    assert _login_from(direct, "10.0.0.2", "b@example.com", forwarded="203.0.113.2").status_code == 429
