"""Safe image decoding and encoding: a format allowlist, bounds on pixels and structure, EXIF orientation, no
metadata out."""

from __future__ import annotations

import io
import struct
import warnings
from dataclasses import dataclass

from PIL import Image, ImageOps, UnidentifiedImageError

ALLOWED_FORMATS = ("JPEG", "PNG", "WEBP")
MEDIA_TYPES = {"JPEG": "image/jpeg", "PNG": "image/png", "WEBP": "image/webp"}
EXTENSIONS = {"png": ".png", "webp": ".webp", "jpeg": ".jpg"}
OUTPUT_MEDIA_TYPES = {"png": "image/png", "webp": "image/webp", "jpeg": "image/jpeg"}
DEFAULT_MAX_PIXELS = 50_000_000
# What a file may multiply the work of decoding it by, checked from its bytes before any decoder sees it. A
# progressive JPEG is decoded scan by scan over the whole picture (encoders write 10 or so, a few dozen at most);
# Pillow reads a PNG's chunks one at a time in Python (a real one within the upload limit has a few thousand); a
# still WebP has a handful of chunks (VP8X, ICCP, ALPH, VP8 or VP8L, EXIF, XMP), an animation one per frame.
MAX_JPEG_SCANS = 100
# Pillow reads a JPEG's segments before its first scan one at a time in Python (libjpeg, in C, reads the rest): a
# photo has a few dozen (tables, JFIF, EXIF, XMP and ICC split into 64 KB parts).
MAX_JPEG_HEADER_SEGMENTS = 1_000
MAX_PNG_CHUNKS = 10_000
MAX_WEBP_CHUNKS = 64
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class ImageDecodeError(ValueError):
    """Raised for any input that is not a decodable JPEG, PNG or WebP photo within the limits."""


class UnsupportedImage(ImageDecodeError):
    """Raised for an empty file or bytes that are not a JPEG, PNG or WebP image."""


class TooManyPixels(ImageDecodeError):
    """Raised when the header announces more pixels than allowed (a decompression bomb, or just too big)."""


class TooComplex(ImageDecodeError):
    """Raised when a file's structure would multiply the work of decoding it: too many scans, chunks or frames."""


class DamagedImage(ImageDecodeError):
    """Raised when a JPEG, PNG or WebP header or its pixel data cannot be read (truncated, corrupt)."""


@dataclass(frozen=True)
class ImageInfo:
    """What the bytes really are, read from the header without decoding the pixels."""

    format: str
    width: int
    height: int
    frames: int = 1

    @property
    def media_type(self) -> str:
        """Return the IANA media type of the format."""
        return MEDIA_TYPES[self.format]


def inspect_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Identify the format and size from the header; refuse other formats and oversized images cheaply."""
    if not data:
        raise UnsupportedImage("the file is empty")
    check_structure(data)
    try:
        with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
            # Phones write MPO (a JPEG followed by a depth or preview image): its first image is a plain JPEG,
            # and the only one decoded.
            if image.format == "MPO":
                info = ImageInfo("JPEG", image.width, image.height)
            else:
                info = ImageInfo(image.format, image.width, image.height, getattr(image, "n_frames", 1))
    except UnidentifiedImageError:
        raise UnsupportedImage("the file is not a JPEG, PNG or WebP image") from None
    except Image.DecompressionBombError:
        # Pillow refuses even to open something this big, before we see its size.
        raise TooManyPixels(f"the image has more than {2 * Image.MAX_IMAGE_PIXELS:,} pixels; "
                            f"the limit is {max_pixels:,} pixels") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise DamagedImage(f"the image header cannot be read ({error})") from None
    if info.width < 1 or info.height < 1:
        raise DamagedImage("the image has no pixels")
    if info.width * info.height > max_pixels:
        raise TooManyPixels(
            f"the image is {info.width}x{info.height} ({info.width * info.height:,} pixels); "
            f"the limit is {max_pixels:,} pixels"
        )
    return info


def check_structure(data: bytes) -> None:
    """Raise TooComplex when the file holds more scans, chunks or frames than a photo needs, reading bytes only.

    Every decode starts with this check, so the work of any decode is bounded by these counts times the pixels.
    """
    if data.startswith(b"\xff\xd8"):
        # Every scan starts with an SOS marker, and entropy-coded data never holds one (a 0xFF there is followed
        # by 0x00 or a restart marker), so counting them over-counts only markers inside metadata.
        scans = data.count(b"\xff\xda")
        if scans > MAX_JPEG_SCANS:
            raise TooComplex(f"the JPEG has {scans:,} scans; a photo has at most {MAX_JPEG_SCANS}")
        if _jpeg_header_segments(data, MAX_JPEG_HEADER_SEGMENTS + 1) > MAX_JPEG_HEADER_SEGMENTS:
            raise TooComplex(f"the JPEG has more than {MAX_JPEG_HEADER_SEGMENTS:,} segments before its first scan; "
                             "a photo has a few dozen")
    elif data.startswith(_PNG_SIGNATURE):
        if _png_chunks(data, MAX_PNG_CHUNKS + 1) > MAX_PNG_CHUNKS:
            raise TooComplex(f"the PNG has more than {MAX_PNG_CHUNKS:,} chunks; a photo has far fewer")
    elif data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        if _webp_chunks(data, MAX_WEBP_CHUNKS + 1) > MAX_WEBP_CHUNKS:
            raise TooComplex(f"the WebP has more than {MAX_WEBP_CHUNKS} chunks (animation frames or metadata); "
                             "a still photo has a few")


def _jpeg_header_segments(data: bytes, stop: int) -> int:
    """Count a JPEG's marker segments before its first scan, or up to stop; anything malformed ends the count."""
    count, position = 0, 2
    while count < stop and position + 4 <= len(data) and data[position] == 0xFF:
        marker = data[position + 1]
        if marker == 0xFF:  # a fill byte before the marker
            position += 1
            continue
        if marker in (0xDA, 0xD9):  # the first scan, or the end of the image
            break
        count += 1
        position += 2 + struct.unpack_from(">H", data, position + 2)[0]
    return count


