"""Accounts: registration, sign-in, password changes and API tokens."""

from studio.auth.views import bp

__all__ = ["bp"]
