"""Every page a visitor, a user and an administrator can open, in Chromium at 390 and 1280 pixels: nothing wider than
the screen, no accessibility violation axe-core finds, the landing page's pictures and readable cards, and the
upload form's refusals beside it, one sentence each."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
import requests
from playwright.sync_api import Browser, Page, expect

from studio import create_app
from studio.auth import service as account_service
from studio.extensions import db
from studio.models import DailyUsage, User
from studio.usage import today
from tests.support.browser import collect_errors, sign_in
from tests.support.services import TEST_DATABASE_URL, TEST_REDIS_URL, database_of_its_own

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ADMIN, MEMBER, PASSWORD = "layout-admin@example.com", "layout-member@example.com", "a long layout passphrase"
WIDTHS = (390, 1280)
PUBLIC_PAGES = ("/", "/login", "/register", "/forgot", "/reset?token=not-a-token")
MEMBER_PAGES = ("/", "/tasks", "/account", "/tasks/{task}")
ADMIN_PAGES = ("/admin/", "/admin/tasks", "/admin/users", "/admin/users/{member}", "/admin/usage", "/admin/audit",
               "/admin/rq/")
# rq-dashboard's pages are its own (Bootstrap 4, its markup): checked for width, not for its accessibility.
NOT_OURS = ("/admin/rq/",)


@pytest.fixture
def screenshots() -> Path:
    """Return where to keep screenshots (STUDIO_SCREENSHOT_DIR keeps them; else a folder under /tmp)."""
    directory = Path(os.environ.get("STUDIO_SCREENSHOT_DIR") or "/tmp/forms-shots")
    directory.mkdir(parents=True, exist_ok=True)
    return directory


@pytest.fixture
def accounts(live_server, photos_dir) -> dict[str, str]:
    """Create an administrator and a member with one task; return the ids the page paths need."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_of_its_own(TEST_DATABASE_URL, "browser"),
                      "REDIS_URL": TEST_REDIS_URL, "SECRET_KEY": "x", "RATELIMIT_ENABLED": False})
    with app.app_context():
        for email, admin in ((ADMIN, True), (MEMBER, False)):
            if db.session.scalars(db.select(User).filter_by(email=email)).first() is None:
                account_service.create_user(email, PASSWORD, is_admin=admin)
        member = db.session.scalars(db.select(User).filter_by(email=MEMBER)).one()
        # A month of use to show on the account page (its table, stacked as cards on a phone, is checked too).
        for operation, tasks in (("upscale", 3), ("faces", 5)):
            db.session.merge(DailyUsage(user_id=member.id, day=today(), operation=operation, tasks=tasks,
                                        completed_tasks=tasks, pixels_in=tasks * 2_400_000,
                                        pixels_out=tasks * 9_600_000, processing_seconds=tasks * 60.0))
        db.session.commit()
        _, token = account_service.create_api_token(member)
        member_id = member.id
        db.session.remove()
        db.engine.dispose()
    with open(photos_dir / "rifle2.jpeg", "rb") as photo:
        answer = requests.post(f"{live_server}/api/v1/tasks", headers={"Authorization": f"Bearer {token}"},
                               files={"image": ("rifle2.jpeg", photo, "image/jpeg")}, timeout=30)
    assert answer.status_code == 202, answer.text
    return {"task": answer.json()["id"], "member": str(member_id)}


def _sign_in(page: Page, live_server: str, email: str) -> None:
    sign_in(page, live_server, email, PASSWORD)
    expect(page.get_by_role("button", name="Sign out")).to_be_visible()


def _overflow(page: Page) -> int:
    """Return by how many pixels the page is wider than the window (0: no sideways scrolling)."""
    return page.evaluate("document.documentElement.scrollWidth - window.innerWidth")


