"""Task pages: owner isolation on every task route, the polling fragments, the list, uploads, re-run and delete."""

from __future__ import annotations

import io
import re
import uuid
from pathlib import Path

import pytest
from flask import Flask
from PIL import Image

from studio.auth import service as account_service
from studio.extensions import db
from studio.models import Task, TaskStatus, User
from studio.storage import get_storage
from tests.support.web import csrf_token

# A fragment polls with a delayed load trigger; once everything in it is finished it has none.
POLLING = re.compile(r'hx-trigger="load delay:\d+s')


def _task_rules(app: Flask):
    return [rule for rule in app.url_map.iter_rules() if "task_id" in rule.arguments]


def test_the_task_routes_are_all_found(app):
    endpoints = {rule.endpoint for rule in _task_rules(app)}
    assert {"tasks.detail", "tasks.status", "tasks.result", "tasks.input_image", "tasks.rerun",
            "tasks.delete"} <= endpoints


def test_every_task_route_answers_404_for_another_accounts_task(app, client, auth, make_user, make_task):
    owner = make_user("owner@example.com")
    task_id = make_task(owner.id, TaskStatus.COMPLETED,
                        outputs={"result": {"key": "missing/result.png", "media_type": "image/png", "size": 0}})
    intruder = make_user("intruder@example.com")
    with app.app_context():
        _, bearer = account_service.create_api_token(db.session.get(User, intruder.id))
    auth.login("intruder@example.com")
    # Both a session and a bearer token, so page routes and API routes alike see a signed-in intruder.
    headers = {"X-CSRFToken": csrf_token(client, "/tasks"), "Authorization": f"Bearer {bearer}"}
    checked = 0
    for rule in _task_rules(app):
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            for target in (task_id, str(uuid.uuid4())):
                path = rule.build({**{name: 1 for name in rule.arguments}, "task_id": target}, append_unknown=False)[1]
                response = client.open(path, method=method, headers=headers, data={"model": "u2netp"})
                assert response.status_code == 404, f"{method} {path} answered {response.status_code}"
                checked += 1
    assert checked >= 12
    with app.app_context():
        assert db.session.get(User, owner.id) is not None
    # The owner still has the task: nothing above changed it.
    auth.logout()
    auth.login("owner@example.com")
    assert client.get(f"/tasks/{task_id}").status_code == 200


