"""Faces are personal data: what the studio finds in a photo of people is its owner's alone, goes with the task, and
never reaches the logs. Run through the API and a real worker on a fixture photo of people."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from ml.registry import available_model_names
from tests.support.services import require
from tests.support.studio import load_task, run_worker, upload

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_face_results_are_the_owners_alone_deleted_with_the_task_and_never_logged(
        app, client, headers, make_user, make_token, photo_bytes, caplog):
    require("mtcnn" in available_model_names(app.config["STUDIO_MODEL_DIR"]), "mtcnn is not installed")
    caplog.set_level(logging.DEBUG)
    created = upload(client, headers, photo_bytes("Two_dancers.jpg"), filename="dancers.jpg", operation="faces")
    assert created.status_code == 202, created.get_json()
    task_id = created.get_json()["id"]
    run_worker(app)

    task = client.get(f"/api/v1/tasks/{task_id}", headers=headers).get_json()
    assert task["status"] == "COMPLETED", task
    faces = client.get(task["result_url"], headers=headers).get_json()
    assert faces["count"] >= 1
    preview = client.get(task["preview_url"], headers=headers)
    assert preview.status_code == 200

    # Another account sees nothing of it: the same 404 as for a task that does not exist.
    stranger = make_token(make_user("eve@example.com"))
    for url in (f"/api/v1/tasks/{task_id}", task["result_url"], task["preview_url"]):
        assert client.get(url, headers=stranger).status_code == 404, url

    # Nothing the detector found is in the logs: no box, no landmark, no confidence, not even rounded.
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert logged, "the job logged nothing at all: the check below would prove nothing"
    for face in faces["faces"]:
        landmarks = [value for point in face["landmarks"].values() for value in point]
        numbers = [*face["box"], face["confidence"], *landmarks]
        for number in numbers:
            for shown in {repr(number), f"{number:.1f}", f"{number:.2f}"}:
                assert not re.search(rf"(?<![\d.]){re.escape(shown)}(?![\d])", logged), (shown, logged)
    assert "landmarks" not in logged and "dancers.jpg" not in logged

    # Deleting the task deletes the photo, the JSON, the preview and the two thumbnails.
    stored = load_task(app, task_id)
    keys = stored.stored_keys()
    assert len(keys) == 5
    root = Path(app.config["STUDIO_STORAGE_DIR"])
    assert all((root / key).is_file() for key in keys)
    assert client.delete(f"/api/v1/tasks/{task_id}", headers=headers).status_code == 204
    assert not [key for key in keys if (root / key).exists()]
    assert load_task(app, task_id) is None
