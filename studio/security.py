"""Security plumbing: proxy headers, response security headers and the rate-limit tiers."""

from __future__ import annotations

from typing import Any, Callable, TypeVar
from urllib.parse import urlsplit

from flask import Flask, current_app, has_request_context, request
from flask.sessions import SecureCookieSessionInterface
from flask_limiter.util import get_remote_address
from flask_login import current_user
from werkzeug.middleware.proxy_fix import ProxyFix
from werkzeug.wrappers import Response

from studio.extensions import limiter

View = TypeVar("View", bound=Callable)


class SessionInterface(SecureCookieSessionInterface):
    """Signed-cookie sessions whose cookie is also Secure whenever the request itself came over HTTPS."""

    def get_cookie_secure(self, app: Flask) -> bool:
        """Return True when STUDIO_SECURE_COOKIES is set or the request is HTTPS (per the trusted proxy)."""
        # request.is_secure reads X-Forwarded-Proto only through ProxyFix, i.e. only from a trusted proxy.
        return super().get_cookie_secure(app) or (has_request_context() and request.is_secure)


class ProbeHosts:
    """Let health probes and metric scrapes through whatever Host they name.

    Kubelets and Prometheus call a pod by its address (10.1.2.3:8000, web:8000), which TRUSTED_HOSTS rightly
    refuses for pages. These few paths build no links and show no user data, so they are answered under the
    first trusted name instead of a 400.
    """

    PATHS = frozenset({"/livez", "/readyz", "/healthz", "/metrics"})

    def __init__(self, wsgi_app: Callable, host: str) -> None:
        self.wsgi_app = wsgi_app
        self.host = host

    def __call__(self, environ: dict, start_response: Callable) -> Any:
        """Serve the request, a probe's under the trusted name."""
        if environ.get("PATH_INFO") in self.PATHS:
            environ["HTTP_HOST"] = self.host
        return self.wsgi_app(environ, start_response)


def init_app(app: Flask) -> None:
    """Trust the configured proxies, point the limiter at Redis and add security headers; call before limiter."""
    trusted_hosts = app.config.get("TRUSTED_HOSTS")
    if trusted_hosts:
        app.wsgi_app = ProbeHosts(app.wsgi_app, trusted_hosts[0].lstrip("."))
    proxies = app.config.get("STUDIO_PROXY_COUNT", 0)
    if proxies:
        # Only as many hops as there really are proxies: more would let clients forge their address.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies, x_prefix=proxies)
    app.config.setdefault("RATELIMIT_STORAGE_URI", limiter_storage_uri(app.config["REDIS_URL"]))
    # A Redis outage must not take sign-in down with it: count in memory until Redis is back.
    app.config.setdefault("RATELIMIT_IN_MEMORY_FALLBACK_ENABLED", True)
    app.config.setdefault("RATELIMIT_HEADERS_ENABLED", True)
    app.session_interface = SessionInterface()
    csp = content_security_policy(app.config)
    always_https = bool(app.config.get("SESSION_COOKIE_SECURE"))

    @app.after_request
    def add_security_headers(response: Response) -> Response:
        # setdefault: a page with needs of its own (the admin job dashboard) may have set a policy already.
        response.headers.setdefault("Content-Security-Policy", csp)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if always_https or request.is_secure:
            response.headers.setdefault("Strict-Transport-Security", "max-age=31536000")
        if response.mimetype == "text/html" and "Cache-Control" not in response.headers:
            # Pages show private photos and one-time tokens: keep them out of shared and back-button caches.
            response.headers["Cache-Control"] = "no-store"
        return response


def limiter_storage_uri(redis_url: str) -> str:
    """Return the limits-library storage URI for a redis-py URL (unix sockets are spelled redis+unix)."""
    if redis_url.startswith("unix://"):
        return "redis+unix://" + redis_url[len("unix://"):]
    return redis_url


def content_security_policy(config: dict) -> str:
    """Return the CSP: our own scripts and styles only, images also from the S3 endpoint when S3 is used."""
    image_sources = ["'self'", "data:", "blob:"]
    if config.get("STUDIO_S3_BUCKET"):
        endpoint = config.get("STUDIO_S3_PUBLIC_ENDPOINT_URL") or config.get("STUDIO_S3_ENDPOINT_URL")
        if endpoint:
            parts = urlsplit(endpoint)
            image_sources.append(f"{parts.scheme}://{parts.netloc}")
        else:
            # AWS hands out per-bucket, per-region hosts for presigned URLs: allow any HTTPS image.
            image_sources.append("https:")
    directives = {
        "default-src": "'self'",
        "script-src": "'self'",
        "style-src": "'self'",
        "img-src": " ".join(image_sources),
        "connect-src": "'self'",
        "object-src": "'none'",
        "base-uri": "'self'",
        "form-action": "'self'",
        "frame-ancestors": "'none'",
    }
    return "; ".join(f"{name} {value}" for name, value in directives.items())


