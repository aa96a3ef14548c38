"""The upload form takes a photo's web address instead of a file: one task, fetched later by the worker."""

from __future__ import annotations

import html
import io
import re

import pytest

from tests.support.web import csrf_token

URL = "https://photos.example.com/albums/summer/beach.jpg"


@pytest.fixture
def signed_in(client, auth, make_user):
    """Sign a user in and return the client."""
    make_user()
    auth.login()
    return client


def _post(client, **fields):
    data = {"csrf_token": csrf_token(client, "/"), **fields}
    return client.post("/tasks", data=data, content_type="multipart/form-data")


def test_the_upload_page_offers_a_url_field(signed_in):
    page = signed_in.get("/").get_data(as_text=True)
    assert re.search(r'<input type="url" id="image-url" name="image_url"', page)


def test_a_url_makes_one_task_whose_page_says_where_the_photo_comes_from(signed_in):
    response = _post(signed_in, image_url=URL)
    assert response.status_code == 302, response.get_data(as_text=True)[:500]
    page = signed_in.get(response.headers["Location"]).get_data(as_text=True)
    assert "beach.jpg" in page and f"Fetched from <span class=\"url\">{URL}</span>" in page
    assert "fetched from its URL when processing starts" in page
    assert signed_in.get(response.headers["Location"] + "/input").status_code == 404


@pytest.mark.parametrize("fields, says", [
    ({"image_url": "ftp://photos.example.com/a.jpg"}, "The photo's web address must be an http:// or https:// URL"),
    ({"image_url": URL, "photo": (io.BytesIO(b"x"), "a.jpg")},
     "The photo's web address: send the photo as a file or as a URL"),
    ({}, "Choose at least one photo to upload, or give its web address."),
])
def test_a_bad_or_doubled_url_is_refused_with_a_message(signed_in, fields, says):
    response = _post(signed_in, **fields)
    assert response.status_code == 400
    assert says in html.unescape(response.get_data(as_text=True))
