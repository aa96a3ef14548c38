"""Operations through the API, the pages and a real worker: listed with their models and schemas, chosen per
upload (remove_background when none is named), validated by their own schema, outputs served generically."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.support.studio import load_task, run_worker, upload

pytestmark = pytest.mark.integration


def test_the_operations_are_listed_with_their_models_options_and_outputs(client, headers):
    response = client.get("/api/v1/operations", headers=headers)
    assert response.status_code == 200
    operations = {item["name"]: item for item in response.get_json()["items"]}
    assert {"remove_background", "mask_stats"} <= set(operations)
    remove = operations["remove_background"]
    models = {model["name"]: model for model in remove["models"]}
    assert models["u2netp"]["available"] is True and models["u2netp"]["default"] is True
    assert models["u2net_human_seg"]["available"] is False and "missing" in models["u2net_human_seg"]["reason"]
    assert remove["options"]["properties"]["blur"] == {
        "default": 0, "description": "keep the photo's own background, blurred this much (0: no blur)",
        "maximum": 100, "minimum": 0, "title": "Background blur", "type": "integer", "x-requires": {"output": "cutout"}}
    assert remove["attachments"] == [{"name": "bg_image", "title": "Background image", "required": False,
                                      "description": remove["attachments"][0]["description"]}]
    assert [output["name"] for output in operations["mask_stats"]["outputs"]] == ["result", "preview"]
    assert client.get("/api/v1/operations/mask_stats", headers=headers).get_json()["name"] == "mask_stats"
    assert client.get("/api/v1/operations/sharpen", headers=headers).status_code == 404


@pytest.mark.parametrize("fields, code, words", [
    ({"operation": "sharpen"}, "invalid_operation", "operation: 'sharpen' is not an operation"),
    ({"operation": "mask_stats", "threshold": "999"}, "invalid_option", "threshold: must be from 1 to 254"),
    ({"operation": "mask_stats", "blur": "3"}, "invalid_option", "blur: is not a known option"),
    ({"operation": "mask_stats", "bg_image": (io.BytesIO(b"x"), "b.png")}, "invalid_option",
     "bg_image: mask_stats takes no such file"),
    ({"operation": ["mask_stats", "remove_background"]}, "invalid_option", "operation: give it once"),
])
def test_each_operation_validates_its_own_options(client, headers, photo_bytes, fields, code, words):
    response = upload(client, headers, photo_bytes("rifle2.jpeg"), **fields)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == code and words in error["message"], error


def test_a_data_operation_gives_json_and_a_preview_through_a_real_worker(
        app, client, headers, photo_bytes, model_ready):
    created = upload(client, headers, photo_bytes("horse.jpg"), operation="mask_stats", threshold="100")
    assert created.status_code == 202
    body = created.get_json()
    assert (body["operation"], body["options"]["threshold"], body["model"]) == ("mask_stats", 100, "u2netp")
    run_worker(app)
    task = client.get(f"/api/v1/tasks/{body['id']}", headers=headers).get_json()
    assert task["status"] == "COMPLETED", task
    assert set(task["outputs"]) == {"result", "preview"}
    assert task["outputs"]["result"]["media_type"] == "application/json"
    result = client.get(task["result_url"], headers=headers)
    assert result.status_code == 200 and result.mimetype == "application/json"
    stats = result.get_json()
    assert stats["width"] == 770 and stats["subject"]["found"] and len(stats["subject"]["box"]) == 4
    preview = client.get(task["preview_url"], headers=headers)
    assert preview.status_code == 200 and Image.open(io.BytesIO(preview.data)).format == "JPEG"
    assert load_task(app, body["id"]).outputs["preview"]["size"] == len(preview.data)
    assert load_task(app, body["id"]).output_pixels == 0  # the main output is data, not an image


def test_without_an_operation_an_upload_removes_the_background_as_before(app, client, headers, photo_bytes):
    body = upload(client, headers, photo_bytes("rifle2.jpeg"), format="webp").get_json()
    assert body["operation"] == "remove_background" and body["options"]["format"] == "webp"
    assert body["outputs"] == {} and body["result_url"] is None and body["preview_url"] is None
