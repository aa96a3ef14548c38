"""smart_crop's fill options through the API: a bad value is a 400 naming the field, before anything is stored."""

from __future__ import annotations

import pytest

from tests.support.studio import upload

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("fields, words", [
    ({"fill": "pad"}, "fill: "),
    ({"fill": "color", "fill_color": "bluish"}, "fill_color: 'bluish' is not a colour"),
    ({"fill": "color", "fill_color": "#ffffff80"}, "fill_color: JPEG has no transparency"),
])
def test_a_bad_fill_is_refused_naming_the_field(client, headers, photo_bytes, fields, words):
    response = upload(client, headers, photo_bytes("horse.jpg"), operation="smart_crop", **fields)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "invalid_option" and words in error["message"], error


def test_a_fill_is_taken_and_stored_with_its_colour(client, headers, photo_bytes):
    response = upload(client, headers, photo_bytes("horse.jpg"), operation="smart_crop", aspect="4:5",
                      fill="colour", fill_color="#FFF")
    assert response.status_code == 202, response.get_json()
    options = response.get_json()["options"]
    assert (options["fill"], options["fill_color"]) == ("color", "#ffffffff")