def _png_chunks(data: bytes, stop: int) -> int:
    """Count a PNG's chunks up to its IEND, or up to stop; a truncated tail ends the count."""
    count, position = 0, len(_PNG_SIGNATURE)
    while count < stop and position + 8 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        count += 1
        if kind == b"IEND":
            break
        position += 12 + length  # length, type, data, CRC
    return count


def _webp_chunks(data: bytes, stop: int) -> int:
    """Count a WebP's chunks, or up to stop; a truncated tail ends the count."""
    count, position = 0, 12
    while count < stop and position + 8 <= len(data):
        length = struct.unpack_from("<I", data, position + 4)[0]
        count += 1
        position += 8 + length + (length & 1)  # type, length, data padded to an even length
    return count


def _to_rgb_or_rgba(image: Image.Image) -> Image.Image:
    """Convert any Pillow mode to RGB, or RGBA where the image carries transparency."""
    if image.mode in ("RGB", "RGBA"):
        return image
    if image.mode == "P":
        return image.convert("RGBA" if "transparency" in image.info else "RGB")
    if image.mode in ("LA", "PA", "La", "RGBa"):
        return image.convert("RGBA")
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        # 16-bit and 32-bit greyscale: scale to 8 bits instead of clipping everything above 255 to white.
        scale = 1 / 257 if image.mode.startswith("I;16") else 1 / 65793
        return image.point(lambda value: value * scale).convert("L").convert("RGB")
    if image.mode == "F":
        return image.convert("L").convert("RGB")
    return image.convert("RGB")


def decode_image(data: bytes, max_pixels: int = DEFAULT_MAX_PIXELS, *, inspected: ImageInfo | None = None
                 ) -> Image.Image:
    """Decode a photo to an upright RGB or RGBA image; raise ImageDecodeError with a readable reason.

    inspected is what inspect_image found in these very bytes, when the caller has it already (its bounds held).
    """
    if inspected is None:
        inspect_image(data, max_pixels)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=ALLOWED_FORMATS) as image:
                image.load()
                ImageOps.exif_transpose(image, in_place=True)
                decoded = _to_rgb_or_rgba(image)
                # Nothing of the file's metadata (EXIF, ICC, resolution, comments) travels with the pixels.
                decoded.info = {}
                return decoded
    except Image.DecompressionBombWarning as error:
        raise TooManyPixels(f"the image is too large ({error})") from None
    except Image.DecompressionBombError as error:
        raise TooManyPixels(f"the image is too large ({error})") from None
    except (OSError, ValueError, SyntaxError, EOFError) as error:
        raise DamagedImage(f"the image data is damaged or truncated ({error})") from None


def encode_image(image: Image.Image, image_format: str, *, png_compress_level: int = 4) -> bytes:
    """Encode to PNG, WebP or JPEG with no metadata from the input (no EXIF, no GPS, no ICC).

    A resolution an operation set on purpose (info["dpi"], an ID photo's 300 dpi) is written (JPEG's JFIF density,
    PNG's pHYs); the input's never reaches the output, since decoding starts every image afresh.
    """
    buffer = io.BytesIO()
    dpi = {"dpi": image.info["dpi"]} if "dpi" in image.info and image_format in ("png", "jpeg") else {}
    if image_format == "png":
        image.save(buffer, "PNG", compress_level=png_compress_level, **dpi)
    elif image_format == "webp":
        image.save(buffer, "WEBP", lossless=True, method=0) if image.mode == "L" else \
            image.save(buffer, "WEBP", quality=90, method=4, exact=image.mode == "RGBA")
    elif image_format == "jpeg":
        image.convert("RGB" if image.mode != "L" else "L").save(buffer, "JPEG", quality=92, optimize=True, **dpi)
    else:
        raise ValueError(f"unknown output format {image_format!r}")
    return buffer.getvalue()
