"""The history page: thumbnails, filters, bulk delete, re-run and ZIP download, and a result used as a new photo."""

from __future__ import annotations

import io
import re
import zipfile

import pytest
from PIL import Image
from sqlalchemy import select

from studio.extensions import db
from studio.models import Task, TaskStatus
from studio.storage import get_storage, input_key, result_key, thumbnail_key
from tests.support.web import csrf_token


def _png(size=(40, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, (10, 120, 200)).save(buffer, "PNG")
    return buffer.getvalue()


@pytest.fixture
def user(make_user, auth):
    """Return the signed-in account."""
    account = make_user()
    auth.login()
    return account


@pytest.fixture
def completed(app, make_task):
    """Make a completed task whose result (a PNG) and thumbnail are stored; return its id."""
    def make(user_id: int, filename: str = "bike.jpg", data: bytes | None = None, **fields) -> str:
        data = data or _png()
        task_id = make_task(user_id, TaskStatus.COMPLETED, original_filename=filename, **fields)
        with app.app_context():
            task = db.session.get(Task, task_id)
            task.input_key = input_key(user_id, task_id, ".png")
            get_storage().put(task.input_key, _png(), "image/png")
            key = result_key(user_id, task_id, ".png")
            get_storage().put(key, data, "image/png")
            task.outputs = {"result": {"key": key, "media_type": "image/png", "size": len(data)}}
            thumbnail = thumbnail_key(user_id, task_id, "result")
            get_storage().put(thumbnail, b"RIFF-not-really", "image/webp")
            task.thumbnails = {"result": {"key": thumbnail, "media_type": "image/webp", "size": 15}}
            db.session.commit()
        return task_id
    return make


def _ids(html: str) -> list[str]:
    return re.findall(r'<tr id="task-([0-9a-f-]{36})"', html)


def _post(client, path, ids, **fields):
    return client.post(path, data={"csrf_token": csrf_token(client, "/tasks"), "selected": ids, **fields})


def test_history_shows_thumbnails_and_tells_two_same_named_photos_apart(client, user, completed, make_task):
    first, second = completed(user.id), completed(user.id)
    waiting = make_task(user.id, original_filename="bike.jpg")
    page = client.get("/tasks").get_data(as_text=True)
    for task_id in (first, second):
        assert f'<img class="thumb" src="/tasks/{task_id}/thumbnail"' in page
        assert f'id="select-{task_id}" name="selected" value="{task_id}" form="bulk-form"' in page
    # A task without a thumbnail yet shows a placeholder, no broken image.
    row = page.split(f'id="task-{waiting}"')[1].split("</tr>")[0]
    assert "thumb-placeholder" in row and "<img" not in row
    # The same file name twice: the time to the second and the tick box's label tell them apart.
    assert len(set(re.findall(r'aria-label="Select bike.jpg, uploaded ([0-9: -]+)"', page))) >= 1
    assert page.count('<time datetime="') == 3


def test_history_filters_by_status_and_operation_and_keeps_them_across_pages(client, user, completed, make_task):
    done = completed(user.id, "done.jpg")
    failed = make_task(user.id, TaskStatus.FAILED, original_filename="failed.jpg")
    cropped = make_task(user.id, TaskStatus.FAILED, original_filename="crop.jpg", operation="smart_crop")
    assert _ids(client.get("/tasks?status=COMPLETED").get_data(as_text=True)) == [done]
    assert set(_ids(client.get("/tasks?status=failed").get_data(as_text=True))) == {failed, cropped}
    assert _ids(client.get("/tasks?status=FAILED&operation=smart_crop").get_data(as_text=True)) == [cropped]
    # A stale or made-up filter shows everything rather than an error.
    assert len(_ids(client.get("/tasks?status=nonsense&operation=nope").get_data(as_text=True))) == 3
    page = client.get("/tasks?status=FAILED&operation=smart_crop").get_data(as_text=True)
    assert '<option value="smart_crop" selected>' in page and '<option value="FAILED" selected>' in page
    empty = client.get("/tasks?status=CANCELLED").get_data(as_text=True)
    assert "No photos match these filters" in empty


def test_the_api_filters_the_task_list(app, client, user, completed, make_task, make_user):
    from tests.support.web import PASSWORD
    done = completed(user.id)
    make_task(user.id, TaskStatus.FAILED)
    token = client.post("/api/v1/tokens", json={"email": "ada@example.com", "password": PASSWORD}).get_json()
    headers = {"Authorization": f"Bearer {token['token']}"}
    body = client.get("/api/v1/tasks?status=COMPLETED", headers=headers).get_json()
    assert [item["id"] for item in body["items"]] == [done] and body["total"] == 1
    assert body["items"][0]["thumbnail_url"].endswith(f"/api/v1/tasks/{done}/thumbnail")
    assert client.get("/api/v1/tasks?operation=upscale", headers=headers).get_json()["items"] == []
    for wrong in ("DONE", "completed", ""):  # the document's enum, as written there; the pages are more forgiving
        refused = client.get(f"/api/v1/tasks?status={wrong}", headers=headers)
        assert refused.status_code == 400 and "status must be one of" in refused.get_json()["error"]["message"]
    assert client.get("/api/v1/tasks?operation=nope", headers=headers).status_code == 400


def test_bulk_delete_deletes_the_ticked_tasks_of_the_account_only(app, client, user, completed, make_user):
    mine = [completed(user.id, f"{n}.jpg") for n in range(3)]
    theirs = completed(make_user("eve@example.com").id, "theirs.jpg")
    with app.app_context():
        keys = [key for task_id in mine[:2] for key in db.session.get(Task, task_id).stored_keys()]
    response = _post(client, "/tasks/selected/delete", [mine[0], mine[1], theirs])
    assert response.status_code == 303
    assert "Deleted 2 photos and their results." in client.get(response.headers["Location"]).get_data(as_text=True)
    with app.app_context():
        left = set(db.session.scalars(select(Task.id)))
        assert left == {mine[2], theirs}
        assert not any(get_storage().exists(key) for key in keys)


def test_bulk_actions_need_the_csrf_token_and_a_ticked_photo(client, user, completed):
    task_id = completed(user.id)
    for action in ("delete", "rerun", "zip"):
        assert client.post(f"/tasks/selected/{action}", data={"selected": [task_id]}).status_code == 400
        nothing = _post(client, f"/tasks/selected/{action}", [])
        assert nothing.status_code == 303
        assert "Tick at least one photo first." in client.get("/tasks").get_data(as_text=True)


def test_bulk_rerun_asks_for_the_options_once_then_makes_one_task_per_photo(app, client, user, completed):
    ids = [completed(user.id, f"{n}.jpg") for n in range(2)]
    form = _post(client, "/tasks/selected/rerun", ids)
    page = form.get_data(as_text=True)
    assert form.status_code == 200 and "Process 2 photos again" in page
    assert all(f'name="selected" value="{task_id}"' in page for task_id in ids)
    done = _post(client, "/tasks/selected/rerun", ids, confirmed="1", operation="remove_background",
                 model="u2netp", output="mask")
    assert done.status_code == 303
    with app.app_context():
        new = db.session.scalars(select(Task).where(Task.id.not_in(ids))).all()
        assert len(new) == 2 and all(task.options["output"] == "mask" for task in new)
        assert sorted(task.original_filename for task in new) == ["0.jpg", "1.jpg"]
    assert "Processing 2 photos again" in client.get("/tasks").get_data(as_text=True)
    refused = _post(client, "/tasks/selected/rerun", ids, confirmed="1", operation="remove_background",
                    model="u2netp", output="nonsense")
    assert refused.status_code == 400 and "output" in refused.get_data(as_text=True)
    with_picture = client.post("/tasks/selected/rerun", content_type="multipart/form-data", data={
        "csrf_token": csrf_token(client, "/tasks"), "selected": ids, "confirmed": "1",
        "operation": "remove_background", "bg_image": (io.BytesIO(_png()), "bg.png")})
    assert with_picture.status_code == 400 and "one by one" in with_picture.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(Task).count() == 4


def test_bulk_zip_is_streamed_and_holds_each_result_under_a_name_of_its_own(app, client, user, completed,
                                                                            make_task, make_user):
    one, two = _png((20, 10)), _png((30, 10))
    first, second = completed(user.id, "bike.jpg", one), completed(user.id, "bike.jpg", two)
    unfinished = make_task(user.id, original_filename="later.jpg")
    theirs = completed(make_user("eve@example.com").id, "theirs.jpg")
    response = _post(client, "/tasks/selected/zip", [first, second, unfinished, theirs])
    assert response.status_code == 200 and response.is_streamed
    assert response.mimetype == "application/zip"
    assert re.fullmatch(r'attachment; filename="photo-studio-\d{8}-\d{6}\.zip"',
                        response.headers["Content-Disposition"])
    chunks = list(response.response)
    assert len(chunks) > 1
    archive = zipfile.ZipFile(io.BytesIO(b"".join(chunks)))
    assert archive.namelist() == ["bike.png", "bike (2).png"]
    assert archive.read("bike.png") == one and archive.read("bike (2).png") == two
    assert archive.testzip() is None


def test_bulk_zip_of_unfinished_photos_says_there_is_nothing_yet(client, user, make_task):
    response = _post(client, "/tasks/selected/zip", [make_task(user.id)])
    assert response.status_code == 303
    assert "has a result to download yet" in client.get("/tasks").get_data(as_text=True)


def test_a_result_becomes_the_photo_of_a_new_task_in_one_click(app, client, user, completed, make_user):
    result = _png((48, 32))
    source = completed(user.id, "horse.jpg", result, operation="remove_background")
    detail = client.get(f"/tasks/{source}").get_data(as_text=True)
    assert f'href="/?source={source}"' in detail and "Use this result as a new photo" in detail
    form = client.get(f"/?source={source}").get_data(as_text=True)
    assert f'name="source_task" value="{source}"' in form and 'id="upload-form"' not in form
    response = client.post("/tasks", data={"csrf_token": csrf_token(client, "/"), "source_task": source,
                                           "operation": "upscale", "scale": "2"})
    assert response.status_code == 302
    new_id = response.headers["Location"].rsplit("/", 1)[1]
    with app.app_context():
        task = db.session.get(Task, new_id)
        assert (task.operation, task.original_filename, task.input_width, task.input_height) == \
            ("upscale", "horse-remove_background.png", 48, 32)
        assert get_storage().get(task.input_key) == result and task.input_key != f"results/{user.id}/{source}.png"
        assert not task.inputs_clean and task.status == "PENDING"
    # Another account's task cannot be the source; a task without a picture result explains why.
    theirs = completed(make_user("eve@example.com").id)
    assert client.get(f"/?source={theirs}").status_code == 404
    assert client.post("/tasks", data={"csrf_token": csrf_token(client, "/"),
                                       "source_task": theirs}).status_code == 404


def test_a_result_larger_than_an_upload_may_be_is_refused_before_it_is_read(app, client, user, completed):
    source = completed(user.id, "big.jpg", _png((300, 200)))
    app.config["MAX_CONTENT_LENGTH"] = 200
    refused = client.post("/tasks", data={"csrf_token": csrf_token(client, "/"), "source_task": source})
    assert refused.status_code == 413 and "result is larger than the limit" in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(Task).count() == 1


def test_a_data_result_cannot_be_used_as_a_photo(app, client, user, make_task):
    task_id = make_task(user.id, TaskStatus.COMPLETED, operation="faces",
                        outputs={"result": {"key": "results/x.json", "media_type": "application/json", "size": 2}})
    assert "Use this result" not in client.get(f"/tasks/{task_id}").get_data(as_text=True)
    refused = client.post("/tasks", data={"csrf_token": csrf_token(client, "/"), "source_task": task_id})
    assert refused.status_code == 409 and "no picture result" in refused.get_data(as_text=True)


def test_a_thumbnail_is_for_its_owner_only(client, user, completed, make_user, auth):
    task_id = completed(user.id)
    assert client.get(f"/tasks/{task_id}/thumbnail").status_code == 200
    auth.logout()
    make_user("eve@example.com")
    auth.login("eve@example.com")
    assert client.get(f"/tasks/{task_id}/thumbnail").status_code == 404
