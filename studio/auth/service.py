"""Account rules: password hashing and policy, email normalisation, sessions and API tokens."""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from datetime import timedelta
from functools import lru_cache
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from werkzeug.exceptions import NotFound

from studio.extensions import db
from studio.models import ApiToken, User, as_utc, utcnow

log = logging.getLogger(__name__)

MIN_PASSWORD_LENGTH = 8
# Argon2 pre-hashes the password, so length costs little; the cap only stops absurd request bodies.
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 254
TOKEN_PREFIX = "ps_"
TOKEN_PREFIX_LENGTH = 10
# How exactly a token's last use is recorded.
LAST_USED_PRECISION = timedelta(minutes=1)
# No whitespace or control characters anywhere (PostgreSQL refuses NUL in text outright).
_EMAIL = re.compile(r"^[^@\s\x00-\x1f\x7f]+@[^@\s\x00-\x1f\x7f]+\.[^@\s.\x00-\x1f\x7f]+$")
_COMMON_PASSWORDS_FILE = Path(__file__).with_name("common_passwords.txt")

# Module-level so tests (and a future config option) can swap the parameters and see rehash-on-login work.
password_hasher = PasswordHasher()


class AccountError(ValueError):
    """Raised when account input breaks a rule; the message is fit to show to the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@lru_cache(maxsize=1)
def _common_passwords() -> frozenset[str]:
    lines = _COMMON_PASSWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line.strip() and not line.startswith("#"))


@lru_cache(maxsize=4)
def _dummy_hash(hasher: PasswordHasher) -> str:
    return hasher.hash(secrets.token_hex(16))


def normalise_email(email: str) -> str:
    """Return the email trimmed and lower-cased, the form it is stored and looked up in."""
    return (email or "").strip().lower()


def validate_email(email: str) -> str:
    """Return the normalised email, or raise AccountError when it is not a plausible address."""
    email = normalise_email(email)
    if not email:
        raise AccountError("Enter your email address.")
    if len(email) > MAX_EMAIL_LENGTH or not _EMAIL.match(email):
        raise AccountError("Enter a valid email address, like name@example.com.")
    return email


def validate_password(password: str) -> None:
    """Raise AccountError when a new password is too short, too long or too common."""
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise AccountError(f"Use a password of at least {MIN_PASSWORD_LENGTH} characters.")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise AccountError(f"Use a password of at most {MAX_PASSWORD_LENGTH} characters.")
    if password.strip().lower() in _common_passwords():
        raise AccountError("That password is too common; choose one that is harder to guess.")


def find_user(email: str) -> User | None:
    """Return the account with this email (normalised), or None."""
    if "\x00" in email:
        return None  # no stored address has one, and PostgreSQL would refuse the query
    return db.session.scalar(select(User).where(User.email == normalise_email(email)))


def create_user(email: str, password: str, *, is_admin: bool = False) -> User:
    """Create and return an account; raise AccountError with a readable message when input is refused."""
    email = validate_email(email)
    validate_password(password)
    if find_user(email) is not None:
        raise AccountError("An account with this email already exists; sign in instead.")
    user = _insert_user(email, password_hasher.hash(password), is_admin)
    if user is None:
        raise AccountError("An account with this email already exists; sign in instead.")
    return user


def register(email: str, password: str) -> User | None:
    """Create an account for an email that has none and return it; for one that has, change nothing: None.

    The sign-up form answers both the same way, so it must not tell them apart by its time either: each costs one
    Argon2 hash. The account that exists is left as it was, its password and sessions included.
    """
    email = validate_email(email)
    validate_password(password)
    password_hash = password_hasher.hash(password)
    existing = find_user(email)
    if existing is not None:
        log.info("sign-up for the email of account %s: nothing changed", existing.id)
        return None
    return _insert_user(email, password_hash, is_admin=False)


def _insert_user(email: str, password_hash: str, is_admin: bool) -> User | None:
    """Insert an account; None when another request inserted one with this email first."""
    user = User(email=email, password_hash=password_hash, is_admin=is_admin, session_version=1)
    db.session.add(user)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        log.info("an account with this email was created meanwhile by another request")
        return None
    log.info("created account %s (admin=%s)", user.id, is_admin)
    return user


def authenticate(email: str, password: str, *, allow_disabled: bool = False) -> User | None:
    """Return the account when the password matches, else None, taking similar time either way.

    A disabled account is None too, unless allow_disabled: the sign-in form then says it is disabled (only to
    someone who knows its password).
    """
    user = _check_credentials(email, password)
    if user is not None and user.disabled_at is not None and not allow_disabled:
        return None
    return user


def _check_credentials(email: str, password: str) -> User | None:
    user = find_user(email) if isinstance(email, str) else None
    if user is None or not isinstance(password, str):
        # Verify against a dummy hash so an unknown email costs as much as a wrong password.
        _verify(_dummy_hash(password_hasher), password if isinstance(password, str) else "")
        return None
    if not _verify(user.password_hash, password):
        return None
    if password_hasher.check_needs_rehash(user.password_hash):
        user.password_hash = password_hasher.hash(password)
        db.session.commit()
        log.info("rehashed the password of account %s with the current parameters", user.id)
    return user


def _verify(password_hash: str, password: str) -> bool:
    try:
        return password_hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def change_password(user: User, old: str, new: str) -> None:
    """Set a new password after checking the old one; end other sessions, revoke API tokens and reset links."""
    from studio.auth import reset  # here: reset builds on this module
    if not _verify(user.password_hash, old or ""):
        raise AccountError("Your current password is not correct.")
    validate_password(new)
    user.password_hash = password_hasher.hash(new)
    user.session_version += 1
    _revoke_all_tokens(user)
    reset.forget(user)  # a reset link asked for before must not undo the change
    db.session.commit()
    log.info("account %s changed its password; other sessions and API tokens revoked", user.id)


def check_password(user: User, password: object) -> None:
    """Raise AccountError unless this is the account's password (asked again before sensitive changes)."""
    if not isinstance(password, str) or not _verify(user.password_hash, password):
        raise AccountError("Your password is not correct.")


