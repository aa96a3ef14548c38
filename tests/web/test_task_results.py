"""The task page shows a result so it can be judged: before and after on one slider when the framing is the same,
the result's own pixel size and file size, a background choice behind transparency, what was found as tables
(never raw JSON), and no Cancel button once the task is finished."""

from __future__ import annotations

import io
import json
import re

import pytest
from PIL import Image

from studio.models import TaskStatus
from studio.storage import get_storage
from studio.tasks.data_tables import tables
from studio.tasks.display import file_size

# make_task's photo is 4x3 pixels.
SLIDER = "<img-comparison-slider"


def _png(width: int, height: int, mode: str = "RGBA") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), (10, 20, 30, 0) if mode == "RGBA" else (10, 20, 30)).save(buffer, "PNG")
    return buffer.getvalue()


def _completed(app, make_task, user_id, data: bytes, media_type="image/png", operation="upscale", **outputs):
    key = f"results/{user_id}/result-{len(data)}-{operation}.png"
    with app.app_context():
        get_storage().put(key, data, media_type)
    return make_task(user_id, TaskStatus.COMPLETED, operation=operation, outputs={
        "result": {"key": key, "media_type": media_type, "size": len(data)}, **outputs})


def test_a_result_of_the_same_framing_is_on_a_slider_with_its_own_size(app, client, auth, make_user, make_task):
    user = make_user()
    auth.login()
    data = _png(1600, 1200)
    task_id = _completed(app, make_task, user.id, data)
    html = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    slider = html[html.index(SLIDER):html.index("</img-comparison-slider>")]
    assert re.search(rf'<img src="/tasks/{task_id}/input" slot="first"', slider)
    assert re.search(rf'<img src="/tasks/{task_id}/result" alt="[^"]+" slot="second"', slider)
    # The result's size, not the photo's; the photo's is there too, as the original.
    assert "1,600 × 1,200 pixels" in html and "Original: 4 × 3 pixels" in html
    assert file_size(len(data)) in html and "PNG" in html
    assert f'href="/tasks/{task_id}/result" target="_blank" rel="noopener"' in html
    assert "data-zoom" in html and 'data-background-choice="white"' in html
    assert "vendor/img-comparison-slider.min.js" in html and "js/result.js" in html


def test_an_opaque_result_has_no_background_choice(app, client, auth, make_user, make_task):
    user = make_user()
    auth.login()
    task_id = _completed(app, make_task, user.id, _png(8, 6, "RGB"), operation="stylize")
    html = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert SLIDER in html and "8 × 6 pixels" in html
    assert "data-background-choice" not in html and "checkerboard" not in html


def test_a_result_of_another_framing_is_shown_beside_the_photo_with_what_it_found(
        app, client, auth, make_user, make_task):
    user = make_user()
    auth.login()
    crop = {"box": [102, 0, 697, 595], "basis": "object", "label": "horse", "whole": False}
    with app.app_context():
        get_storage().put("results/1/crop.json", json.dumps(crop).encode(), "application/json")
    task_id = _completed(app, make_task, user.id, _png(300, 400), operation="smart_crop", crop={
        "key": "results/1/crop.json", "media_type": "application/json", "size": 1})
    html = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert SLIDER not in html and 'class="result-data"' not in html
    assert f'src="/tasks/{task_id}/input"' in html and f'src="/tasks/{task_id}/result"' in html
    assert "300 × 400 pixels" in html and "data-zoom-target" in html
    assert "<caption>Crop</caption>" in html and "595 × 595 px at (102, 0)" in html and "<td>no</td>" in html


