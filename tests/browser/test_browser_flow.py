"""End to end in a real browser: sign up, drop two photos (one batch), watch them finish live, download the ZIP
and one photo, delete it."""

from __future__ import annotations

import io
import re
import zipfile
from pathlib import Path

import pytest
from PIL import Image
from playwright.sync_api import expect

from tests.support.browser import PASSWORD, collect_errors, drop_files, finish_sign_in, sign_up

PHOTOS = ("rifle2.jpeg", "horse.jpg")
PROCESSING_TIMEOUT_MS = 180_000


@pytest.mark.browser
@pytest.mark.integration
def test_sign_up_upload_watch_download_delete(live_server, browser, photos_dir, screenshots):
    context = browser.new_context(accept_downloads=True, viewport={"width": 1280, "height": 900})
    page = context.new_page()
    console_errors = collect_errors(page)

    page.goto(live_server + "/")
    page.screenshot(path=str(screenshots / "01-landing.png"), full_page=True)
    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("Email").fill("Browser@Example.com")
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.locator("main").get_by_role("button", name="Create account").click()
    # A sign-up signs nobody in (docs/security.md): the sign-in form comes next, the email filled in.
    expect(page.get_by_text("Sign in with your email and the password you chose")).to_be_visible()
    expect(page.get_by_label("Email")).to_have_value("browser@example.com")
    finish_sign_in(page)
    expect(page.locator("#upload-form")).to_be_visible()

    drop_files(page, "#dropzone", [photos_dir / name for name in PHOTOS])
    expect(page.locator("#selected-files li")).to_have_count(2)
    page.screenshot(path=str(screenshots / "02-upload-selected.png"), full_page=True)
    page.get_by_role("button", name="Upload and process").click()

    # Several photos are one batch: its page follows them live and offers one ZIP once both are finished.
    expect(page).to_have_url(re.compile(r"/batches/[0-9a-f-]{36}$"))
    # A marker that a reload would wipe: the rows must finish on this very page.
    page.evaluate("window.studioTestMarker = 'still here'")
    rows = page.locator("#batch-status tr.task-row")
    expect(rows).to_have_count(2)
    expect(page.locator('#batch-status[data-finished="true"]')).to_have_count(1, timeout=PROCESSING_TIMEOUT_MS)
    expect(page.locator('#batch-status tr.task-row[data-status="COMPLETED"]')).to_have_count(2)
    expect(page.get_by_text("2 of 2 done")).to_be_visible()
    assert page.evaluate("window.studioTestMarker") == "still here"
    for name in PHOTOS:
        expect(rows.filter(has_text=name).get_by_role("link", name=re.compile("Download"))).to_be_visible()
    page.screenshot(path=str(screenshots / "03-batch-done.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(screenshots / "03-batch-done-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})
    with page.expect_download() as archive_info:
        page.get_by_role("button", name="Download all (ZIP)").click()
    assert archive_info.value.suggested_filename.endswith("-results.zip")
    with zipfile.ZipFile(archive_info.value.path()) as archive:
        assert archive.namelist() == ["rifle2.png", "horse.png", "manifest.json"]

    page.get_by_role("link", name=PHOTOS[0], exact=True).click()
    expect(page.get_by_role("heading", name=PHOTOS[0])).to_be_visible()
    # The result is the slider's second image (the photo is its first).
    result = page.locator('#task-status img[slot="second"]')
    expect(result).to_be_visible()
    assert page.evaluate("(image) => image.complete && image.naturalWidth > 0", result.element_handle())
    page.screenshot(path=str(screenshots / "04-task.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(screenshots / "04-task-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 900})

    with page.expect_download() as download_info:
        page.get_by_role("button", name=re.compile("Download PNG")).click()
    download = download_info.value
    assert download.suggested_filename.endswith(".png")
    image = Image.open(io.BytesIO(Path(download.path()).read_bytes()))
    assert image.format == "PNG" and image.mode == "RGBA"
    alpha_low, alpha_high = image.getchannel("A").getextrema()
    assert alpha_low < 128 < alpha_high, "a cutout has both transparent and opaque pixels"

    task_url = page.url
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Delete photo").click()
    expect(page).to_have_url(live_server + "/tasks")
    expect(page.get_by_text(f"Deleted {PHOTOS[0]}")).to_be_visible()
    expect(page.get_by_role("link", name=PHOTOS[0], exact=True)).to_have_count(0)
    expect(page.get_by_role("link", name=PHOTOS[1], exact=True)).to_have_count(1)
    page.screenshot(path=str(screenshots / "05-history.png"), full_page=True)
    assert page.goto(task_url).status == 404
    assert page.goto(task_url + "/result?download=1").status == 404

    page.goto(live_server + "/account")
    page.screenshot(path=str(screenshots / "06-account.png"), full_page=True)
    page.goto(live_server + "/tasks")  # and the page works after all that
    # Console errors include CSP violations: inline code anywhere would show up here.
    assert [error for error in console_errors if "404" not in error] == []
    context.close()


