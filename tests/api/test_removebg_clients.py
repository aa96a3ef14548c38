"""remove.bg's own clients, unmodified but for their endpoint, against /v1.0/removebg on a real worker: the npm
package remove.bg 1.3.0 through node and the PyPI package removebg 0.4. Each call's result must be the same image,
pixel for pixel, as the studio's own API makes for the same photo and options."""

from __future__ import annotations

import base64
import io
from pathlib import Path

import numpy
import pytest
from PIL import Image
from removebg import removebg as removebg_client

from tests.support.removebg import assert_same_pixels, run_npm_client, studio_result

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PHOTO = "horse.jpg"


def noisy_photo(side: int = 480) -> bytes:
    """Return a PNG past Flask's 500 KB form field default once in base64 (random pixels, a bright square)."""
    rng = numpy.random.default_rng(7)
    array = rng.integers(0, 80, (side, side, 3), dtype=numpy.uint8)
    array[side // 4: 3 * side // 4, side // 4: 3 * side // 4] = 230
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "PNG")
    return buffer.getvalue()


def test_the_npm_client_file_base64_and_url_calls_match_the_studio(stack, photos_dir: Path, tmp_path: Path) -> None:
    photo_path = photos_dir / PHOTO
    photo = photo_path.read_bytes()
    url = stack.photos.serve("/horse.jpg", photo, "image/jpeg")
    calls = [
        ("removeBackgroundFromImageFile", {"path": str(photo_path), "size": "regular"},
         {"size": "preview", "format": "png"}),
        ("removeBackgroundFromImageBase64", {"base64img": base64.b64encode(photo).decode(), "size": "medium",
                                             "bg_color": "green"},
         {"size": "medium", "format": "jpeg", "bg_color": "#008000"}),
        ("removeBackgroundFromImageUrl", {"url": url, "size": "hd", "crop": True,
                                          "crop_margin": "10px"},
         {"size": "hd", "format": "png", "crop": "true", "margin": "10"}),
    ]
    for index, (function, options, studio_options) in enumerate(calls):
        output = tmp_path / f"npm-{index}.out"
        answer = run_npm_client(stack.base_url, function, {**options, "apiKey": stack.token,
                                                           "outputFile": str(output)})

        assert answer["ok"], answer
        got = output.read_bytes()
        with Image.open(io.BytesIO(got)) as image:
            assert (answer["result"]["resultWidth"], answer["result"]["resultHeight"]) == (str(image.width),
                                                                                           str(image.height))
        assert answer["result"]["creditsCharged"] == "1"
        assert int(answer["result"]["rateLimitRemaining"]) < int(answer["result"]["rateLimit"])
        assert_same_pixels(got, studio_result(stack.client, stack.headers, photo, **studio_options))


def test_the_npm_client_gets_remove_bg_errors(stack, photos_dir: Path) -> None:
    path = str(photos_dir / PHOTO)

    refused = run_npm_client(stack.base_url, "removeBackgroundFromImageFile", {"path": path, "apiKey": "ps_wrong"})
    assert not refused["ok"] and refused["errors"][0]["title"]

    bad = run_npm_client(stack.base_url, "removeBackgroundFromImageFile",
                         {"path": path, "apiKey": stack.token, "size": "gigantic"})
    assert not bad["ok"] and bad["errors"][0]["title"].startswith("size:")


def test_the_pypi_client_file_url_and_base64_calls_match_the_studio(stack, photos_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(removebg_client, "API_ENDPOINT", f"{stack.base_url}/v1.0/removebg")
    client = removebg_client.RemoveBg(stack.token, str(tmp_path / "removebg-errors.log"))
    photo_path = tmp_path / PHOTO
    photo_path.write_bytes((photos_dir / PHOTO).read_bytes())
    noisy = noisy_photo()
    assert len(base64.b64encode(noisy)) > 500_000
    url = stack.photos.serve("/horse.jpg", photo_path.read_bytes(), "image/jpeg")

    client.remove_background_from_img_file(str(photo_path), size="regular")
    assert_same_pixels(Path(f"{photo_path}_no_bg.png").read_bytes(),
                       studio_result(stack.client, stack.headers, photo_path.read_bytes(), size="preview"))

    client.remove_background_from_img_url(url, size="medium",
                                          new_file_name=str(tmp_path / "url.png"), bg_color="81d4fa")
    assert_same_pixels((tmp_path / "url.png").read_bytes(),
                       studio_result(stack.client, stack.headers, photo_path.read_bytes(), size="medium",
                                     format="jpeg", bg_color="#81d4fa"))

    client.remove_background_from_base64_img(base64.b64encode(noisy).decode(), size="hd",
                                             new_file_name=str(tmp_path / "b64.png"))
    assert_same_pixels((tmp_path / "b64.png").read_bytes(),
                       studio_result(stack.client, stack.headers, noisy, size="hd"))
