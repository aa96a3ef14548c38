"""Helpers for the browser tests (tests/browser): accounts made and signed in through the real forms, files dropped
the way a desktop does, and the page's errors gathered for the test to assert on."""

from __future__ import annotations

import base64
from pathlib import Path

from playwright.sync_api import Page, expect

PASSWORD = "a long browser passphrase"


def sign_up(page: Page, base_url: str, email: str, password: str = PASSWORD) -> None:
    """Create an account on the sign-up form, then sign in on the form it leads to; wait for the upload page."""
    page.goto(base_url + "/register")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.get_by_label("Repeat the password").fill(password)
    page.locator("main").get_by_role("button", name="Create account").click()
    # A sign-up signs nobody in (docs/security.md): the sign-in form comes next, the email filled in.
    finish_sign_in(page, password)
    expect(page.locator("#upload-form")).to_be_visible()


def finish_sign_in(page: Page, password: str = PASSWORD) -> None:
    """Sign in on the form a sign-up leads to, its email filled in already."""
    page.get_by_label("Password", exact=True).fill(password)
    page.locator("main").get_by_role("button", name="Sign in").click()


def sign_in(page: Page, base_url: str, email: str, password: str = PASSWORD) -> None:
    """Fill in and send the sign-in page (what it answers is the caller's to check: a disabled account is refused)."""
    page.goto(base_url + "/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password", exact=True).fill(password)
    page.locator("main").get_by_role("button", name="Sign in").click()


def collect_errors(page: Page, *, console: bool = True, script: bool = True) -> list[str]:
    """Return a list the page fills with its console errors (CSP refusals among them) and uncaught script errors."""
    errors: list[str] = []
    if console:
        page.on("console", lambda message: message.type == "error" and errors.append(message.text))
    if script:
        page.on("pageerror", lambda error: errors.append(str(error)))
    return errors


def drop_files(page: Page, selector: str, paths: list[Path]) -> None:
    """Drop files on an element the way a desktop drag and drop does."""
    files = [{"name": path.name, "type": "image/jpeg", "data": base64.b64encode(path.read_bytes()).decode()}
             for path in paths]
    transfer = page.evaluate_handle("""(files) => {
        const transfer = new DataTransfer();
        for (const file of files) {
            const bytes = Uint8Array.from(atob(file.data), (character) => character.charCodeAt(0));
            transfer.items.add(new File([bytes], file.name, {type: file.type}));
        }
        return transfer;
    }""", files)
    page.dispatch_event(selector, "dragenter", {"dataTransfer": transfer})
    page.dispatch_event(selector, "drop", {"dataTransfer": transfer})
