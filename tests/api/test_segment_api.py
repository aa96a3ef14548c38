"""segment and remove_background's keep through the API and a real worker; keep's bad values refused with a 400."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ml.edits.coco_rle import decode_rle
from tests.support.studio import run_worker, upload

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("fields, words", [
    ({"operation": "remove_background", "keep": "unicorn"}, "keep: 'unicorn' is not a kind of object"),
    ({"operation": "remove_background", "keep": "largest, 2"}, "keep: largest keeps one object"),
    ({"operation": "segment", "max_objects": "21"}, "max_objects: must be from 1 to 20"),
    ({"operation": "segment", "classes": "unicorn"}, "classes: 'unicorn' is not a kind of object"),
])
def test_bad_object_choices_are_refused_naming_the_field(client, headers, photo_bytes, fields, words):
    response = upload(client, headers, photo_bytes("rifle2.jpeg"), **fields)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_option" and words in error["message"], error


def completed(app, client, headers, created) -> dict:
    assert created.status_code == 202, created.get_json()
    run_worker(app)
    task = client.get(f"/api/v1/tasks/{created.get_json()['id']}", headers=headers).get_json()
    assert task["status"] == "COMPLETED", task
    return task


@pytest.mark.slow
def test_segment_and_keep_through_a_real_worker(app, client, headers, photo_bytes, model_ready):
    girl = photo_bytes("girl.png")
    task = completed(app, client, headers, upload(client, headers, girl, "girl.png", operation="segment"))
    assert set(task["outputs"]) == {"result", "preview"}
    result = client.get(task["result_url"], headers=headers).get_json()
    assert [item["label"] for item in result["objects"]] == ["horse", "person"]
    masks = {item["label"]: decode_rle(item["mask"]).astype(bool) for item in result["objects"]}
    preview = client.get(task["preview_url"], headers=headers)
    assert Image.open(io.BytesIO(preview.data)).size == (400, 267)

    task = completed(app, client, headers, upload(client, headers, girl, "girl.png", keep="person"))
    cutout = np.asarray(Image.open(io.BytesIO(client.get(task["result_url"], headers=headers).data)).getchannel("A"))
    assert cutout[masks["person"]].mean() > 200 and cutout[masks["horse"]].mean() < 5


@pytest.mark.slow
def test_keep_naming_an_object_not_in_the_photo_fails_the_task_with_the_reason(
        app, client, headers, photo_bytes, model_ready):
    created = upload(client, headers, photo_bytes("girl.png"), "girl.png", keep="dog")
    assert created.status_code == 202
    run_worker(app)
    task = client.get(f"/api/v1/tasks/{created.get_json()['id']}", headers=headers).get_json()
    assert task["status"] == "FAILED" and "keep: no dog was found in this photo" in task["error"], task
