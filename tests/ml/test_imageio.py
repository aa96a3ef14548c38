"""Safe decoding: allowed formats only, pixel limits, every pixel mode, EXIF orientation, no metadata out."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from ml.imageio import ImageDecodeError, decode_image, encode_image, inspect_image
from tests.support.images import encoded


def png_header_claiming(width: int, height: int) -> bytes:
    """Return a tiny PNG whose header claims a huge size (a decompression bomb)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    pixels = chunk(b"IDAT", zlib.compress(b"\0" * 10))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + pixels + chunk(b"IEND", b"")


@pytest.mark.parametrize("image, expected_mode", [
    (Image.new("L", (8, 6), 128), "RGB"),
    (Image.new("LA", (8, 6), (128, 100)), "RGBA"),
    (Image.new("RGBA", (8, 6), (1, 2, 3, 4)), "RGBA"),
    (Image.new("RGB", (8, 6), (1, 2, 3)), "RGB"),
])
def test_every_png_mode_decodes_to_rgb_or_rgba(image, expected_mode):
    decoded = decode_image(encoded(image))
    assert decoded.mode == expected_mode and decoded.size == (8, 6)


def test_palette_with_transparency_keeps_its_alpha():
    image = Image.new("P", (4, 4), 0)
    image.putpalette([255, 0, 0, 0, 255, 0] + [0] * 762)
    image.putpixel((0, 0), 1)
    decoded = decode_image(encoded(image, transparency=0))
    assert decoded.mode == "RGBA"
    assert decoded.getpixel((0, 0)) == (0, 255, 0, 255) and decoded.getpixel((1, 1))[3] == 0


def test_sixteen_bit_greyscale_is_scaled_not_clipped():
    ramp = Image.fromarray(np.array([[0, 32768, 65535]], dtype=np.uint16))
    decoded = decode_image(encoded(ramp))
    assert [decoded.getpixel((x, 0))[0] for x in range(3)] == [0, 127, 255]


def test_cmyk_jpeg_decodes_to_rgb():
    decoded = decode_image(encoded(Image.new("CMYK", (10, 10), (0, 255, 255, 0)), "JPEG"))
    red, green, blue = decoded.getpixel((5, 5))
    assert decoded.mode == "RGB" and red > 200 and green < 60 and blue < 60


def test_exif_orientation_is_applied_and_metadata_dropped():
    photo = Image.new("RGB", (40, 20), (200, 10, 10))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise to display
    exif[0x8825] = {1: "N", 2: (1.0, 2.0, 3.0)}  # GPS
    data = encoded(photo, "JPEG", exif=exif.tobytes())
    decoded = decode_image(data)
    assert decoded.size == (20, 40)
    for image_format in ("png", "webp", "jpeg"):
        output = Image.open(io.BytesIO(encode_image(decoded, image_format)))
        assert not output.getexif() and "exif" not in output.info


@pytest.mark.parametrize("data, message", [
    (b"", "empty"),
    (b"%PDF-1.4 not an image", "not a JPEG, PNG or WebP"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not a JPEG, PNG or WebP"),
    (encoded(Image.new("RGB", (5, 5)), "TIFF"), "not a JPEG, PNG or WebP"),
    (encoded(Image.new("RGB", (5, 5)), "GIF"), "not a JPEG, PNG or WebP"),
])
def test_other_files_are_refused_with_a_reason(data, message):
    with pytest.raises(ImageDecodeError, match=message):
        decode_image(data)


@pytest.mark.parametrize("image_format", ["JPEG", "PNG"])
def test_truncated_files_are_refused(image_format):
    noise = Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8))
    data = encoded(noise, image_format)
    with pytest.raises(ImageDecodeError):
        decode_image(data[: len(data) // 2])


def test_a_decompression_bomb_is_refused_from_its_header_alone():
    bomb = png_header_claiming(20000, 20000)
    with pytest.raises(ImageDecodeError, match="limit"):
        inspect_image(bomb, max_pixels=50_000_000)
    with pytest.raises(ImageDecodeError, match="limit"):
        inspect_image(png_header_claiming(3000, 3000), max_pixels=1_000_000)


def test_inspect_reports_the_real_format_whatever_the_name():
    info = inspect_image(encoded(Image.new("RGB", (7, 3)), "WEBP"))
    assert (info.format, info.width, info.height, info.media_type) == ("WEBP", 7, 3, "image/webp")
