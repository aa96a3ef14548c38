"""The `flask studio create-user` command."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from studio.auth import service
from studio.extensions import db
from studio.models import User


@pytest.fixture
def cli(app, runner):
    """Return a function that runs `flask studio create-user ...`."""
    return lambda *args, input=None: runner.invoke(args=["studio", "create-user", *args], input=input)


def _user(app, email):
    with app.app_context():
        return db.session.scalar(select(User).where(User.email == email))


def test_creates_an_admin_from_stdin_keeping_spaces(app, cli):
    result = cli("Root@Example.com", "--admin", "--password-stdin", input="  spaced passphrase  \n")
    assert result.exit_code == 0, result.output
    assert "Created admin account root@example.com" in result.output
    user = _user(app, "root@example.com")
    assert user.is_admin
    assert service.password_hasher.verify(user.password_hash, "  spaced passphrase  ")


def test_prompts_twice_without_stdin_flag(app, cli):
    result = cli("ada@example.com", input="a long passphrase\na long passphrase\n")
    assert result.exit_code == 0, result.output
    user = _user(app, "ada@example.com")
    assert not user.is_admin
    assert service.password_hasher.verify(user.password_hash, "a long passphrase")


def test_mismatched_prompt_asks_again(app, cli):
    result = cli("ada@example.com", input="a long passphrase\nsomething else\nanother passphrase\nanother passphrase\n")
    assert result.exit_code == 0, result.output
    assert service.password_hasher.verify(_user(app, "ada@example.com").password_hash, "another passphrase")


@pytest.mark.parametrize("email, password, message", [
    ("ada@example.com", "short", "at least 8 characters"),
    ("nonsense", "a long passphrase", "valid email"),
])
def test_refused_input_exits_non_zero_with_the_reason(app, cli, email, password, message):
    result = cli(email, "--password-stdin", input=password + "\n")
    assert result.exit_code == 1
    assert message in result.output
    assert _user(app, email) is None