def test_task_pages_need_a_signed_in_user(client, make_user, make_task):
    task_id = make_task(make_user().id)
    for path in (f"/tasks/{task_id}", f"/tasks/{task_id}/status", f"/tasks/{task_id}/input", "/tasks"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("status, polls", [
    (TaskStatus.PENDING, True), (TaskStatus.PROCESSING, True),
    (TaskStatus.COMPLETED, False), (TaskStatus.FAILED, False), (TaskStatus.CANCELLED, False),
])
def test_status_fragment_polls_only_while_the_task_runs(client, auth, make_user, make_task, status, polls):
    user = make_user()
    auth.login()
    result = {"outputs": {"result": {"key": "results/1/x.png", "media_type": "image/png", "size": 0}}} \
        if status == TaskStatus.COMPLETED else {}
    task_id = make_task(user.id, status, progress=40, stage="tile 3 of 8",
                        error="the model ran out of memory" if status == TaskStatus.FAILED else None, **result)
    html = client.get(f"/tasks/{task_id}/status").get_data(as_text=True)
    root = html.strip().split(">", 1)[0]
    assert root.startswith("<section")
    assert f'data-status="{status.value}"' in root
    assert bool(POLLING.search(root)) is polls
    if polls:
        assert 'hx-target="this"' in root and 'hx-swap="outerHTML"' in root
        assert f'hx-get="/tasks/{task_id}/status?delay=1&amp;seen=' in root
        assert "tile 3 of 8" in html
    else:
        assert "hx-get" not in root
    assert 'aria-live="polite"' in html
    if status == TaskStatus.PROCESSING:
        assert 'value="40"' in html
    if status == TaskStatus.COMPLETED:
        assert f"/tasks/{task_id}/result" in html
    if status == TaskStatus.FAILED:
        assert "the model ran out of memory" in html


@pytest.mark.parametrize("status", list(TaskStatus))
def test_use_this_result_is_offered_only_once_the_result_exists(client, auth, make_user, make_task, status):
    user = make_user()
    auth.login()
    result = {"outputs": {"result": {"key": "results/1/x.png", "media_type": "image/png", "size": 0}}} \
        if status == TaskStatus.COMPLETED else {}
    task_id = make_task(user.id, status, **result)
    offer = f'href="/?source={task_id}"'
    page = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    fragment = client.get(f"/tasks/{task_id}/status").get_data(as_text=True)
    completed = status == TaskStatus.COMPLETED
    assert (offer in page, "Use this result" in page) == (completed, completed)
    # The polling fragment is what replaces the live region when a running task completes: it brings the offer in,
    # once, inside the region it swaps.
    assert fragment.count(offer) == (1 if completed else 0)
    if completed:
        assert page.count(offer) == 1
        assert fragment.index(offer) < fragment.rindex("</section>")


def _delay(html: str) -> int:
    return int(re.search(r'hx-trigger="load delay:(\d+)s', html).group(1))


def test_polling_slows_down_while_nothing_changes_and_speeds_up_when_something_does(
        app, client, auth, make_user, make_task):
    user = make_user()
    auth.login()
    task_id = make_task(user.id, TaskStatus.PROCESSING, progress=10)
    first = client.get(f"/tasks/{task_id}/status").get_data(as_text=True)
    url = re.search(r'hx-get="([^"]+)"', first).group(1).replace("&amp;", "&")
    delays = []
    for _ in range(4):
        html = client.get(url).get_data(as_text=True)
        delays.append(_delay(html))
        url = re.search(r'hx-get="([^"]+)"', html).group(1).replace("&amp;", "&")
    assert delays == [2, 4, 8, 8]
    with app.app_context():
        db.session.get(Task, task_id).progress = 55
        db.session.commit()
    assert _delay(client.get(url).get_data(as_text=True)) == 1


def test_a_task_table_polls_once_for_all_its_rows_and_only_the_accounts_own(client, auth, make_user, make_task):
    user = make_user()
    other = make_user("other@example.com")
    auth.login()
    running = [make_task(user.id, TaskStatus.PROCESSING, original_filename=f"run-{n}.jpg") for n in range(3)]
    done = make_task(user.id, TaskStatus.COMPLETED, original_filename="done.jpg")
    theirs = make_task(other.id, TaskStatus.PROCESSING, original_filename="theirs.jpg")
    history = client.get("/tasks").get_data(as_text=True)
    # One poller, on the table body, carrying every row's id; no row polls on its own (the filters above the list
    # reload it on a change).
    listing = history.split('<div id="history">')[1]
    assert listing.count("hx-trigger=") == 1 and "<tr id=\"task-" in listing
    assert re.search(r'<tbody id="task-rows" data-task-table hx-get="/tasks/rows\?table=task-rows', history)
    ids = [*running, done, theirs, "not-a-uuid"]
    html = client.get("/tasks/rows", query_string={"task": ids, "table": "task-rows"}).get_data(as_text=True)
    assert html.strip().startswith('<tbody id="task-rows"')
    assert all(f'id="task-{task_id}"' in html for task_id in [*running, done]) and "theirs.jpg" not in html
    assert POLLING.search(html)
    with client.application.app_context():
        for task_id in running:
            db.session.get(Task, task_id).status = TaskStatus.COMPLETED.value
        db.session.commit()
    finished = client.get("/tasks/rows", query_string={"task": [*running, done], "table": "task-rows"})
    assert not POLLING.search(finished.get_data(as_text=True))
    assert 'hx-trigger="tasks-added"' in finished.get_data(as_text=True)


def test_fragments_escape_what_users_and_errors_put_in_them(client, auth, make_user, make_task):
    user = make_user()
    auth.login()
    task_id = make_task(user.id, TaskStatus.FAILED, error="<script>alert(1)</script>",
                        original_filename="<img src=x onerror=alert(2)>.jpg")
    for path, query in ((f"/tasks/{task_id}/status", {}), ("/tasks/rows", {"task": task_id})):
        html = client.get(path, query_string=query).get_data(as_text=True)
        assert "<script>alert(1)" not in html and "<img src=x" not in html
    detail = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "<img src=x" not in detail


@pytest.mark.parametrize("fields, says", [
    ({}, None),
    ({"webhook_status": "PENDING", "webhook_attempts": 0}, "called once the task is finished"),
    ({"webhook_status": "PENDING", "webhook_attempts": 2, "webhook_response": "HTTP 503"}, "retrying (HTTP 503)"),
    ({"webhook_status": "DELIVERED", "webhook_attempts": 1, "webhook_response": "HTTP 200"}, "delivered (HTTP 200)"),
    ({"webhook_status": "FAILED", "webhook_attempts": 6, "webhook_response": "<b>HTTP 500</b>"},
     "not delivered (&lt;b&gt;HTTP 500&lt;/b&gt;)"),
])
def test_the_task_page_says_where_its_webhook_is(client, auth, make_user, make_task, fields, says):
    user = make_user()
    auth.login()
    url = "https://hooks.example.com/photo?a=1&b=2"
    task_id = make_task(user.id, TaskStatus.COMPLETED, **({"webhook_url": url, **fields} if fields else {}))
    html = client.get(f"/tasks/{task_id}/status").get_data(as_text=True)
    if says is None:
        assert "Webhook" not in html
    else:
        assert "https://hooks.example.com/photo?a=1&amp;b=2" in html and says in html


def test_the_task_page_includes_the_live_region_and_the_forms(client, auth, make_user, make_task):
    user = make_user()
    auth.login()
    task_id = make_task(user.id, TaskStatus.PROCESSING)
    html = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert 'id="task-status"' in html and POLLING.search(html)
    assert f'src="/tasks/{task_id}/input"' in html
    assert f'action="/tasks/{task_id}/rerun"' in html
    assert re.search(rf'action="/tasks/{task_id}/delete"\s+data-confirm=', html)
    assert html.count('name="csrf_token"') >= 3


def test_history_lists_own_tasks_newest_first_a_page_at_a_time(app, client, auth, make_user, make_task):
    app.config["STUDIO_TASKS_PER_PAGE"] = 2
    user = make_user()
    other = make_user("other@example.com")
    make_task(other.id, original_filename="not-mine.jpg")
    for name in ("first.jpg", "second.jpg", "third.jpg"):
        make_task(user.id, TaskStatus.COMPLETED, original_filename=name)
    auth.login()
    page_one = client.get("/tasks").get_data(as_text=True)
    assert "third.jpg" in page_one and "second.jpg" in page_one and "first.jpg" not in page_one
    assert 'href="/tasks?page=2"' in page_one
    page_two = client.get("/tasks?page=2").get_data(as_text=True)
    assert "first.jpg" in page_two
    for page in (page_one, page_two):
        assert "not-mine.jpg" not in page
        assert not POLLING.search(page)  # all finished: nothing to poll


def test_history_survives_a_silly_page_number(client, auth, make_user):
    make_user()
    auth.login()
    assert client.get("/tasks?page=-3").status_code == 200
    assert client.get("/tasks?page=abc").status_code == 200
    assert client.get("/tasks?page=9999").status_code in (200, 404)


def test_landing_page_for_visitors_upload_page_for_members(client, auth, make_user):
    assert b"Create an account" in client.get("/").data
    make_user()
    auth.login()
    page = client.get("/").get_data(as_text=True)
    assert 'id="upload-form"' in page and 'type="file"' in page and "multiple" in page
    # The operation first, then its options, generated from its schema.
    assert re.search(r'<select id="operation" name="operation" hx-get="/tasks/fields"', page)
    assert '<option value="mask_stats"' in page
    for field in ("model", "output", "format", "bg_color", "blur", "crop", "margin", "size", "post_process",
                  "bg_image"):
        assert f'name="{field}"' in page
    assert 'data-requires="{&#34;crop&#34;: true}"' in page  # the margin only applies to a crop
    assert "js/upload.js" in page


def test_choosing_another_operation_shows_its_options(client, auth, make_user):
    make_user()
    auth.login()
    fields = client.get("/tasks/fields?operation=mask_stats").get_data(as_text=True)
    assert 'name="threshold"' in fields and 'min="1"' in fields and 'max="254"' in fields
    assert 'name="bg_color"' not in fields
    page = client.get("/?operation=mask_stats").get_data(as_text=True)
    assert '<option value="mask_stats" selected>' in page and 'name="threshold"' in page


# Uploads go through the real service (helper A's studio/tasks/service.py), storage and queue.

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


def test_upload_one_photo_opens_its_page(signed_in, photo):
    response = _upload(signed_in, [(io.BytesIO(photo), "rifle.jpeg")], model="u2netp")
    assert response.status_code == 302
    task_page = response.headers["Location"]
    assert re.fullmatch(r"/tasks/[0-9a-f-]{36}", task_page)
    assert b"rifle.jpeg" in signed_in.get(task_page).data
    original = signed_in.get(task_page + "/input")
    assert original.status_code in (200, 302)
    if original.status_code == 200:
        # The stored photo is a clean copy (tests/uploads), the same picture.
        assert original.data.startswith(b"\xff\xd8") and len(original.data) > 1000


def test_upload_several_photos_for_the_script_makes_a_batch_and_sends_it_to_its_page(signed_in, photo):
    response = _upload(signed_in, [(io.BytesIO(photo), "a.jpeg"), (io.BytesIO(photo), "b.jpeg")],
                       headers={"HX-Request": "true", "Accept": "application/json"})
    assert response.status_code == 201
    batch_page = response.headers["HX-Redirect"]
    assert re.fullmatch(r"/batches/[0-9a-f-]{36}", batch_page)
    page = signed_in.get(batch_page).get_data(as_text=True)
    assert "a.jpeg" in page and "b.jpeg" in page and "0 of 2 done" in page


def test_upload_several_photos_without_the_script_opens_the_batch_page(signed_in, photo):
    response = _upload(signed_in, [(io.BytesIO(photo), "a.jpeg"), (io.BytesIO(photo), "b.jpeg")])
    assert response.status_code == 302 and response.headers["Location"].startswith("/batches/")
    page = signed_in.get(response.headers["Location"]).get_data(as_text=True)
    assert "Uploaded 2 photos as one batch" in page
    assert len(re.findall(r'<tr id="task-', page)) == 2


def test_a_bad_file_among_good_ones_is_listed_and_the_rest_are_kept(signed_in, photo):
    response = _upload(signed_in, [(io.BytesIO(photo), "good.jpeg"), (io.BytesIO(b"nonsense"), "bad.txt")])
    assert response.status_code == 302
    page = signed_in.get(response.headers["Location"]).get_data(as_text=True)
    assert "good.jpeg" in page and "<code>bad.txt</code>: The file is not a JPEG" in page
    assert "1 file was not processed" in page


def test_upload_without_a_photo_is_a_400_with_a_message(signed_in):
    response = _upload(signed_in, [])
    assert response.status_code == 400
    assert "Choose at least one photo" in response.get_data(as_text=True)


def test_upload_of_a_non_image_is_refused_with_a_message(signed_in):
    response = _upload(signed_in, [(io.BytesIO(b"%PDF-1.4 not a photo"), "cv.pdf")],
                       headers={"HX-Request": "true", "Accept": "application/json"})
    assert 400 <= response.status_code < 500
    message = response.get_json()["error"]["message"]
    # The page's script names the file beside the message (tests/web/test_forms_for_people.py).
    assert "JPEG, PNG or WebP" in message
    assert "Traceback" not in message


def test_upload_with_bad_options_is_refused_with_the_field(signed_in, photo):
    response = _upload(signed_in, [(io.BytesIO(photo), "a.jpeg")], blur="200")
    assert response.status_code == 400
    assert "blur" in response.get_data(as_text=True)


def test_too_large_upload_is_a_413_with_a_message(app, signed_in, photo):
    app.config["MAX_CONTENT_LENGTH"] = 1024
    response = _upload(signed_in, [(io.BytesIO(photo), "big.jpeg")],
                       headers={"HX-Request": "true", "Accept": "application/json"})
    assert response.status_code == 413
    assert "larger than the limit" in response.get_json()["error"]["message"]


def test_rerun_creates_a_new_task_with_the_new_options(signed_in, photo):
    first = _upload(signed_in, [(io.BytesIO(photo), "a.jpeg")]).headers["Location"]
    response = signed_in.post(first + "/rerun", data={"csrf_token": csrf_token(signed_in, first), "model": "u2netp",
                                                      "output": "mask", "format": "png"})
    assert response.status_code == 302
    second = response.headers["Location"]
    assert second != first
    assert "mask" in signed_in.get(second).get_data(as_text=True)


def _background_png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (40, 30), (0, 200, 0)).save(buffer, "PNG")
    return buffer.getvalue()


