"""The upload form for people: refusals in one sentence naming the file once and the option by its label, named
colours, plain labels with the technical detail behind a "Details" disclosure, options that do not apply marked
for hiding, models that are not installed marked."""

from __future__ import annotations

import html
import io
import re
from pathlib import Path

import pytest
from PIL import Image

from ml.operations import OPERATIONS
from studio.extensions import db
from studio.models import Task
from studio.tasks import service
from tests.support.web import csrf_token

JARGON = ("rembg", "post_process", "Lanczos", "P-Net", "R-Net", "O-Net", "Dumoulin", "COCO", "mask value",
          "1-254", "RRDBNet", "Real-ESRGAN x4plus (")
ERROR_BOX = re.compile(r'<div id="upload-errors"[^>]*>(.*?)</div>', re.DOTALL)
DETAILS = re.compile(r"<details.*?</details>", re.DOTALL)


@pytest.fixture
def photo(photos_dir: Path) -> bytes:
    """Return the bytes of a small real photo."""
    return (photos_dir / "rifle2.jpeg").read_bytes()


@pytest.fixture
def signed_in(client, auth, make_user):
    """Sign a user in and return the client."""
    make_user()
    auth.login()
    return client


def _upload(client, files, headers=None, **options):
    data = {"csrf_token": csrf_token(client, "/"), "photo": files, **options}
    return client.post("/tasks", data=data, headers=headers or {}, content_type="multipart/form-data")


def _text(markup: str) -> str:
    """Return what a reader sees of some markup: its text, tags dropped, entities decoded."""
    return html.unescape(re.sub(r"<[^>]+>", " ", markup))


def _errors(response) -> str:
    box = ERROR_BOX.search(response.get_data(as_text=True))
    assert box, "the upload page has no error box"
    return " ".join(_text(box.group(1)).split())


def test_a_refused_file_is_named_once_next_to_the_form_and_nothing_says_uploaded(signed_in):
    response = _upload(signed_in, [(io.BytesIO(b"%PDF-1.4 not a photo"), "notaphoto.jpg")])
    assert 400 <= response.status_code < 500
    errors = _errors(response)
    assert errors.count("notaphoto.jpg") == 1
    assert "notaphoto.jpg: The file is not a JPEG, PNG or WebP image." in errors
    page = response.get_data(as_text=True)
    assert page.count("notaphoto.jpg") == 1
    assert "Uploaded" not in page


def test_the_scripts_refusal_is_one_sentence_without_the_file_name(signed_in):
    # The page's script names the file itself: the server's sentence must not repeat it.
    response = _upload(signed_in, [(io.BytesIO(b"%PDF-1.4 not a photo"), "cv.pdf")],
                       headers={"HX-Request": "true", "Accept": "application/json"})
    message = response.get_json()["error"]["message"]
    assert message == "The file is not a JPEG, PNG or WebP image."
    assert "cv.pdf" not in message


def test_an_option_is_named_by_its_label_not_its_field(app, signed_in, photo):
    app.config["STUDIO_MAX_OUTPUT_PIXELS"] = 200_000
    response = _upload(signed_in, [(io.BytesIO(photo), "bike.jpg")], operation="upscale", scale="4")
    assert response.status_code == 400
    errors = _errors(response)
    assert errors.count("bike.jpg") == 1
    assert "bike.jpg: Scale: the result could be up to" in errors
    assert "scale:" not in errors


def test_an_out_of_range_number_reads_as_a_sentence_with_the_label(signed_in, photo):
    response = _upload(signed_in, [(io.BytesIO(photo), "a.jpeg")], blur="200")
    assert response.status_code == 400
    assert "Background blur must be from 0 to 100, got 200." in _errors(response)
    assert "blur:" not in _errors(response)


def test_the_api_keeps_naming_the_field(app, client, make_user, photo):
    from studio.auth import service as account_service
    from studio.models import User
    user = make_user()
    with app.app_context():
        _, bearer = account_service.create_api_token(db.session.get(User, user.id))
    response = client.post("/api/v1/tasks", headers={"Authorization": f"Bearer {bearer}"},
                           data={"image": (io.BytesIO(photo), "a.jpeg"), "bg_color": "blu"},
                           content_type="multipart/form-data")
    assert response.status_code == 400
    assert response.get_json()["error"]["message"].startswith("bg_color: 'blu' is not a colour")