@pytest.mark.browser
@pytest.mark.integration
def test_a_background_picture_and_a_size_preset_from_the_upload_form(
        live_server, browser, photos_dir, screenshots, tmp_path):
    background = tmp_path / "green.png"
    Image.new("RGB", (64, 48), (0, 200, 0)).save(background)
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    sign_up(page, live_server, "background@example.com")

    # The script posts each photo on its own: the background must travel with every one of them.
    page.locator("#photo").set_input_files(str(photos_dir / "horse.jpg"))
    page.get_by_label("Background image (optional)").set_input_files(str(background))
    page.get_by_label("Format").select_option("jpeg")
    page.get_by_label("Output size").select_option("preview")
    page.screenshot(path=str(screenshots / "07-upload-background.png"), full_page=True)
    page.get_by_role("button", name="Upload and process").click()
    done = page.locator('#upload-results tr.task-row[data-status="COMPLETED"]')
    expect(done).to_have_count(1, timeout=PROCESSING_TIMEOUT_MS)

    done.get_by_role("link", name="horse.jpg", exact=True).click()
    expect(page.get_by_text("background image", exact=False).first).to_be_visible()
    result_url = page.locator('#task-status img[slot="second"]').get_attribute("src")
    response = context.request.get(live_server + result_url)
    image = Image.open(io.BytesIO(response.body()))
    assert image.format == "JPEG" and image.width * image.height <= 250_000
    assert image.getpixel((1, 1)) == pytest.approx((0, 200, 0), abs=8)  # the corner is the uploaded picture
    page.screenshot(path=str(screenshots / "08-task-background.png"), full_page=True)
    context.close()


@pytest.mark.browser
@pytest.mark.integration
def test_choosing_an_operation_shows_its_options_and_its_results_as_a_table(
        live_server, browser, photos_dir, screenshots):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = collect_errors(page, console=False)
    sign_up(page, live_server, "operations@example.com")

    # An option that needs another shows only with it: the crop margin with the crop.
    margin = page.get_by_label("Margin (pixels)")
    expect(margin).to_be_hidden()
    page.get_by_label("Crop to the subject").check()
    expect(margin).to_be_visible()

    # Another operation: its own options replace the cutout's.
    page.get_by_label("What to do").select_option("faces")
    expect(page.get_by_label("Smallest face (pixels)")).to_be_visible()
    expect(page.get_by_label("Background colour")).to_have_count(0)
    page.locator("#photo").set_input_files(str(photos_dir / "Two_dancers.jpg"))
    page.screenshot(path=str(screenshots / "09-upload-faces.png"), full_page=True)
    page.get_by_role("button", name="Upload and process").click()
    done = page.locator('#upload-results tr.task-row[data-status="COMPLETED"]')
    expect(done).to_have_count(1, timeout=PROCESSING_TIMEOUT_MS)
    expect(done).to_contain_text("Find faces")

    done.get_by_role("link", name="Two_dancers.jpg", exact=True).click()
    expect(page.get_by_text("Faces (2)")).to_be_visible()
    expect(page.locator("#task-status .result-data img")).to_have_attribute("src", re.compile(r"/outputs/preview$"))
    page.screenshot(path=str(screenshots / "10-task-faces.png"), full_page=True)
    assert errors == []
    context.close()


@pytest.mark.browser
@pytest.mark.integration
def test_a_batch_with_a_damaged_photo_and_a_stray_file_says_which_and_retries(
        live_server, browser, photos_dir, screenshots, tmp_path):
    damaged = tmp_path / "cut-off.jpg"
    data = (photos_dir / "horse.jpg").read_bytes()
    damaged.write_bytes(data[:len(data) // 3])  # its header is whole, its pixels are not
    notes = tmp_path / "notes.txt"
    notes.write_text("not a photo")
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors = collect_errors(page, console=False)
    sign_up(page, live_server, "batches@example.com")

    drop_files(page, "#dropzone", [photos_dir / "rifle2.jpeg", damaged, notes])
    page.get_by_role("button", name="Upload and process").click()
    expect(page).to_have_url(re.compile(r"/batches/[0-9a-f-]{36}$"))
    expect(page.locator('#batch-status[data-finished="true"]')).to_have_count(1, timeout=PROCESSING_TIMEOUT_MS)
    expect(page.get_by_text("1 of 2 done")).to_be_visible()
    expect(page.locator('tr.task-row[data-status="FAILED"]')).to_contain_text("damaged")
    page.get_by_text("1 file not processed").click()
    expect(page.get_by_text("notes.txt")).to_be_visible()
    expect(page.get_by_role("button", name="Download all (ZIP)")).to_be_visible()
    page.screenshot(path=str(screenshots / "11-batch-failed.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.screenshot(path=str(screenshots / "11-batch-failed-phone.png"), full_page=True)
    # The table scrolls inside its own box; nothing widens the page itself.
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.set_viewport_size({"width": 1280, "height": 900})

    page.get_by_role("button", name="Retry 1 failed").click()
    expect(page.get_by_text("Processing 1 photo again")).to_be_visible()
    expect(page.locator('#batch-status[data-finished="true"]')).to_have_count(1, timeout=PROCESSING_TIMEOUT_MS)
    expect(page.locator('tr.task-row[data-status="FAILED"]')).to_have_count(1)  # damaged again, and said so
    assert errors == []
    context.close()
