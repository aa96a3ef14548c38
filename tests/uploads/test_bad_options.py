"""Bad options and malformed API requests: 400 with a message naming the problem, and nothing stored or queued."""

from __future__ import annotations

import io

import pytest

from tests.support import samples

pytestmark = pytest.mark.integration

PHOTO = samples.jpeg((48, 32))


@pytest.mark.parametrize("options, field", [
    ({"format": "gif"}, "format"),
    ({"output": "sparkles"}, "output"),
    ({"model": "../../etc/passwd"}, "model"),
    ({"blur": "lots"}, "blur"),
    ({"blur": "1e3"}, "blur"),
    ({"margin": "-5"}, "margin"),
    ({"margin": "99999999999999999999999"}, "margin"),
    ({"crop": "maybe"}, "crop"),
    ({"bg_color": "reddish"}, "bg_color"),
    ({"format": "jpeg"}, "format"),  # a transparent cut-out cannot be a JPEG
])
def test_unknown_option_values_are_400_naming_the_field(uploader, nothing_kept, options, field):
    answer = uploader.send(PHOTO, **options)
    assert answer.status == 400
    if uploader.route == "api":
        assert answer.code == "invalid_option"
    assert uploader.names(field) in answer.text
    if uploader.route == "html":
        # People read the option's label, never its field name.
        assert f"{field}:" not in answer.text
    nothing_kept()


@pytest.mark.parametrize("field", ["format", "bg_color", "model", "blur"])
def test_huge_option_strings_are_400_without_echoing_them(uploader, nothing_kept, field):
    answer = uploader.send(PHOTO, **{field: "9" * 100_000})
    assert answer.status == 400
    assert uploader.says(field, "is too long (100,000 characters") in answer.text
    assert len(answer.text) < 400
    nothing_kept()


def test_option_larger_than_the_form_memory_limit_is_413(app, client, headers, nothing_kept):
    response = client.post("/api/v1/tasks", headers=headers, content_type="multipart/form-data",
                           data={"image": (io.BytesIO(PHOTO), "a.jpg"), "format": "x" * 2_000_000})
    assert response.status_code == 413
    assert response.get_json()["error"]["message"]
    nothing_kept()


def test_unknown_option_name_is_400_on_the_api(client, headers, nothing_kept):
    response = client.post("/api/v1/tasks", headers=headers, content_type="multipart/form-data",
                           data={"image": (io.BytesIO(PHOTO), "a.jpg"), "colour": "red"})
    assert response.status_code == 400
    assert response.get_json()["error"]["message"] == "colour: is not a known option"
    nothing_kept()


@pytest.mark.parametrize("request_kwargs, code, words", [
    ({"json": {"image": "aGVsbG8=", "format": "png"}}, "missing_file", "multipart/form-data"),
    ({"json": [1, 2, 3]}, "missing_file", "multipart/form-data"),
    ({"json": 42}, "missing_file", "multipart/form-data"),
    ({"data": {"format": "png"}}, "missing_file", "multipart/form-data"),  # urlencoded form
    ({"data": PHOTO, "content_type": "image/jpeg"}, "missing_file", "multipart/form-data"),
    ({"data": {"image": "not a file"}, "content_type": "multipart/form-data"}, "missing_file", "file upload"),
    ({"data": {"format": "png"}, "content_type": "multipart/form-data"}, "missing_file", "named image"),
    ({"data": {"image": [(io.BytesIO(PHOTO), "a.jpg"), (io.BytesIO(PHOTO), "b.jpg")]},
      "content_type": "multipart/form-data"}, "too_many_files", "one photo"),
    ({"data": {"image": (io.BytesIO(PHOTO), "a.jpg"), "format": ["png", "webp"]},
      "content_type": "multipart/form-data"}, "invalid_option", "format: give it once"),
])
def test_wrong_shapes_and_types_on_the_api_are_400_with_a_message(client, headers, nothing_kept, request_kwargs,
                                                                  code, words):
    response = client.post("/api/v1/tasks", headers=headers, **request_kwargs)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == code and words in error["message"]
    nothing_kept()


@pytest.mark.parametrize("body", [
    {"email": "ada\x00@example.com", "password": "x"},
    {"email": "ada@example.com", "password": "pass\x00word"},
    {"email": "ada@example.com", "password": "x", "name": "\x00"},
])
def test_nul_characters_in_a_token_request_are_400_not_a_database_error(client, user, body):
    # Found by fuzzing: PostgreSQL refuses any text holding NUL, so the query itself used to fail (500).
    response = client.post("/api/v1/tokens", json=body)
    assert response.status_code == 400
    assert "NUL" in response.get_json()["error"]["message"]


def test_a_page_number_past_the_database_integer_range_is_refused(client, headers):
    # Found by schemathesis: OFFSET overflowed PostgreSQL's bigint (500).
    response = client.get("/api/v1/tasks?page=3074457345618258503", headers=headers)
    assert response.status_code == 400 and "page must be a whole number" in response.get_json()["error"]["message"]
    assert client.get("/api/v1/tasks?page=abc", headers=headers).status_code == 400
    assert client.get("/api/v1/tasks?per_page=101", headers=headers).status_code == 400
    assert client.get("/api/v1/tasks?page=2&per_page=5", headers=headers).get_json()["page"] == 2
