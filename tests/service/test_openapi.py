"""The OpenAPI document stays true: valid, every API route documented (and only those), real answers conform."""

from __future__ import annotations

import re

import pytest
from openapi_schema_validator import OAS31Validator
from openapi_spec_validator import validate

from jobs import process_image as job_module
from ml.pipeline import ProcessedImage
from studio.api.openapi import DOCUMENT
from tests.service.conftest import PASSWORD, run_worker, upload

pytestmark = pytest.mark.integration

PREFIX = "/api/v1"
IGNORED_METHODS = {"HEAD", "OPTIONS"}


def test_document_is_valid_openapi():
    validate(DOCUMENT)


def test_served_document_is_the_module_document(client):
    response = client.get(f"{PREFIX}/openapi.json")
    assert response.status_code == 200 and response.get_json() == DOCUMENT


def test_every_api_route_is_documented_and_every_documented_operation_exists(app):
    routed = set()
    for rule in app.url_map.iter_rules():
        if rule.rule.startswith(PREFIX + "/"):
            path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule[len(PREFIX):])
            routed |= {(path, method.lower()) for method in rule.methods - IGNORED_METHODS}
    documented = {(path, method) for path, item in DOCUMENT["paths"].items() for method in item}
    assert routed == documented


def _check(response, path: str, method: str) -> None:
    operation = DOCUMENT["paths"][path][method]
    documented = operation["responses"]
    assert str(response.status_code) in documented, (path, method, response.status_code)
    content = documented[str(response.status_code)].get("content")
    if content is None:
        assert not response.data
        return
    assert response.mimetype in content, (path, method, response.mimetype)
    if response.mimetype == "application/json":
        schema = {**content["application/json"]["schema"], "components": DOCUMENT["components"]}
        OAS31Validator(schema).validate(response.get_json())


def test_real_responses_match_the_documented_schemas(app, client, user, make_user, photo_bytes, monkeypatch):
    monkeypatch.setattr(job_module, "process_image",
                        lambda *args, **kwargs: ProcessedImage(b"\x89PNG fake", "image/png", ".png", 1, 1))
    token = client.post(f"{PREFIX}/tokens", json={"email": "ada@example.com", "password": PASSWORD})
    _check(token, "/tokens", "post")
    _check(client.post(f"{PREFIX}/tokens", json={"email": "ada@example.com", "password": "nope"}), "/tokens", "post")
    _check(client.post(f"{PREFIX}/tokens", data="{"), "/tokens", "post")
    headers = {"Authorization": f"Bearer {token.get_json()['token']}"}

    created = upload(client, headers, photo_bytes("boat.jpg"), bg_color="#fff", crop="true", margin="4")
    _check(created, "/tasks", "post")
    task_id = created.get_json()["id"]
    _check(upload(client, headers, b"not an image"), "/tasks", "post")
    _check(upload(client, headers, b""), "/tasks", "post")
    _check(upload(client, headers, photo_bytes("boat.jpg"), blur="x"), "/tasks", "post")
    _check(upload(client, {}, photo_bytes("boat.jpg")), "/tasks", "post")
    _check(client.get(f"{PREFIX}/tasks/{task_id}/result", headers=headers), "/tasks/{task_id}/result", "get")
    run_worker(app)

    _check(client.get(f"{PREFIX}/tasks", headers=headers), "/tasks", "get")
    _check(client.get(f"{PREFIX}/tasks"), "/tasks", "get")
    _check(client.get(f"{PREFIX}/tasks/{task_id}", headers=headers), "/tasks/{task_id}", "get")
    _check(client.get(f"{PREFIX}/tasks/nope", headers=headers), "/tasks/{task_id}", "get")
    _check(client.get(f"{PREFIX}/tasks/{task_id}/result", headers=headers), "/tasks/{task_id}/result", "get")
    _check(client.delete(f"{PREFIX}/tasks/{task_id}", headers=headers), "/tasks/{task_id}", "delete")
    _check(client.delete(f"{PREFIX}/tasks/{task_id}", headers=headers), "/tasks/{task_id}", "delete")
    _check(client.get(f"{PREFIX}/openapi.json"), "/openapi.json", "get")


def test_failed_task_matches_the_task_schema(app, client, headers, photo_bytes, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(job_module, "process_image", broken)
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    run_worker(app)
    response = client.get(f"{PREFIX}/tasks/{task_id}", headers=headers)
    assert response.get_json()["status"] == "FAILED"
    _check(response, "/tasks/{task_id}", "get")
