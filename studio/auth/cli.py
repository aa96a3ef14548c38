"""`studio create-user` and `studio reset-link`: make an account (the first admin, say) or a password reset link."""

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


@click.command("reset-link")
@click.argument("email")
@with_appcontext
def reset_link_command(email: str) -> None:
    """Print a one-time password reset link for the account (any earlier one stops working)."""
    from flask import current_app

    from studio.auth import reset  # here: it brings the audit log, which create-user does without

    user = service.find_user(email)
    if user is None:
        raise click.ClickException(f"No account has the email {service.normalise_email(email)}.")
    with current_app.test_request_context():  # url_for outside a request; the address comes from the settings
        link = reset.issue_by_admin(None, user, current_app.config)
    hours = max(current_app.config["STUDIO_ADMIN_RESET_LINK_SECONDS"] // 3600, 1)
    click.echo(f"Password reset link for {user.email}, valid once within {hours} hour{'s' if hours != 1 else ''}:")
    click.echo(link)
    if not current_app.config.get("STUDIO_PUBLIC_URL"):
        click.echo("Put the site's address in front of it (set STUDIO_PUBLIC_URL to have it done).", err=True)