def test_one_background_for_several_photos_gives_each_task_its_own_copy(app, signed_in, photo):
    page = signed_in.get("/").get_data(as_text=True)
    assert 'name="bg_image"' in page and 'type="file"' in page
    response = _upload(signed_in, [(io.BytesIO(photo), "a.jpeg"), (io.BytesIO(photo), "b.jpeg")],
                       bg_image=(io.BytesIO(_background_png()), "green.png"))
    assert response.status_code == 302
    with app.app_context():
        tasks = db.session.query(Task).all()
        keys = {task.attachments["bg_image"]["key"] for task in tasks}
        assert len(tasks) == 2 and len(keys) == 2 and all(task.options["bg_image"] for task in tasks)
        assert all(get_storage(app).get(key) for key in keys)
        first = tasks[0].id
    assert "background image" in signed_in.get(f"/tasks/{first}").get_data(as_text=True)


@pytest.mark.parametrize("keep", [True, False])
def test_rerun_keeps_the_background_image_only_when_asked(app, signed_in, photo, keep):
    first = _upload(signed_in, [(io.BytesIO(photo), "a.jpeg")],
                    bg_image=(io.BytesIO(_background_png()), "green.png")).headers["Location"]
    page = signed_in.get(first).get_data(as_text=True)
    assert 'name="keep_attachments"' in page
    form = {"csrf_token": csrf_token(signed_in, first), "model": "u2netp", "output": "cutout", "format": "jpeg"}
    if keep:
        form["keep_attachments"] = "true"
    response = signed_in.post(first + "/rerun", data=form)
    if not keep:
        # A JPEG cutout without its background would need a colour: the refusal says so.
        assert response.status_code == 400
        assert "Format: JPEG has no transparency: choose a background colour" in response.get_data(as_text=True)
        return
    assert response.status_code == 302
    with app.app_context():
        old, new = (db.session.get(Task, location.rsplit("/", 1)[-1])
                    for location in (first, response.headers["Location"]))
        old_key, new_key = old.attachments["bg_image"]["key"], new.attachments["bg_image"]["key"]
        assert new.options["bg_image"] and new_key != old_key
        assert get_storage(app).get(new_key) == get_storage(app).get(old_key)
        assert new.attachments_size == old.attachments_size > 0