def end_other_sessions(user: User, *, revoke_tokens: bool = False) -> None:
    """Invalidate every session of this account, including the current one, and its API tokens when asked."""
    user.session_version += 1
    if revoke_tokens:
        _revoke_all_tokens(user)
    db.session.commit()
    log.info("account %s signed out everywhere%s", user.id, " and revoked its API tokens" if revoke_tokens else "")


def _revoke_all_tokens(user: User) -> None:
    now = utcnow()
    for token in user.tokens:
        if token.revoked_at is None:
            token.revoked_at = now


def load_session_user(identity: str) -> User | None:
    """Return the account for a session identity "id:session_version", or None when stale or malformed."""
    user_id, _, version = (identity or "").partition(":")
    if not user_id.isdigit() or not version.isdigit():
        return None
    user = db.session.get(User, int(user_id))
    if user is None or user.session_version != int(version) or user.disabled_at is not None:
        return None
    return user


def _token_digest(plaintext: str) -> str:
    return hashlib.sha256(plaintext.encode("utf-8")).hexdigest()


def create_api_token(user: User, name: str = "") -> tuple[ApiToken, str]:
    """Create an API token; return it with its plaintext, which is never stored and shown only once."""
    name = (name or "").strip()
    if len(name) > 100:
        raise AccountError("Give the token a name of at most 100 characters.")
    plaintext = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(user=user, name=name, token_hash=_token_digest(plaintext), prefix=plaintext[:TOKEN_PREFIX_LENGTH])
    db.session.add(token)
    db.session.commit()
    log.info("account %s created API token %s", user.id, token.id)
    return token, plaintext


def user_for_token(plaintext: str) -> User | None:
    """Return the owner of a live API token and record its use, or None."""
    if not isinstance(plaintext, str) or not plaintext.startswith(TOKEN_PREFIX) or len(plaintext) > 200:
        return None
    token = db.session.scalar(
        select(ApiToken).options(joinedload(ApiToken.user))  # the account in the same query: one per request
        .where(ApiToken.token_hash == _token_digest(plaintext), ApiToken.revoked_at.is_(None))
    )
    if token is None or token.user.disabled_at is not None:
        return None
    now = utcnow()
    # To the minute: a write and a commit on every API request would weigh heavily on the web process under a busy
    # client (docs/production.md), for a date the account page shows to the minute anyway.
    if token.last_used_at is None or now - as_utc(token.last_used_at) >= LAST_USED_PRECISION:
        token.last_used_at = now
        db.session.commit()
    return token.user


def list_api_tokens(user: User) -> list[ApiToken]:
    """Return the account's live API tokens, newest first."""
    return list(db.session.scalars(
        select(ApiToken)
        .where(ApiToken.user_id == user.id, ApiToken.revoked_at.is_(None))
        .order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
    ))


def revoke_api_token(user: User, token_id: int) -> None:
    """Revoke one of the account's tokens; raise NotFound for an unknown id or another account's token."""
    token = db.session.get(ApiToken, token_id)
    if token is None or token.user_id != user.id:
        raise NotFound("No such API token.")
    if token.revoked_at is not None:
        return
    token.revoked_at = utcnow()
    db.session.commit()
    log.info("account %s revoked API token %s", user.id, token.id)
