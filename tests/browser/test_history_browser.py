"""The history in Chromium at 1280 and 390 px: thumbnails, no sideways scrolling, a ZIP of the ticked photos, and a
result used as the photo of another operation."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from tests.browser.test_browser_flow import PROCESSING_TIMEOUT_MS
from tests.support.browser import collect_errors, drop_files, sign_up

PASSWORD = "a long history passphrase"
WIDTHS = (1280, 390)


def _wait_for_pictures(page: Page, selector: str) -> None:
    """Wait until every picture the selector finds has loaded and has pixels (a broken one never does)."""
    page.wait_for_function("(selector) => [...document.querySelectorAll(selector)]"
                           ".every((image) => image.complete && image.naturalWidth > 0)", arg=selector)


def _page_width(page: Page) -> int:
    return page.evaluate("document.documentElement.scrollWidth")


@pytest.mark.browser
@pytest.mark.integration
def test_history_has_thumbnails_bulk_download_and_fits_a_phone(live_server, browser, photos_dir, screenshots):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console_errors = collect_errors(page, script=False)
    sign_up(page, live_server, "history@example.com", PASSWORD)
    # The same photo twice: two rows named alike, told apart by their time and thumbnail.
    drop_files(page, "#dropzone", [photos_dir / "horse.jpg", photos_dir / "horse.jpg", photos_dir / "rifle2.jpeg"])
    page.get_by_role("button", name="Upload and process").click()
    # Several photos make one batch: its page lists the three.
    page.wait_for_url("**/batches/**")
    expect(page.locator("tr.task-row")).to_have_count(3)
    # Straight to the history while the photos are processed: a tick survives the table's polling (hx-preserve).
    page.goto(live_server + "/tasks")
    oldest = page.locator('#task-rows input[name="selected"]').nth(2)
    oldest.check()
    done = page.locator('#task-rows tr.task-row[data-status="COMPLETED"]')
    expect(done).to_have_count(3, timeout=PROCESSING_TIMEOUT_MS)
    expect(page.locator('#task-rows input[name="selected"]').nth(2)).to_be_checked()
    expect(page.locator("#task-rows img.thumb")).to_have_count(3)

    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.goto(live_server + "/tasks")
        expect(page.locator("#task-rows img.thumb")).to_have_count(3)
        _wait_for_pictures(page, "#task-rows img.thumb")
        assert _page_width(page) <= width, f"the history scrolls sideways at {width} px"
        page.screenshot(path=str(screenshots / f"history-{width}.png"), full_page=True)
        page.goto(live_server + "/")
        expect(page.locator("#upload-results img.thumb")).to_have_count(3)
        _wait_for_pictures(page, "#upload-results img.thumb")
        assert _page_width(page) <= width, f"the upload page scrolls sideways at {width} px"
        page.screenshot(path=str(screenshots / f"upload-recent-{width}.png"), full_page=True)

    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(live_server + "/tasks?status=COMPLETED")
    expect(page.locator("#task-rows tr.task-row")).to_have_count(3)
    page.get_by_label("Operation").select_option("upscale")
    expect(page.locator("#task-rows tr.task-row")).to_have_count(0)
    expect(page.get_by_text("No photos match these filters")).to_be_visible()
    assert "operation=upscale" in page.url
    page.goto(live_server + "/tasks")
    page.get_by_label("Select all").check()
    expect(page.locator("#selected-count")).to_have_text("3 photos ticked.")
    page.locator('#task-rows input[name="selected"]').nth(0).uncheck()
    expect(page.locator("#selected-count")).to_have_text("2 photos ticked.")
    page.get_by_label("Select all").check()
    page.screenshot(path=str(screenshots / "history-ticked-390.png"), full_page=True)
    with page.expect_download() as download_info:
        page.get_by_role("button", name="Download ZIP").click()
    archive = zipfile.ZipFile(io.BytesIO(Path(download_info.value.path()).read_bytes()))
    assert sorted(archive.namelist()) == ["horse (2).png", "horse.png", "rifle2.png"]
    # Process again: the options are chosen once for every ticked photo.
    page.get_by_role("button", name="Process again…").click()
    expect(page.get_by_role("heading", name="Process 3 photos again")).to_be_visible()
    expect(page.locator(".bulk-selection img.thumb")).to_have_count(3)
    assert _page_width(page) <= 390
    page.screenshot(path=str(screenshots / "bulk-rerun-390.png"), full_page=True)
    page.get_by_role("button", name="Back to the history").click()

    # "Use this result": the upload form opens with the cutout as its photo.
    page.locator("#task-rows a", has_text="rifle2.jpeg").first.click()
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(screenshots / "task-use-result-1280.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.get_by_role("button", name="Use this result as a new photo").click()
    expect(page.locator(".source-photo img")).to_be_visible()
    assert _page_width(page) <= 390
    page.screenshot(path=str(screenshots / "use-result-390.png"), full_page=True)
    page.get_by_role("button", name="Process this result").click()
    expect(page.get_by_role("heading", name="rifle2-remove_background.png")).to_be_visible()
    assert [error for error in console_errors if "404" not in error] == []
    context.close()
