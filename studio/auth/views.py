"""Account pages: sign up, sign in, sign out, password change, API tokens and the webhook secret."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required
from werkzeug.wrappers import Response

from studio import plans
from studio.auth import devices, mail, reset, service, sessions
from studio.auth.service import AccountError
from studio.errors import error_response, wants_json
from studio.extensions import login_manager
from studio.security import auth_limit, read_limit, reset_limit
from studio.webhooks import rotate_secret

bp = Blueprint("auth", __name__)

SIGN_IN_EMAIL = "sign_in_email"

login_manager.login_message = "Sign in to continue."
login_manager.login_message_category = "info"


@login_manager.user_loader
def load_user(identity: str):
    """Load the signed-in account from its session identity, refusing stale versions and signed-out sessions."""
    user = service.load_session_user(identity)
    if user is not None and not sessions.is_live():
        # Drop the identity, so a cookie re-signed from this request is anonymous and outlives no revocation.
        session.clear()
        return None
    return user


@login_manager.unauthorized_handler
def unauthorized() -> Response:
    """Send people to the sign-in page; JSON clients get a 401, HTMX requests a client-side redirect."""
    if wants_json():
        return error_response(401, "unauthorized", "Sign in to continue.", title="Sign in")
    if request.headers.get("HX-Request") == "true":
        # A poll from a page whose session ended: move the whole page, not the fragment, to the sign-in form.
        response = Response(status=401)
        response.headers["HX-Redirect"] = url_for("auth.login")
        return response
    flash(login_manager.login_message, login_manager.login_message_category)
    target = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("auth.login", next=target))


def _safe_next(target: str | None) -> str:
    """Return a same-site path to go to after signing in, never another site."""
    # Browsers drop tabs and newlines and read a backslash as a slash, so "/\t/evil.example" means another site.
    unsafe = any(character.isspace() or character == "\\" or ord(character) < 32 for character in target or "")
    if target and target.startswith("/") and not unsafe:
        parts = urlsplit(target)
        if not parts.scheme and not parts.netloc and not target.startswith("//"):
            return target
    return url_for("tasks.index")


# Said after every accepted sign-up, whether it made an account or the email had one already (docs/security.md).
SIGNED_UP = ("Thank you. Sign in with your email and the password you chose. If this email had an account "
             "already, that account is unchanged: sign in with its own password.")


@bp.route("/register", methods=["GET", "POST"])
@auth_limit
@read_limit
def register() -> Response | str:
    """Create an account, then send the person to sign in; an email that has an account gets the same answer."""
    if current_user.is_authenticated:
        return redirect(url_for("tasks.index"))
    email = request.form.get("email", "")
    if request.method == "POST":
        password = request.form.get("password", "")
        try:
            if password != request.form.get("confirm", ""):
                raise AccountError("The two passwords do not match.")
            # None for an email that has an account: answered exactly as a new one, and nobody is signed in.
            service.register(email, password)
        except AccountError as error:
            return render_template("auth/register.html", error=error.message, email=email), 400
        session[SIGN_IN_EMAIL] = service.normalise_email(email)
        flash(SIGNED_UP, "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/register.html", email=email)


@bp.route("/login", methods=["GET", "POST"])
@auth_limit
@read_limit
def login() -> Response | str:
    """Sign in with email and password."""
    next_url = request.values.get("next", "")
    if current_user.is_authenticated:
        return redirect(_safe_next(next_url))
    # After a sign-up, the form is filled in with the email just given.
    email = request.form.get("email", "") if request.method == "POST" else session.pop(SIGN_IN_EMAIL, "")
    if request.method == "POST":
        user = service.authenticate(email, request.form.get("password", ""), allow_disabled=True)
        if user is None:
            # One message for unknown email and wrong password: the form must not reveal who has an account.
            return render_template("auth/login.html", error="Invalid email or password.", email=email,
                                   next_url=next_url), 401
        if user.disabled_at is not None:
            # Said only after the right password: nobody learns from this form which accounts are disabled.
            return render_template("auth/login.html", error="This account is disabled. Ask the site's "
                                   "administrator to enable it again.", email=email, next_url=next_url), 403
        sessions.start(user)
        devices.remember(user.email)
        return redirect(_safe_next(next_url))
    return render_template("auth/login.html", email=email, next_url=next_url)


# Said after every reset request, whether the email has an account or not (docs/security.md).
RESET_SENT = ("If an account exists for {email}, we sent it a link to choose a new password. It works once, for "
              "{minutes} minutes. Nothing arrived? Check the spam folder, or ask the site's administrator.")


@bp.route("/forgot", methods=["GET", "POST"])
@reset_limit
@read_limit
def forgot_password() -> Response | str:
    """Email a reset link when SMTP is set up (one answer for every email); without it, say to ask an admin."""
    can_email = mail.enabled(current_app.config)
    email = request.form.get("email", "")
    if request.method == "POST" and can_email:
        try:
            email = service.validate_email(email)
        except AccountError as error:
            return render_template("auth/forgot.html", can_email=can_email, error=error.message, email=email), 400
        # The account is looked up in the background: this request answers alike, and as fast, for any email.
        mail.request_link(email)
        minutes = max(current_app.config["STUDIO_RESET_LINK_SECONDS"] // 60, 1)
        flash(RESET_SENT.format(email=email, minutes=minutes), "info")
        return redirect(url_for("auth.login"))
    return render_template("auth/forgot.html", can_email=can_email, email=email)


@bp.route("/reset", methods=["GET", "POST"])
@auth_limit
@read_limit
def reset_password() -> Response | tuple[str, int] | str:
    """Choose a new password with a one-time reset link; every session of the account ends."""
    # In the query string (and the form): log lines redact "token=...", and no URL argument is left to classify.
    token = request.values.get("token", "")
    if reset.user_for(token) is None:
        return render_template("auth/reset.html", invalid=reset.INVALID_LINK), 404
    if request.method == "POST":
        new = request.form.get("password", "")
        try:
            if new != request.form.get("confirm", ""):
                raise AccountError("The two passwords do not match.")
            user = reset.reset_password(token, new)
        except AccountError as error:
            return render_template("auth/reset.html", error=error.message, token=token), 400
        if current_user.is_authenticated:
            sessions.end(None)  # whoever was signed in here signs in again, with the new password
        session[SIGN_IN_EMAIL] = user.email
        flash("Password changed. Sign in with your new password; every other session was signed out.", "success")
        return redirect(url_for("auth.login"))
    return render_template("auth/reset.html", token=token)


@bp.post("/logout")
@read_limit
def logout() -> Response:
    """Sign out (POST only, so a link or image on another site cannot sign anyone out)."""
    user = current_user._get_current_object() if current_user.is_authenticated else None
    sessions.end(user)
    flash("You are signed out.", "info")
    return redirect(url_for("tasks.index"))


@bp.get("/account")
@login_required
@read_limit
def account() -> str:
    """Show the account page: usage this month, password change and API tokens."""
    return render_template("auth/account.html", tokens=service.list_api_tokens(current_user),
                           usage=plans.month_summary(current_user))


@bp.post("/account/password")
@login_required
@auth_limit
def change_password() -> Response | tuple[str, int]:
    """Change the password; other sessions and API tokens stop working."""
    new = request.form.get("new_password", "")
    try:
        if new != request.form.get("confirm", ""):
            raise AccountError("The two new passwords do not match.")
        service.change_password(current_user, request.form.get("current_password", ""), new)
    except AccountError as error:
        return render_template("auth/account.html", tokens=service.list_api_tokens(current_user),
                               password_error=error.message), 400
    # The version bump ended this session too; start a new one for the person who made the change.
    sessions.start(current_user._get_current_object())
    flash("Password changed. Other sessions were signed out and API tokens revoked.", "success")
    return redirect(url_for("auth.account"))


@bp.post("/account/sessions/end")
@login_required
@read_limit
def end_sessions() -> Response:
    """Sign out everywhere, this browser included, and revoke the API tokens too when asked."""
    user = current_user._get_current_object()
    revoke_tokens = request.form.get("revoke_tokens") == "true"
    service.end_other_sessions(user, revoke_tokens=revoke_tokens)
    sessions.end(user)
    flash("You are signed out on every device" + (" and your API tokens are revoked." if revoke_tokens else "."),
          "info")
    return redirect(url_for("auth.login"))


@bp.post("/account/tokens")
@login_required
@auth_limit
def create_token() -> tuple[str, int]:
    """Create an API token and show it once, after asking for the password again; only its digest is kept."""
    try:
        # A session alone is not enough to mint a token: a stolen cookie would then outlive a sign-out.
        service.check_password(current_user, request.form.get("password", ""))
        token, plaintext = service.create_api_token(current_user, request.form.get("name", ""))
    except AccountError as error:
        return render_template("auth/account.html", tokens=service.list_api_tokens(current_user),
                               token_error=error.message), 400
    # Rendered, not flashed: the flash would put the secret in the (signed, not encrypted) session cookie.
    return render_template("auth/account.html", tokens=service.list_api_tokens(current_user),
                           new_token=plaintext, new_token_record=token), 201


@bp.post("/account/webhook-secret")
@login_required
@auth_limit
def rotate_webhook_secret() -> Response:
    """Make a new webhook signing secret (the first one, or a replacement) and show it."""
    rotate_secret(current_user._get_current_object())
    flash("New webhook signing secret made. Deliveries from now on are signed with it.", "success")
    return redirect(url_for("auth.account", _anchor="webhooks-heading"))


@bp.post("/account/tokens/<int:token_id>/revoke")
@login_required
@read_limit
def revoke_token(token_id: int) -> Response:
    """Revoke one of the account's API tokens."""
    service.revoke_api_token(current_user, token_id)
    flash("API token revoked.", "success")
    return redirect(url_for("auth.account"))