@pytest.mark.parametrize("stored", [None, b"not an image at all", _png(4, 3)[:20]])
def test_a_result_missing_or_unreadable_in_storage_still_renders(app, client, auth, make_user, make_task, stored):
    user = make_user()
    auth.login()
    if stored is not None:
        with app.app_context():
            get_storage().put("missing/result.png", stored, "image/png")
    task_id = make_task(user.id, TaskStatus.COMPLETED, outputs={
        "result": {"key": "missing/result.png", "media_type": "image/png", "size": 2500}})
    response = client.get(f"/tasks/{task_id}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200 and "2.5 KB" in html and SLIDER not in html and "data-output-size" not in html


@pytest.mark.parametrize("status", [TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED])
def test_a_finished_task_has_no_cancel_button_in_its_page_or_its_last_fragment(client, auth, make_user, make_task,
                                                                               status):
    user = make_user()
    auth.login()
    running = make_task(user.id, TaskStatus.PROCESSING)
    finished = make_task(user.id, status)
    for path in (f"/tasks/{running}", f"/tasks/{running}/status"):
        assert f'action="/tasks/{running}/cancel"' in client.get(path).get_data(as_text=True)
    for path in (f"/tasks/{finished}", f"/tasks/{finished}/status"):
        html = client.get(path).get_data(as_text=True)
        assert "/cancel" not in html and "Cancel processing" not in html


def test_the_photo_is_kept_while_polling(client, auth, make_user, make_task):
    user = make_user()
    auth.login()
    task_id = make_task(user.id, TaskStatus.PROCESSING)
    html = client.get(f"/tasks/{task_id}/status").get_data(as_text=True)
    assert re.search(r'id="task-before" hx-preserve="true"', html) and f'src="/tasks/{task_id}/input"' in html


def test_json_results_are_tables_with_units_beside_the_preview(app, client, auth, make_user, make_task):
    user = make_user()
    auth.login()
    found = {"count": 2, "faces": [
        {"box": [396.9, 118.2, 446.6, 173.5], "confidence": 0.9922,
         "landmarks": {"left_eye": [419.9, 135.8], "nose": [428.1, 146.7]}},
        {"box": [174.8, 181.0, 220.1, 234.4], "confidence": 0.8695,
         "landmarks": {"left_eye": [199.6, 197.9], "nose": [207.7, 209.5]}}]}
    stats = {"width": 633, "height": 800, "subject": {"found": True, "area": 96216, "area_fraction": 0.19,
                                                      "centroid": [275.59, 341.15]}}
    preview = _png(633, 800, "RGB")
    with app.app_context():
        get_storage().put("results/1/faces.json", json.dumps(found).encode(), "application/json")
        get_storage().put("results/1/stats.json", json.dumps(stats).encode(), "application/json")
        get_storage().put("results/1/preview.png", preview, "image/png")
    task_id = make_task(user.id, TaskStatus.COMPLETED, operation="faces", outputs={
        "result": {"key": "results/1/faces.json", "media_type": "application/json", "size": 1},
        "preview": {"key": "results/1/preview.png", "media_type": "image/png", "size": len(preview)},
        "stats": {"key": "results/1/stats.json", "media_type": "application/json", "size": 1}})
    for path in (f"/tasks/{task_id}", f"/tasks/{task_id}/status"):
        html = client.get(path).get_data(as_text=True)
        region = html[html.index('class="result-data"'):html.index('class="status-line"')]
        assert f'src="/tasks/{task_id}/outputs/preview"' in region and "633 × 800 pixels" in region
        assert "<caption>Faces (2)</caption>" in region
        assert '<th scope="col">Box</th>' in region and '<th scope="col">Confidence</th>' in region
        assert "50 × 55 px at (397, 118)" in region and "99.2 %" in region and "87.0 %" in region
        assert "<li>Left eye (420, 136)</li>" in region
        # Another JSON output gets its tables too: a record's values with their units.
        assert '<th scope="row">Width</th><td>633 px</td>' in region and "96,216 px²" in region
        assert "19.0 %" in region and "(276, 341)" in region and "<td>yes</td>" in region
        # Never raw JSON: no brackets or braces of the data in the tables.
        tables_html = region[region.index('class="json-data"'):]
        assert not re.search(r"[\[\]{}]|&#34;|&quot;", tables_html), tables_html
        assert SLIDER not in html


@pytest.mark.parametrize("data, caption, row", [
    ({"count": 0, "objects": []}, "Summary", ["Objects", "none"]),
    ({"box": [0, 55, 633, 688], "whole": False, "label": "person"}, "Summary",
     ["Box", "633 × 633 px at (0, 55)"]),
    ({"score": 1.5, "ratio": 0.123456, "big": 123456.7}, "Summary", ["Score", "1.5"]),
])
def test_data_tables_say_values_in_words_and_units(data, caption, row):
    found = tables({"result": data})
    assert found[0].caption == caption
    assert row in [[cell.text for cell in cells] for cells in found[0].rows]


@pytest.mark.parametrize("size, text", [(0, "0 bytes"), (999, "999 bytes"), (1000, "1.0 KB"), (312_400, "312 KB"),
                                        (4_200_000, "4.2 MB"), (999_600, "1.0 MB"), (2_500_000_000, "2.5 GB")])
def test_file_sizes_read_as_people_write_them(size, text):
    assert file_size(size) == text
