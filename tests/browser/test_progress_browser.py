"""Slow work tells the truth in a real browser: the upload form warns that a photo will take minutes, and the task
page shows a stage and the time left within seconds of the job starting, at 1280 and 390 pixels."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import Page, expect

from tests.support.browser import collect_errors, sign_up

PASSWORD = "a long progress passphrase"
# The job starts as soon as the worker takes it; the page's first poll after that comes within a second or two.
STAGE_TIMEOUT_MS = 5_000
START_TIMEOUT_MS = 120_000
WIDTHS = (1280, 390)


def _no_sideways_scroll(page: Page) -> None:
    width = page.viewport_size["width"]
    assert page.evaluate("document.documentElement.scrollWidth") <= width


def _shoot(page: Page, path: Path) -> None:
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        _no_sideways_scroll(page)
        page.screenshot(path=str(path.with_name(f"{path.stem}-{width}.png")), full_page=True)
    page.set_viewport_size({"width": WIDTHS[0], "height": 900})


@pytest.mark.browser
@pytest.mark.integration
def test_a_slow_upscale_is_announced_before_upload_and_shows_a_stage_and_time_left_once_running(
        live_server, browser, photos_dir, screenshots, tmp_path):
    photo = tmp_path / "small-horse.jpg"
    Image.open(photos_dir / "horse.jpg").convert("RGB").resize((640, 480)).save(photo, quality=90)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console_errors = collect_errors(page)
    sign_up(page, live_server, "progress@example.com", PASSWORD)

    # upscale's own option (its cutout switch): there once the upscale's options are in the form
    scale = page.locator('#operation-options input[name="remove_background"]')
    page.select_option("#operation", "upscale")
    expect(scale).to_have_count(1)  # the operation's own options are in the form
    page.set_input_files("#photo", str(photo))
    # 640x480 made 4x larger: minutes at the declared (or measured) cost of an upscale on this server.
    hint = page.locator("#duration-hint")
    expect(hint).to_be_visible()
    expect(hint).to_have_text(re.compile(r"This photo will take about \d+ (minutes?|hours?).* on this server\."))
    _shoot(page, screenshots / "progress-upload-hint")
    page.select_option("#operation", "remove_background")  # seconds, not minutes: no warning
    expect(hint).to_be_hidden()
    expect(scale).to_have_count(0)
    page.select_option("#operation", "upscale")
    expect(hint).to_be_visible()
    expect(scale).to_have_count(1)

    page.get_by_role("button", name="Upload and process").click()
    page.locator("#upload-results").get_by_role("link", name=photo.name, exact=True).click()
    status = page.locator("#task-status")
    expect(status).to_have_attribute("data-status", "PROCESSING", timeout=START_TIMEOUT_MS)
    # From the job's first second: what it is doing, and about how long is left.
    expect(status.locator(".task-stage")).to_have_text(re.compile(r"\w"), timeout=STAGE_TIMEOUT_MS)
    expect(status.locator(".task-timing")).to_have_text(re.compile(r"About \d+ (s|min|h)"),
                                                        timeout=STAGE_TIMEOUT_MS)
    expect(status.locator(".task-stage")).to_contain_text("tile 1 of", timeout=60_000)
    _shoot(page, screenshots / "progress-running")

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Cancel processing").click()
    expect(page.locator("#task-status")).to_have_attribute("data-status", "CANCELLED", timeout=START_TIMEOUT_MS)
    assert [error for error in console_errors if "404" not in error] == []
    context.close()