def _too_wide(page: Page) -> list[str]:
    """Return the outermost elements reaching past the window's right edge outside any scrolling box, for the
    failure message."""
    return page.evaluate("""() => {
        const scrolls = (element) => ['auto', 'scroll', 'hidden'].includes(getComputedStyle(element).overflowX);
        const clipped = (element) => {
            for (let parent = element.parentElement; parent && parent !== document.body;
                 parent = parent.parentElement) {
                if (scrolls(parent)) return true;
            }
            return false;
        };
        const past = [...document.body.querySelectorAll('*')].filter(
            (element) => element.getBoundingClientRect().right > window.innerWidth + 1 && !clipped(element));
        const name = (element) => element.tagName.toLowerCase() + (element.id ? '#' + element.id : '') +
            (typeof element.className === 'string' && element.className
                ? '.' + element.className.split(' ').join('.') : '');
        const culprits = [];
        const walk = (root, depth) => {
            for (const child of root.children) {
                const before = child.style.display;
                child.style.display = 'none';
                const fixed = document.documentElement.scrollWidth <= window.innerWidth;
                child.style.display = before;
                if (fixed) {
                    if (depth < 6 && child.children.length) { walk(child, depth + 1); }
                    culprits.push(name(child));
                }
            }
        };
        walk(document.body, 0);
        const outermost = past.filter((element) => !past.includes(element.parentElement)).slice(0, 5);
        return culprits.slice(-8).concat(outermost.map((element) => name(element.parentElement) + ' > ' +
            name(element) + ' ' + Math.round(element.getBoundingClientRect().right)));
    }""")


def _violations(page: Page) -> list[str]:
    """Return axe-core's violations on the page, one line each (rule, impact, first element)."""
    from axe_playwright_python.sync_playwright import Axe
    results = Axe().run(page).response["violations"]
    return [f"{item['id']} ({item['impact']}): {item['nodes'][0]['target']}" for item in results]


def _check_pages(browser: Browser, live_server: str, paths: tuple[str, ...], email: str | None,
                 values: dict[str, str], screenshots: Path, prefix: str) -> list[str]:
    problems = []
    for width in WIDTHS:
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        if email:
            _sign_in(page, live_server, email)
        for path in paths:
            url = live_server + path.format(**values)
            page.goto(url)
            page.wait_for_load_state("networkidle")
            wider = _overflow(page)
            if wider > 0:
                (screenshots / f"{prefix}-{width}-wide.html").write_text(page.content())
                problems.append(f"{path} at {width} px is {wider} px wider than the screen: {_too_wide(page)}")
            if path not in NOT_OURS:
                problems += [f"{path} at {width} px: {line}" for line in _violations(page)]
            name = re.sub(r"[^a-z0-9]+", "-", path.format(**values).strip("/").lower())[:40] or "home"
            page.screenshot(path=str(screenshots / f"{prefix}-{name}-{width}.png"), full_page=True)
        context.close()
    return problems


def test_no_page_scrolls_sideways_or_fails_axe(live_server, browser, accounts, screenshots):
    problems = _check_pages(browser, live_server, PUBLIC_PAGES, None, accounts, screenshots, "public")
    problems += _check_pages(browser, live_server, MEMBER_PAGES, MEMBER, accounts, screenshots, "member")
    problems += _check_pages(browser, live_server, ADMIN_PAGES, ADMIN, accounts, screenshots, "admin")
    assert problems == []