def client_key() -> str:
    """Return who is asking, for rate limits: the account (the API's bearer token's, the pages' signed-in one), else
    the client address; an account's pages and API share its allowances."""
    # Imported here: the API package imports this module for its decorators.
    from studio.api.auth import TOKEN_BLUEPRINTS, current_api_user

    if request.blueprint in TOKEN_BLUEPRINTS:
        user = current_api_user()
    else:
        user = current_user if current_user.is_authenticated else None
    return f"user:{user.id}" if user is not None else f"ip:{get_remote_address()}"


def _submitted_email() -> str | None:
    """Return the normalised email a sign-in, sign-up or token request names, or None."""
    # Imported here: the auth package imports this module for its decorators.
    from studio.auth.service import normalise_email

    email = request.form.get("email")
    if email is None and request.is_json:
        body = request.get_json(silent=True)
        email = body.get("email") if isinstance(body, dict) else None
    return normalise_email(email) if isinstance(email, str) and normalise_email(email) else None


def _trusted_device_key(email: str | None) -> str | None:
    from studio.auth import devices

    device = devices.trusted_for(email) if email else None
    return f"device:{device.device_id}" if device else None


def _checked_email() -> str | None:
    """Return the email whose password a request checks: the one it names, else the signed-in account's own."""
    email = _submitted_email()
    if email is None and current_user.is_authenticated:
        from studio.auth.service import normalise_email

        email = normalise_email(current_user.email) or None
    return email


def _account_key() -> str:
    """Key password checks by the account they are for, whoever is signed in: a device that signed in to that
    account before has an allowance of its own."""
    email = _checked_email()
    if email is None:
        return f"ip:{get_remote_address()}"
    # The same normalisation as the account lookup: no spelling of an address gets a fresh allowance.
    return _trusted_device_key(email) or f"email:{email}"


def _address_key() -> str:
    """Key password checks by client address, whoever is signed in; a trusted device counts on its own."""
    return _trusted_device_key(_checked_email()) or f"ip:{get_remote_address()}"


def _tier(name: str) -> Callable[[], str]:
    return lambda: current_app.config[name]


def auth_limit(view: View) -> View:
    """Limit password checks (sign-in, sign-up, tokens, password change) per address and per account.

    A client with a device cookie for the account (studio/auth/devices.py) counts on its own, so guessing from
    elsewhere cannot lock the owner out; everyone else shares the account's and the address's allowances.
    """
    view = limiter.shared_limit(_tier("RATELIMIT_AUTH"), "auth-account", key_func=_account_key,
                                methods=["POST"])(view)
    return limiter.shared_limit(_tier("RATELIMIT_AUTH"), "auth-address", key_func=_address_key,
                                methods=["POST"])(view)


def reset_limit(view: View) -> View:
    """Limit reset-link requests (RATELIMIT_RESET) per email asked about and per client address: each may mail."""
    view = limiter.shared_limit(_tier("RATELIMIT_RESET"), "reset-email",
                                key_func=lambda: f"email:{_submitted_email() or get_remote_address()}",
                                methods=["POST"])(view)
    return limiter.shared_limit(_tier("RATELIMIT_RESET"), "reset-address",
                                key_func=lambda: f"ip:{get_remote_address()}", methods=["POST"])(view)


def photos_in_request() -> int:
    """Return how many photos a request uploads: each one counts against the upload allowance, not each request."""
    # "images": a batch's photos through the API (an archive counts once; its entries are capped by
    # STUDIO_BATCH_MAX_ENTRIES).
    return max(1, sum(1 for field in ("photo", "images") for upload in request.files.getlist(field)
                      if upload and upload.filename))


def upload_limit(view: View) -> View:
    """Limit uploaded photos and re-runs (RATELIMIT_UPLOAD) per account, shared by the pages and the API (which
    takes one photo a request)."""
    return limiter.shared_limit(_tier("RATELIMIT_UPLOAD"), "upload", key_func=client_key, methods=["POST"],
                                cost=photos_in_request)(view)


def read_limit(view: View) -> View:
    """Limit reads (RATELIMIT_READ) per account and page."""
    return limiter.limit(_tier("RATELIMIT_READ"), key_func=client_key)(view)


def poll_limit(view: View) -> View:
    """Limit the polled fragments (RATELIMIT_READ) per account across every task, found or not (404s count too)."""
    return limiter.shared_limit(_tier("RATELIMIT_READ"), "poll", key_func=client_key)(view)
