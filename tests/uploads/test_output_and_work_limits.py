"""Options that would make a result beyond the server's limits, and photos beyond an operation's own input limit,
are a 400 naming why before anything is stored or queued; the checks are the declarations' (ml/operations/)."""

from __future__ import annotations

import io

import pytest
from PIL import Image

pytestmark = pytest.mark.integration


def flat_jpeg(width: int, height: int) -> bytes:
    """Return a small JPEG of one colour (a few kilobytes whatever its size)."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def test_a_crop_margin_past_the_output_limit_is_a_400_and_nothing_is_kept(uploader, nothing_kept):
    # A 4 MP strip: cropped with a 2000-pixel margin it could be 20000x4250, 85 MP against the 64 MP limit.
    answer = uploader.send(flat_jpeg(16000, 250), crop="true", margin="2000")
    assert answer.status == 400
    if uploader.route == "api":
        assert answer.code == "invalid_option"
    assert uploader.says("margin", "the result could be up to 20000x4250 (85.0 MP), above this server's limit of "
                                   "64 MP") in answer.text
    nothing_kept()


def test_an_upscale_too_large_for_this_server_is_a_400(uploader, nothing_kept):
    answer = uploader.send(flat_jpeg(4000, 4000), operation="upscale", scale="2")
    assert answer.status == 400
    assert uploader.says("photo", "upscale takes photos of up to 2.1 MP on this server; this one is 4000x4000 "
                                  "(16.0 MP)") in answer.text
    nothing_kept()


def test_a_result_longer_than_its_format_allows_is_a_400(uploader, nothing_kept):
    answer = uploader.send(flat_jpeg(20000, 8), format="webp")
    assert answer.status == 400
    assert uploader.says("format", "WEBP images can be at most 16,383 pixels on a side") in answer.text
    nothing_kept()
