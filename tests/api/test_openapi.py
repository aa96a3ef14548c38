"""The OpenAPI document is generated and stays true: valid, every API route documented (and only those), every
operation's options and upload generated from its declaration, and real answers conform."""

from __future__ import annotations

import io
import json
import re

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from jobs import process_image as job_module
from ml.operations import DEFAULT_OPERATION, OPERATIONS
from ml.runner import EncodedOutput
from studio.api.document import options_schema_name
from tests.support.studio import PASSWORD, run_worker, upload

pytestmark = pytest.mark.integration

PREFIX = "/api/v1"
IGNORED_METHODS = {"HEAD", "OPTIONS"}


@pytest.fixture
def document(client) -> dict:
    response = client.get(f"{PREFIX}/openapi.json")
    assert response.status_code == 200
    # Not get_json(): the app's JSON provider bounds request bodies (64 KiB), which the document outgrows.
    return json.loads(response.data)


def test_document_is_valid_openapi(document):
    validate(document)
    assert document["openapi"] == "3.1.0"


def test_every_api_route_is_documented_and_every_documented_operation_exists(app, document):
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PREFIX + "/"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule)
            routed |= {(path, method.lower()) for method in rule.methods - IGNORED_METHODS}
    documented = {(path, method) for path, item in document["paths"].items() for method in item}
    assert routed == documented
    assert all(operation.get("summary") and operation.get("responses")
               for item in document["paths"].values() for operation in item.values())


def test_each_operations_options_and_upload_come_from_its_declaration(document, client, headers):
    schemas = document["components"]["schemas"]
    uploads = document["paths"][f"{PREFIX}/tasks"]["post"]["requestBody"]["content"]["multipart/form-data"]
    bodies = {body["properties"]["operation"]["const"]: body for body in uploads["schema"]["oneOf"]}
    listing = json.loads(client.get(f"{PREFIX}/operations", headers=headers).get_data())
    listed = {item["name"]: item for item in listing["items"]}
    assert set(bodies) == set(listed) == set(OPERATIONS)
    for name, operation in OPERATIONS.items():
        schema = operation.option_schema()
        assert schemas[options_schema_name(operation)] == schema == listed[name]["options"]
        typed = {option for option, prop in schema["properties"].items() if not prop.get("readOnly")}
        files = {attachment.name for attachment in operation.attachments}
        urls = {f"{attachment}_url" for attachment in files}
        assert set(bodies[name]["properties"]) == {"image", "image_url", "operation", "webhook_url"} | typed | files \
            | urls
        assert ("operation" in bodies[name]["required"]) is (name != DEFAULT_OPERATION)


def _resolve(document: dict, item: dict) -> dict:
    if "$ref" in item:
        name = item["$ref"].rsplit("/", 1)[-1]
        return document["components"]["responses"][name]
    return item


def _check(document: dict, response, path: str, method: str) -> None:
    documented = document["paths"][PREFIX + path][method]["responses"]
    assert str(response.status_code) in documented, (path, method, response.status_code)
    content = _resolve(document, documented[str(response.status_code)]).get("content")
    if content is None:
        assert not response.data
        return
    assert response.mimetype in content, (path, method, response.mimetype)
    if response.mimetype == "application/json":
        schema = {**content["application/json"]["schema"], "components": document["components"]}
        OAS31Validator(schema).validate(json.loads(response.data))


