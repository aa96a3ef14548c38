"""A result judged on its page, in Chromium at 1280 and 390 pixels: before and after on one slider, zoom, the
result's own size, a background behind transparency, what was found as tables, no Cancel button once a task has
finished live and "Use this result" only then, and no Content-Security-Policy error when the operation changes."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import BrowserContext, Page, expect

from studio.tasks.display import file_size
from tests.support.browser import collect_errors, sign_up

PROCESSING_TIMEOUT_MS = 240_000
WIDTHS = (1280, 390)
OPERATIONS_TO_TRY = ("faces", "stylize", "upscale", "smart_crop", "remove_background")
# Every CSP refusal, whatever the console says about it, reported as a console error.
REPORT_CSP_VIOLATIONS = """document.addEventListener("securitypolicyviolation", (event) => {
    console.error("CSP violation: " + event.violatedDirective + " " + event.blockedURI + " " + event.sample);
});"""

pytestmark = [pytest.mark.browser, pytest.mark.integration]


def _new_page(context: BrowserContext) -> tuple[Page, list[str]]:
    """Open a page; return it and the list its console errors, CSP refusals and script errors all land in."""
    context.add_init_script(REPORT_CSP_VIOLATIONS)
    page = context.new_page()
    return page, collect_errors(page)


def _choose(page: Page, select: str, operation: str) -> None:
    """Choose an operation and wait for its options to be swapped in."""
    if page.locator(select).input_value() == operation:
        return
    with page.expect_response(lambda response: "/tasks/fields" in response.url):
        page.locator(select).select_option(operation)
    page.wait_for_timeout(100)  # let htmx settle the swapped options before the next step reads them


def _upload(page: Page, photo: Path, operation: str) -> None:
    """Upload one photo from the upload page and open its task page from the row that appears."""
    _choose(page, "#upload-form select[name=operation]", operation)
    page.locator("#photo").set_input_files(str(photo))
    rows = page.locator("#upload-results tr.task-row").filter(has_text=photo.name)
    earlier = rows.count()
    page.get_by_role("button", name="Upload and process").click()
    expect(rows).to_have_count(earlier + 1)
    rows.first.get_by_role("link", name=photo.name, exact=True).click()
    expect(page.get_by_role("heading", name=photo.name)).to_be_visible()


def _no_sideways_scroll(page: Page) -> None:
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= page.viewport_size["width"], f"the page is {width} px wide"


def _loaded(page: Page, selector: str) -> dict:
    """Return an image's natural and shown size once it has loaded."""
    image = page.locator(selector)
    expect(image).to_be_visible()
    page.wait_for_function("(image) => image.complete && image.naturalWidth > 0", arg=image.element_handle())
    return image.evaluate("(image) => ({natural: image.naturalWidth, naturalHeight: image.naturalHeight,"
                          " shown: image.getBoundingClientRect().width,"
                          " shownHeight: image.getBoundingClientRect().height})")


def _background(page: Page) -> dict:
    return page.locator(".checkerboard").evaluate(
        "(element) => ({image: getComputedStyle(element).backgroundImage,"
        " colour: getComputedStyle(element).backgroundColor})")


def test_a_finished_cutout_and_a_data_result_are_judged_on_their_page(live_server, browser, photos_dir,
                                                                      screenshots):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page, problems = _new_page(context)
    sign_up(page, live_server, "judge@example.com")
    # A portrait photo: fitted, it is limited by the screen's height as much as by its width.
    _upload(page, photos_dir / "Two_dancers.jpg", "remove_background")
    expect(page.locator('#task-status[data-status="COMPLETED"]')).to_have_count(1, timeout=PROCESSING_TIMEOUT_MS)

    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900 if width > 500 else 844})
        slider = page.locator("img-comparison-slider.rendered")
        expect(slider).to_be_visible()
        before = _loaded(page, 'img-comparison-slider img[slot="first"]')
        after = _loaded(page, 'img-comparison-slider img[slot="second"]')
        assert before["natural"] == 633 and after["natural"] == 633 and after["naturalHeight"] == 800
        # Both images in the same box, and the slider no wider than them: nothing letterboxed.
        assert before["shown"] == pytest.approx(after["shown"], abs=1)
        assert slider.bounding_box()["width"] == pytest.approx(after["shown"], abs=1)
        assert before["shownHeight"] == pytest.approx(after["shownHeight"], abs=1)
        assert after["shownHeight"] <= 0.7 * page.viewport_size["height"] + 1
        fitted = after["shown"]
        if width == 390:
            assert fitted >= 340
        facts = page.locator(".result-facts")
        expect(facts).to_contain_text("633 × 800 pixels")
        expect(facts).to_contain_text("PNG")
        expect(facts).to_contain_text(" KB")
        link = page.get_by_role("link", name="Full size")
        expect(link).to_have_attribute("target", "_blank")
        _no_sideways_scroll(page)
        page.screenshot(path=str(screenshots / f"task-cutout-{width}.png"), full_page=True)

        # Transparent pixels: a checkerboard behind them, white or black on request.
        assert "linear-gradient" in _background(page)["image"]
        # The viewer's own buttons: the re-run form below has a "White" colour swatch too.
        backgrounds = page.get_by_role("group", name="Background behind transparent pixels")
        backgrounds.get_by_role("button", name="White").click()
        expect(backgrounds.get_by_role("button", name="White")).to_have_attribute("aria-pressed", "true")
        assert _background(page) == {"image": "none", "colour": "rgb(255, 255, 255)"}
        backgrounds.get_by_role("button", name="Black").click()
        assert _background(page)["colour"] == "rgb(17, 17, 17)"
        backgrounds.get_by_role("button", name="Checkerboard").click()
        assert "linear-gradient" in _background(page)["image"]
        expect(backgrounds.get_by_role("button", name="White")).to_have_attribute("aria-pressed", "false")

        # Zoom: the result's own pixels, scrolled inside the frame and not the page.
        page.get_by_role("button", name="Zoom to 100%").click()
        zoomed = _loaded(page, 'img-comparison-slider img[slot="second"]')
        assert zoomed["shown"] == pytest.approx(633, abs=1)
        if width == 390:
            assert page.locator(".viewer-frame").evaluate("(frame) => frame.scrollWidth > frame.clientWidth")
            page.screenshot(path=str(screenshots / f"task-cutout-zoomed-{width}.png"), full_page=True)
        _no_sideways_scroll(page)
        page.get_by_role("button", name="Fit to the page").click()
        assert _loaded(page, 'img-comparison-slider img[slot="second"]')["shown"] == pytest.approx(fitted, abs=1)

    # What a data operation finds: tables beside (on a phone, under) the preview, never raw JSON.
    page.set_viewport_size({"width": 1280, "height": 900})
    page.goto(live_server + "/")
    _upload(page, photos_dir / "Two_dancers.jpg", "faces")
    expect(page.locator('#task-status[data-status="COMPLETED"]')).to_have_count(1, timeout=PROCESSING_TIMEOUT_MS)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900 if width > 500 else 844})
        table = page.locator("table.data-list")
        expect(table.locator("caption")).to_have_text("Faces (2)")
        expect(table.locator("tbody tr")).to_have_count(2)
        expect(table.locator("tbody")).to_contain_text(" %")
        expect(table.locator("tbody")).to_contain_text(" px at (")
        assert "{" not in page.locator(".json-data").inner_text()
        fitted = _loaded(page, ".result-data img")
        assert fitted["natural"] == 633
        expect(page.locator("img-comparison-slider")).to_have_count(0)
        _no_sideways_scroll(page)
        page.screenshot(path=str(screenshots / f"task-faces-{width}.png"), full_page=True)
        # A click on a lone image zooms it to its own pixels, and a second click fits it again.
        page.locator(".result-data img").click()
        expect(page.locator(".result-data .result-viewer")).to_have_class("result-viewer zoomed")
        expect(page.locator(".result-data .viewer-frame")).to_have_attribute("tabindex", "0")
        assert _loaded(page, ".result-data img")["shown"] == pytest.approx(633, abs=1)
        _no_sideways_scroll(page)
        page.locator(".result-data img").click()
        assert _loaded(page, ".result-data img")["shown"] == pytest.approx(fitted["shown"], abs=1)
    assert problems == []
    context.close()