@pytest.mark.parametrize("width", WIDTHS)
def test_the_landing_page_shows_its_pictures_and_readable_cards(live_server, browser, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    page.goto(live_server + "/")
    pictures = page.locator(".examples img")
    assert pictures.count() >= 8
    for index in range(pictures.count()):
        pictures.nth(index).scroll_into_view_if_needed()
        assert pictures.nth(index).evaluate("(image) => image.complete && image.naturalWidth > 0"), index
        assert pictures.nth(index).evaluate("(image) => image.naturalWidth") <= 480
    assert "U-2-Net" in page.locator(".example-credit").inner_text()
    cards = page.locator(".features article")
    assert cards.count() >= 10
    widths = [box["width"] for box in (cards.nth(index).bounding_box() for index in range(cards.count()))]
    assert min(widths) >= 200, widths
    # No word broken mid-word: every card's title fits its card on whole words.
    assert page.evaluate("""() => [...document.querySelectorAll('.features h3')].every(
        (title) => title.scrollWidth <= title.clientWidth + 1)""")
    context.close()


def test_the_token_copy_button_and_the_way_back_from_the_job_dashboard(live_server, browser, accounts):
    context = browser.new_context(viewport={"width": 390, "height": 844})
    context.grant_permissions(["clipboard-read", "clipboard-write"], origin=live_server)
    page = context.new_page()
    _sign_in(page, live_server, ADMIN)
    page.goto(live_server + "/account")
    page.get_by_label("Your password").fill(PASSWORD)
    page.get_by_role("button", name="Create token").click()
    token = page.locator("#new-token-value").input_value()
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text(re.compile("Copied|Selected"))
    if "Copied" in page.locator("#copy-status").inner_text():
        assert page.evaluate("navigator.clipboard.readText()") == token

    page.goto(live_server + "/admin/rq/")
    page.get_by_role("link", name=re.compile("Back to the studio")).click()
    expect(page).to_have_url(live_server + "/admin/")
    context.close()


def test_the_usage_table_is_a_table_on_a_wide_screen_and_cards_on_a_phone(
        live_server, browser, accounts, screenshots):
    for width in WIDTHS:
        context = browser.new_context(viewport={"width": width, "height": 900})
        page = context.new_page()
        _sign_in(page, live_server, MEMBER)
        page.goto(live_server + "/account")
        table = page.locator("table.usage-table")
        upscale = table.locator("tbody tr", has=page.get_by_role("rowheader", name="Upscale"))
        expect(upscale).to_have_count(1)
        # Nothing to scroll sideways, not even inside the table's own box.
        assert table.evaluate("(table) => table.parentElement.scrollWidth <= table.parentElement.clientWidth")
        labels = upscale.locator("td").evaluate_all(
            "(cells) => cells.map((cell) => getComputedStyle(cell, '::before').content)")
        if width == 390:
            expect(table.locator("thead")).to_be_hidden()
            # Each number on its own line, beside its column's name.
            assert labels == ['"Tasks"', '"Completed"', '"Megapixels in"', '"Megapixels out"', '"Processing"']
            tops = upscale.locator("td").evaluate_all("(cells) => cells.map((cell) => cell.offsetTop)")
            assert tops == sorted(set(tops)), tops
        else:
            expect(table.locator("thead")).to_be_visible()
            assert set(labels) == {"none"}
        table.screenshot(path=str(screenshots / f"account-usage-{width}.png"))
        context.close()


@pytest.mark.parametrize("width", WIDTHS)
def test_a_refused_photo_is_named_once_beside_the_form(live_server, browser, accounts, tmp_path, screenshots, width):
    context = browser.new_context(viewport={"width": width, "height": 900})
    page = context.new_page()
    console_errors = collect_errors(page, script=False)
    _sign_in(page, live_server, MEMBER)
    not_a_photo = tmp_path / "notaphoto.jpg"
    not_a_photo.write_bytes(b"%PDF-1.4 this is not a photo")
    page.locator("#photo").set_input_files(str(not_a_photo))
    page.get_by_role("button", name="Upload and process").click()
    errors = page.locator("#upload-errors")
    expect(errors).to_be_visible()
    expect(errors.locator("li")).to_have_text("notaphoto.jpg: The file is not a JPEG, PNG or WebP image.")
    expect(page.locator("#upload-status")).to_have_text("The photo was not uploaded.")
    assert "Uploaded" not in page.locator("main").inner_text()
    # Beside the button that sent it, on screen: not below the fold.
    assert errors.bounding_box()["y"] < page.locator("#upload-button").bounding_box()["y"]
    errors.scroll_into_view_if_needed()
    page.screenshot(path=str(screenshots / f"upload-refused-{width}.png"), full_page=False)
    assert [error for error in console_errors if "400" not in error and "415" not in error] == []
    context.close()


def test_the_style_picker_the_mix_and_the_colour_picker(live_server, browser, accounts, screenshots):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console_errors = collect_errors(page, script=False)
    _sign_in(page, live_server, MEMBER)
    page.get_by_label("What to do").select_option("stylize")
    grid = page.locator(".picture-grid")
    expect(grid).to_be_visible()
    # The styles take the form's width, several a row.
    assert grid.bounding_box()["width"] >= 0.8 * page.locator("#upload-form").bounding_box()["width"]
    mix = page.locator("#field-blend")
    expect(mix).to_be_hidden()
    page.get_by_label("Blend with").select_option("autumn-dabs")
    expect(mix).to_be_visible()
    chosen = page.locator(".picture-choice", has=page.locator("input:checked"))
    assert chosen.evaluate("(label) => getComputedStyle(label).outlineStyle") == "solid"
    page.screenshot(path=str(screenshots / "upload-stylize-1280.png"), full_page=True)

    page.get_by_label("What to do").select_option("remove_background")
    colour = page.locator("#field-bg_color")
    expect(colour).to_be_visible()
    page.get_by_role("button", name="White", exact=True).click()
    expect(colour).to_have_value("white")
    assert page.locator(".colour-picker").input_value() == "#ffffff"
    colour.fill("skyblue")
    colour.dispatch_event("input")
    assert page.locator(".colour-picker").input_value() == "#87ceeb"
    page.get_by_label("Output", exact=True).select_option("mask")
    expect(colour).to_be_hidden()
    assert console_errors == []
    context.close()