def test_rerun_with_bad_options_explains_and_keeps_the_task(signed_in, photo):
    first = _upload(signed_in, [(io.BytesIO(photo), "a.jpeg")]).headers["Location"]
    response = signed_in.post(first + "/rerun", data={"csrf_token": csrf_token(signed_in, first),
                                                      "format": "jpeg", "output": "cutout"})
    assert response.status_code == 400
    assert "JPEG has no transparency" in response.get_data(as_text=True)


def test_delete_removes_the_task(signed_in, photo):
    task_page = _upload(signed_in, [(io.BytesIO(photo), "a.jpeg")]).headers["Location"]
    response = signed_in.post(task_page + "/delete", data={"csrf_token": csrf_token(signed_in, task_page)})
    assert response.status_code == 302 and response.headers["Location"] == "/tasks"
    assert signed_in.get(task_page).status_code == 404
    assert signed_in.get(task_page + "/input").status_code == 404


def test_a_data_result_is_shown_as_tables_beside_its_preview(app, client, auth, make_user, make_task):
    user = make_user()
    auth.login()
    data = {"faces": [{"box": [1, 2, 3, 4], "confidence": 0.99}, {"box": [5, 6, 7, 8], "confidence": 0.91}],
            "photo": {"width": 640, "height": 480, "note": "<b>escaped</b>"}}
    task_id = make_task(user.id, TaskStatus.COMPLETED, operation="mask_stats", outputs={
        "result": {"key": "results/1/data.json", "media_type": "application/json", "size": 0},
        "preview": {"key": "results/1/data-preview.jpg", "media_type": "image/jpeg", "size": 3}})
    with app.app_context():
        get_storage().put("results/1/data.json", __import__("json").dumps(data).encode(), "application/json")
    html = client.get(f"/tasks/{task_id}").get_data(as_text=True)
    assert "<caption>Faces (2)</caption>" in html and ">91.0 %</td>" in html
    assert '<th scope="row">Width</th><td>640 px</td>' in html and "&lt;b&gt;escaped" in html
    assert f'src="/tasks/{task_id}/outputs/preview"' in html
    assert f'href="/tasks/{task_id}/result?download=1"' in html and "Download JSON" in html
    assert "Subject statistics" in html