def test_an_upscale_followed_live_gives_its_own_size_and_loses_its_cancel_button(
        live_server, browser, photos_dir, screenshots, tmp_path):
    # Small enough to take seconds, slow enough (the network's tile) to open its page while it runs.
    photo = tmp_path / "small-horse.jpg"
    Image.open(photos_dir / "horse.jpg").convert("RGB").resize((100, 77)).save(photo, quality=90)
    context = browser.new_context(viewport={"width": 390, "height": 844})
    page, problems = _new_page(context)
    sign_up(page, live_server, "upscale@example.com")

    for name in OPERATIONS_TO_TRY:
        _choose(page, "#upload-form select[name=operation]", name)
        expect(page.locator("#upload-form .operation-description")).to_have_count(1)
    _upload(page, photo, "upscale")

    status = page.locator("#task-status")
    # Read at one moment: a running task offers no result to use, it has none yet.
    running, offered = status.evaluate("(region) => [region.dataset.status, "
                                       "document.querySelectorAll('.use-result-link').length]")
    assert running in ("PENDING", "PROCESSING") and offered == 0
    expect(page.get_by_role("button", name="Cancel processing")).to_be_visible()
    page.screenshot(path=str(screenshots / "task-upscale-running-390.png"), full_page=True)
    expect(page.locator('#task-status[data-status="COMPLETED"]')).to_have_count(1, timeout=PROCESSING_TIMEOUT_MS)
    expect(page.get_by_role("button", name="Cancel processing")).to_have_count(0)
    # The poll that saw it complete brought the offer in, on this very page.
    use = page.get_by_role("button", name="Use this result as a new photo")
    expect(use).to_be_visible()
    expect(use).to_have_attribute("href", re.compile(r"/\?source=[0-9a-f-]{36}$"))

    # The result's size, not the photo's 100 x 77; the slider shows both at the same size.
    expect(page.locator(".result-facts [data-output-size]")).to_have_text("200 × 154 pixels")
    expect(page.locator(".result-facts")).to_contain_text("Original: 100 × 77 pixels")
    after = _loaded(page, 'img-comparison-slider img[slot="second"]')
    before = _loaded(page, 'img-comparison-slider img[slot="first"]')
    assert (before["natural"], after["natural"]) == (100, 200)
    assert before["shown"] == pytest.approx(after["shown"], abs=1)
    body = context.request.get(live_server + page.locator('img[slot="second"]').get_attribute("src")).body()
    assert Image.open(io.BytesIO(body)).size == (200, 154)
    expect(page.locator(".result-facts [data-file-size]")).to_have_text(file_size(len(body)))
    _no_sideways_scroll(page)
    page.screenshot(path=str(screenshots / "task-upscale-390.png"), full_page=True)

    # Changing the operation of the re-run form swaps its options in: no CSP refusal either.
    for name in OPERATIONS_TO_TRY:
        _choose(page, "#rerun-operation", name)
    expect(page.locator("#rerun-options .operation-description")).to_have_count(1)
    page.set_viewport_size({"width": 1280, "height": 900})
    page.screenshot(path=str(screenshots / "task-upscale-1280.png"), full_page=True)
    assert problems == []
    context.close()
