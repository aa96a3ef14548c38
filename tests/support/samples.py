"""Minimal real files of many kinds, built in memory: the bad (and the awkward but valid) inputs users send."""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
from PIL import Image

SCRIPT = b"<html><body><script>alert(document.cookie)</script></body></html>"


def encoded(image: Image.Image, image_format: str, **params) -> bytes:
    """Return the image encoded in a format."""
    buffer = io.BytesIO()
    image.save(buffer, image_format, **params)
    return buffer.getvalue()


def noise(size: tuple[int, int] = (96, 64), seed: int = 1) -> Image.Image:
    """Return an RGB image of random pixels (compresses badly, so a truncation hits pixel data)."""
    width, height = size
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (height, width, 3), dtype=np.uint8))


def picture(size: tuple[int, int] = (96, 64), seed: int = 1) -> Image.Image:
    """Return a smooth, asymmetric RGB picture (survives JPEG well; any rotation or flip changes it)."""
    width, height = size
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    red = 255 * x / max(width - 1, 1)
    green = 255 * y / max(height - 1, 1)
    blue = np.where((x < width / 3) & (y < height / 2), 255.0, 40.0 * seed % 256)
    return Image.fromarray(np.stack([red, green, blue], axis=-1).astype(np.uint8))


def jpeg(size: tuple[int, int] = (96, 64)) -> bytes:
    """Return a valid JPEG."""
    return encoded(noise(size), "JPEG", quality=90)


def png(size: tuple[int, int] = (96, 64)) -> bytes:
    """Return a valid PNG."""
    return encoded(noise(size), "PNG")


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def png_from_rows(width: int, height: int, bit_depth: int, colour_type: int, rows: bytes) -> bytes:
    """Return a PNG built chunk by chunk (for what Pillow cannot write, such as 16-bit RGB)."""
    header = struct.pack(">IIBBBBB", width, height, bit_depth, colour_type, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header) + _png_chunk(b"IDAT", zlib.compress(rows))
            + _png_chunk(b"IEND", b""))


def png_bomb(width: int = 20000, height: int = 20000) -> bytes:
    """Return a tiny PNG whose header claims width x height pixels (a decompression bomb)."""
    return png_from_rows(width, height, 8, 2, b"\0" * 64)


