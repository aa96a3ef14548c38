"""A plan's monthly megapixels count the work a task will do, not only the photo sent: an upscale counts the 4x
image its network makes."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from tests.support.studio import upload

pytestmark = pytest.mark.integration


def flat_jpeg(width: int, height: int) -> bytes:
    """Return a small JPEG of one colour."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def test_a_plans_megapixels_count_the_work_of_an_upscale(make_app, make_user, make_token, fake_run):
    app = make_app(STUDIO_PLANS={"small": {"megapixels_per_month": 20}})
    bearer = make_token(make_user("member@example.com"))
    client = app.test_client()
    photo = flat_jpeg(1200, 1000)  # 1.2 MP: its upscale's network makes 19.2 MP
    assert upload(client, bearer, photo, operation="upscale").status_code == 202
    refused = upload(client, bearer, photo, operation="upscale")
    assert refused.status_code == 429, refused.get_json()
    assert refused.get_json()["error"]["plan_limit"]["limit"] == "megapixels_per_month"
    # The same photo cut out is its own 1.2 MP.
    assert upload(client, bearer, photo, operation="remove_background").status_code == 202