def test_real_responses_match_the_documented_schemas(app, client, user, make_user, photo_bytes, monkeypatch,
                                                     document):
    monkeypatch.setattr(job_module, "process",
                        lambda *args, **kwargs: [EncodedOutput("result", b"\x89PNG fake", "image/png", ".png")])
    token = client.post(f"{PREFIX}/tokens", json={"email": "ada@example.com", "password": PASSWORD})
    _check(document, token, "/tokens", "post")
    _check(document, client.post(f"{PREFIX}/tokens", json={"email": "ada@example.com", "password": "nope"}),
           "/tokens", "post")
    _check(document, client.post(f"{PREFIX}/tokens", data="{"), "/tokens", "post")
    headers = {"Authorization": f"Bearer {token.get_json()['token']}"}

    created = upload(client, headers, photo_bytes("boat.jpg"), bg_color="#fff", crop="true", margin="4")
    _check(document, created, "/tasks", "post")
    task_id = created.get_json()["id"]
    _check(document, upload(client, headers, b"not an image"), "/tasks", "post")
    _check(document, upload(client, headers, b""), "/tasks", "post")
    _check(document, upload(client, headers, photo_bytes("boat.jpg"), blur="x"), "/tasks", "post")
    _check(document, upload(client, headers, photo_bytes("boat.jpg"), operation="nope"), "/tasks", "post")
    _check(document, upload(client, {}, photo_bytes("boat.jpg")), "/tasks", "post")
    _check(document, client.get(f"{PREFIX}/tasks/{task_id}/result", headers=headers), "/tasks/{task_id}/result",
           "get")
    run_worker(app)

    _check(document, client.get(f"{PREFIX}/operations", headers=headers), "/operations", "get")
    _check(document, client.get(f"{PREFIX}/operations/mask_stats", headers=headers), "/operations/{name}", "get")
    _check(document, client.get(f"{PREFIX}/operations/nope", headers=headers), "/operations/{name}", "get")
    _check(document, client.get(f"{PREFIX}/tasks", headers=headers), "/tasks", "get")
    _check(document, client.get(f"{PREFIX}/tasks"), "/tasks", "get")
    _check(document, client.get(f"{PREFIX}/tasks/{task_id}", headers=headers), "/tasks/{task_id}", "get")
    _check(document, client.get(f"{PREFIX}/tasks/nope", headers=headers), "/tasks/{task_id}", "get")
    _check(document, client.get(f"{PREFIX}/tasks/{task_id}/result", headers=headers), "/tasks/{task_id}/result",
           "get")
    _check(document, client.get(f"{PREFIX}/tasks/{task_id}/outputs/preview", headers=headers),
           "/tasks/{task_id}/outputs/{name}", "get")
    _check(document, client.post(f"{PREFIX}/tasks/{task_id}/cancel", headers=headers), "/tasks/{task_id}/cancel",
           "post")
    _check(document, client.delete(f"{PREFIX}/tasks/{task_id}", headers=headers), "/tasks/{task_id}", "delete")
    _check(document, client.delete(f"{PREFIX}/tasks/{task_id}", headers=headers), "/tasks/{task_id}", "delete")
    waiting = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    _check(document, client.post(f"{PREFIX}/tasks/{waiting}/cancel", headers=headers), "/tasks/{task_id}/cancel",
           "post")
    _check(document, client.get(f"{PREFIX}/openapi.json"), "/openapi.json", "get")


def test_failed_task_matches_the_task_schema(app, client, headers, photo_bytes, monkeypatch, document):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(job_module, "process", broken)
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    run_worker(app)
    response = client.get(f"{PREFIX}/tasks/{task_id}", headers=headers)
    assert response.get_json()["status"] == "FAILED"
    _check(document, response, "/tasks/{task_id}", "get")


def test_batch_answers_match_the_documented_schemas_and_its_body_names_each_operations_options(
        app, client, headers, photo_bytes, monkeypatch, document):
    monkeypatch.setattr(job_module, "process",
                        lambda *args, **kwargs: [EncodedOutput("result", b"\x89PNG fake", "image/png", ".png")])
    batches = document["paths"][f"{PREFIX}/batches"]["post"]["requestBody"]["content"]["multipart/form-data"]
    bodies = {body["properties"]["operation"]["const"]: body for body in batches["schema"]["oneOf"]}
    assert set(bodies) == set(OPERATIONS)
    for name, operation in OPERATIONS.items():
        typed = {option for option, prop in operation.option_schema()["properties"].items() if not prop.get("readOnly")}
        assert {"images", "archive", "operation", "webhook_url"} | typed <= set(bodies[name]["properties"])
        assert "image" not in bodies[name]["properties"]

    def post(**data):
        return client.post(f"{PREFIX}/batches", headers=headers, content_type="multipart/form-data", data=data)

    created = post(images=[(io.BytesIO(photo_bytes("boat.jpg")), "boat.jpg"), (io.BytesIO(b"x"), "x.txt")])
    _check(document, created, "/batches", "post")
    _check(document, post(images=[(io.BytesIO(b"x"), "x.txt")]), "/batches", "post")
    _check(document, post(archive=(io.BytesIO(b"PK\x05\x06"), "a.zip")), "/batches", "post")
    batch_id = created.get_json()["id"]
    _check(document, client.get(f"{PREFIX}/batches/{batch_id}/archive", headers=headers),
           "/batches/{batch_id}/archive", "get")
    run_worker(app)
    for path, method in (("", "get"), ("/archive", "get"), ("/retry", "post"), ("", "delete")):
        answer = getattr(client, method)(f"{PREFIX}/batches/{batch_id}{path}", headers=headers)
        _check(document, answer, "/batches/{batch_id}" + path, method)
    _check(document, client.get(f"{PREFIX}/batches/{batch_id}", headers=headers), "/batches/{batch_id}", "get")