def test_a_bad_file_among_good_ones_is_named_once_on_the_batch_page(signed_in, photo):
    # Several photos make one batch: the refused file is listed once among the files not processed.
    response = _upload(signed_in, [(io.BytesIO(photo), "good.jpeg"), (io.BytesIO(b"nope"), "bad.jpeg")])
    assert response.status_code == 302
    page = signed_in.get(response.headers["Location"]).get_data(as_text=True)
    skipped = re.search(r'<details class="batch-skipped">(.*?)</details>', page, re.S)
    assert skipped, "the batch page lists no file as not processed"
    assert " ".join(_text(skipped.group(1)).split()).count("bad.jpeg") == 1
    assert "bad.jpeg: bad.jpeg" not in page


@pytest.mark.parametrize("name, stored", [("white", "#ffffffff"), ("Sky Blue", "#87ceebff"),
                                          ("black", "#000000ff"), ("#abc", "#aabbccff")])
def test_background_colours_are_taken_by_name(app, signed_in, photo, name, stored):
    response = _upload(signed_in, [(io.BytesIO(photo), "a.jpeg")], bg_color=name)
    assert response.status_code == 302
    with app.app_context():
        task = db.session.scalars(db.select(Task)).one()
        assert task.options["bg_color"] == stored


def test_an_unknown_colour_is_refused_naming_the_field(signed_in, photo):
    response = _upload(signed_in, [(io.BytesIO(photo), "a.jpeg")], bg_color="blu")
    assert response.status_code == 400
    errors = _errors(response)
    assert "Background colour: 'blu' is not a colour: use a name like white or black, or a hex code" in errors


@pytest.mark.parametrize("operation", list(OPERATIONS))
def test_labels_and_help_are_plain_and_the_jargon_is_behind_details(signed_in, operation):
    page = signed_in.get(f"/tasks/fields?operation={operation}").get_data(as_text=True)
    visible = _text(DETAILS.sub(" ", page))
    for word in JARGON:
        assert word not in visible, f"{operation}: {word!r} shows outside the details"
    # Model ids are values, never what an option reads.
    assert not re.search(r">\s*u2net(p|_human_seg|p_release)?\s*<", page)


def test_the_technical_detail_is_still_there_behind_a_disclosure(signed_in):
    details = {operation: " ".join(DETAILS.findall(signed_in.get(f"/tasks/fields?operation={operation}")
                                                   .get_data(as_text=True)))
               for operation in ("remove_background", "stylize", "faces", "detect", "mask_stats")}
    assert "Lanczos" in details["remove_background"] and "post_process" in details["remove_background"]
    assert "Dumoulin" in details["stylize"]
    assert "P-Net, R-Net and O-Net" in details["faces"]
    assert "COCO" in details["detect"]
    assert "mask value (1-254)" in details["mask_stats"]


def test_the_mix_of_two_styles_shows_only_with_a_second_style(signed_in):
    page = signed_in.get("/tasks/fields?operation=stylize").get_data(as_text=True)
    blend = re.search(r'<div class="form-field form-field-number" data-requires="([^"]*)">\s*<label for="field-blend"',
                      page)
    assert blend and html.unescape(blend.group(1)) == '{"blend_with": {"not": "none"}}'
    assert 'class="picture-grid"' in page


def test_the_colour_field_has_a_picker_presets_and_a_text_box(signed_in):
    page = signed_in.get("/tasks/fields?operation=remove_background").get_data(as_text=True)
    assert 'type="color"' in page
    assert re.search(r'<input type="text" id="field-bg_color" name="bg_color"', page)
    assert 'data-colour="white"' in page and 'aria-label="Transparent"' in page


def test_models_that_are_not_installed_are_marked(signed_in, monkeypatch):
    monkeypatch.setattr(service, "installed_models", lambda: ("u2netp", "style26"))
    page = signed_in.get("/tasks/fields?operation=stylize").get_data(as_text=True)
    subject = re.search(r'<select id="field-mask_model".*?</select>', page, re.DOTALL).group(0)
    assert re.search(r'value="u2net"[^>]*disabled[^>]*>\s*Accurate \(not installed\)', subject)
    assert not re.search(r'value="u2netp"[^>]*disabled', subject)


def test_a_choice_of_one_is_a_line_not_a_select(signed_in):
    page = signed_in.get("/tasks/fields?operation=upscale").get_data(as_text=True)
    assert '<select id="field-model"' not in page
    assert '<input type="hidden" name="model" value="realesrgan_x4plus">' in page


def test_a_photo_is_small_enough_for_these_tests(photo):
    # The label test above needs the 4x result past 200,000 pixels: any photo of more than 12,500 does.
    assert Image.open(io.BytesIO(photo)).size[0] * Image.open(io.BytesIO(photo)).size[1] > 12_500
