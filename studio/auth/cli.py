"""`flask studio create-user`: create an account from the command line (the first admin, say)."""

from __future__ import annotations

import sys

import click
from flask.cli import with_appcontext

from studio.auth import service
from studio.auth.service import AccountError


@click.command("create-user")
@click.argument("email")
@click.option("--admin", is_flag=True, help="Make the account an administrator.")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of standard input.")
@with_appcontext
def create_user_command(email: str, admin: bool, password_stdin: bool) -> None:
    """Create an account; the password is prompted for (twice) unless --password-stdin is given."""
    if password_stdin:
        # Only the line ending is removed: spaces are part of the password as typed.
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    try:
        user = service.create_user(email, password, is_admin=admin)
    except AccountError as error:
        raise click.ClickException(error.message) from None
    click.echo(f"Created {'admin ' if admin else ''}account {user.email} (id {user.id}).")