def png16_rgb(image: Image.Image) -> bytes:
    """Return an RGB image as a 16-bit-per-channel PNG (each 8-bit value v becomes v * 257)."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.uint16) * 257
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)
    return png_from_rows(image.width, image.height, 16, 2, rows)


def png16_grey(image: Image.Image) -> bytes:
    """Return an image as a 16-bit greyscale PNG (each 8-bit value v becomes v * 257)."""
    pixels = np.asarray(image.convert("L"), dtype=np.uint16) * 257
    rows = b"".join(b"\0" + row.astype(">u2").tobytes() for row in pixels)
    return png_from_rows(image.width, image.height, 16, 0, rows)


def tiff() -> bytes:
    """Return a TIFF."""
    return encoded(noise((16, 16)), "TIFF")


def ico() -> bytes:
    """Return a Windows icon."""
    return encoded(noise((32, 32)), "ICO")


def pdf() -> bytes:
    """Return a one-page PDF (with a picture in it)."""
    return encoded(noise((16, 16)), "PDF")


def psd(width: int = 4, height: int = 3) -> bytes:
    """Return a minimal Photoshop document: RGB, 8 bits, raw pixel data."""
    header = b"8BPS" + struct.pack(">H6xHIIHH", 1, 3, height, width, 8, 3)
    sections = struct.pack(">III", 0, 0, 0)  # colour mode data, image resources, layers: all empty
    return header + sections + struct.pack(">H", 0) + bytes(range(3 * width * height))


def fits(width: int = 4, height: int = 3) -> bytes:
    """Return a minimal FITS file (astronomy images): an 8-bit 2-D array."""
    cards = ["SIMPLE  =                    T", "BITPIX  =                    8", "NAXIS   =                    2",
             f"NAXIS1  = {width:>20}", f"NAXIS2  = {height:>20}", "END"]
    header = "".join(card.ljust(80) for card in cards).ljust(2880).encode("ascii")
    return header + bytes(range(width * height)).ljust(2880, b"\0")


def svg() -> bytes:
    """Return an SVG with a script in it."""
    return (b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><script>alert(1)</script>'
            b'<rect width="10" height="10"/></svg>')


def html() -> bytes:
    """Return an HTML page."""
    return b"<!DOCTYPE html>" + SCRIPT


def gif_animated() -> bytes:
    """Return a two-frame animated GIF."""
    return encoded(noise((16, 16), 1), "GIF", save_all=True, append_images=[noise((16, 16), 2)], duration=100)


def webp_animated() -> bytes:
    """Return a two-frame animated WebP."""
    return encoded(noise((16, 16), 1), "WEBP", save_all=True, append_images=[noise((16, 16), 2)], duration=100)


def png_animated() -> bytes:
    """Return a two-frame animated PNG (APNG)."""
    return encoded(noise((16, 16), 1), "PNG", save_all=True, append_images=[noise((16, 16), 2)], duration=100)


def mpo() -> bytes:
    """Return an MPO (what many phones write: a JPEG followed by a second image)."""
    return encoded(picture((96, 64), 1), "MPO", save_all=True, append_images=[noise((96, 64), 2)])


def exif_with_gps(orientation: int) -> Image.Exif:
    """Return EXIF data with an orientation, a camera model and a GPS position."""
    exif = Image.Exif()
    exif[0x0112] = orientation
    exif[0x0110] = "SecretCam 3000"
    gps = exif.get_ifd(0x8825)
    gps.update({1: "N", 2: (51.0, 30.0, 0.0), 3: "W", 4: (0.0, 7.0, 0.0)})
    return exif


def jpeg_rotated_with_gps(upright: Image.Image) -> bytes:
    """Return a JPEG stored sideways with EXIF orientation 6 (rotate 90 degrees clockwise to view) and GPS."""
    sideways = upright.transpose(Image.Transpose.ROTATE_90)
    return encoded(sideways, "JPEG", quality=95, exif=exif_with_gps(6))


def jpeg_many_scans(scans: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """Return a progressive JPEG followed by this many empty AC refinement scans of its luma (decoders read each one
    over the whole picture: scans times pixels of work)."""
    data = encoded(noise(size), "JPEG", quality=90, progressive=True)
    # SOS: one component (1, the luma), tables 0/0, coefficients 1..63, successive approximation 1 -> 0.
    empty_scan = b"\xff\xda" + struct.pack(">HBBBBBB", 8, 1, 1, 0x00, 1, 63, 0x10)
    return data[:-2] + empty_scan * scans + data[-2:]


def png_many_chunks(chunks: int, size: tuple[int, int] = (64, 48)) -> bytes:
    """Return a PNG with this many empty private chunks after its header (Pillow reads each one in Python)."""
    data = png(size)
    header_end = 8 + 25  # signature, IHDR
    return data[:header_end] + _png_chunk(b"prVt", b"") * chunks + data[header_end:]


def webp_many_frames(frames: int) -> bytes:
    """Return an animated WebP of this many frames (its second frame repeated), built at the byte level."""
    data = webp_animated()
    position, pieces = 12, []
    while position + 8 <= len(data):
        length = struct.unpack_from("<I", data, position + 4)[0]
        pieces.append(data[position:position + 8 + length + (length & 1)])
        position += 8 + length + (length & 1)
    frames_found = [piece for piece in pieces if piece.startswith(b"ANMF")]
    assert len(frames_found) == 2
    body = b"WEBP" + b"".join(piece for piece in pieces if not piece.startswith(b"ANMF")) \
        + frames_found[0] + frames_found[1] * (frames - 1)
    return b"RIFF" + struct.pack("<I", len(body)) + body


def jpeg_many_segments(segments: int, before_first_scan: bool = True) -> bytes:
    """Return a progressive JPEG with this many empty comment segments before its first scan (Pillow reads each one
    in Python) or before its second (libjpeg skips them in C)."""
    data = encoded(noise((64, 48)), "JPEG", quality=90, progressive=True)
    first_scan = data.index(b"\xff\xda")
    at = 2 if before_first_scan else data.index(b"\xff\xda", first_scan + 2)
    return data[:at] + b"\xff\xfe\x00\x02" * segments + data[at:]
