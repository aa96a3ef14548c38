"""Reset emails over SMTP (stdlib smtplib), sent from a thread so the page answers at once and alike for everyone.

The request that asks for a link does not even look the email up: a background thread does, makes the link and
sends it. So the answer, and its timing, are the same whether the email has an account or not, and an SMTP server
that is down or slow costs the page nothing: the failure is logged.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
import threading
from email.message import EmailMessage
from typing import Any, Mapping

from flask import Flask, current_app

from studio.auth import reset, service
from studio.extensions import db

log = logging.getLogger(__name__)


def enabled(config: Mapping[str, Any]) -> bool:
    """Return True when reset links can be sent by email: an SMTP server and the site's public address are set."""
    return bool(config.get("STUDIO_SMTP_HOST") and config.get("STUDIO_PUBLIC_URL"))


def request_link(email: str) -> threading.Thread:
    """Send a reset link to this email in the background if it belongs to an enabled account; return the thread."""
    app = current_app._get_current_object()
    thread = threading.Thread(target=_send_link, args=(app, service.normalise_email(email)), daemon=True,
                              name="password-reset-mail")
    thread.start()
    return thread


def _send_link(app: Flask, email: str) -> None:
    with app.app_context():
        try:
            user = service.find_user(email)
            if user is None or user.disabled_at is not None:
                log.info("password reset asked for an email without an enabled account: nothing sent")
                return
            token = reset.issue(user, app.config["STUDIO_RESET_LINK_SECONDS"])
            with app.test_request_context():  # url_for outside a request; the address comes from the settings
                address = reset.link(token, app.config)
            send(app.config, user.email, _message_text(address, app.config["STUDIO_RESET_LINK_SECONDS"]))
            # Committed only once the email left: a link nobody received must not replace a good one.
            db.session.commit()
            log.info("sent a password reset link to account %s", user.id)
        except (OSError, smtplib.SMTPException) as error:
            db.session.rollback()
            log.error("could not send a password reset email: %s: %s", type(error).__name__, error)
        except Exception:
            db.session.rollback()
            log.exception("could not make a password reset link")
        finally:
            db.session.remove()


def _message_text(address: str, lifetime_seconds: int) -> str:
    minutes = max(lifetime_seconds // 60, 1)
    return (f"Someone, hopefully you, asked to reset the password of your Photo Studio account.\n\n"
            f"Choose a new password here (the link works once, for {minutes} minutes):\n\n{address}\n\n"
            "If you did not ask for this, ignore this email: your password stays as it is.\n")


def send(config: Mapping[str, Any], recipient: str, text: str) -> None:
    """Send the reset email through the configured SMTP server; raise OSError or SMTPException on failure."""
    message = EmailMessage()
    message["Subject"] = "Reset your Photo Studio password"
    message["From"] = config.get("STUDIO_SMTP_FROM") or f"Photo Studio <noreply@{config['STUDIO_SMTP_HOST']}>"
    message["To"] = recipient
    message.set_content(text)
    host, port, timeout = config["STUDIO_SMTP_HOST"], config["STUDIO_SMTP_PORT"], config["STUDIO_SMTP_TIMEOUT_SECONDS"]
    mode = config.get("STUDIO_SMTP_TLS", "starttls")
    context = ssl.create_default_context()
    if mode == "tls":
        connection: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
    else:
        connection = smtplib.SMTP(host, port, timeout=timeout)
    with connection:
        if mode == "starttls":
            connection.starttls(context=context)
        if config.get("STUDIO_SMTP_USER"):
            connection.login(config["STUDIO_SMTP_USER"], config.get("STUDIO_SMTP_PASSWORD") or "")
        connection.send_message(message)
