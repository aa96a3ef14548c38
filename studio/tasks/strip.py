"""Copy a JPEG, PNG or WebP without its metadata and without re-encoding: segment by segment, chunk by chunk.

Each walker keeps an allowlist of what decides the pixels and their colours and drops everything else (EXIF, GPS,
XMP, IPTC, comments, colour profiles, thumbnails, unknown parts); it stops at the image's end, so bytes appended
after it (HTML, an MPO's second image) are gone. Anything it does not understand returns None: the caller then
re-encodes. The caller also decodes the copy again and compares pixels before storing it.
No library did this exactly: Pillow can only re-encode; piexif removes EXIF from JPEG alone; exiv2 removes what it
knows but copies other segments and whatever follows the scan; mat2 and imgstrip rebuild files from their pixels.
"""

from __future__ import annotations

import re
import struct

# JPEG markers kept as they are: SOF0-3, 5-7, 9-11, 13-15 (frame headers), DHT, DAC, DQT, DNL, DRI.
_JPEG_KEPT = {*range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xC9, 0xCC), *range(0xCD, 0xD0), 0xC4, 0xCC, 0xDB,
              0xDC, 0xDD}
_SOS, _EOI, _APP0, _APP14, _COM = 0xDA, 0xD9, 0xE0, 0xEE, 0xFE
# Inside a scan, 0xFF is either stuffed (FF 00) or starts a restart marker (FF D0-D7); anything else ends it.
_SCAN_END = re.compile(rb"\xff[^\x00\xd0-\xd7]")
# Far more segments than any photo has (a progressive one with its most scans has a few hundred); past this the
# walk, in Python, gives up and the caller re-encodes, whose cost does not grow with segments (libjpeg skips them).
_MAX_JPEG_SEGMENTS = 2_000

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that decide the pixels or how their colours are meant (none identifies anyone). pHYs, a print resolution,
# does neither and no result carries the input's: it goes with the rest.
_PNG_KEPT = {b"IHDR", b"PLTE", b"tRNS", b"IDAT", b"IEND", b"gAMA", b"cHRM", b"sRGB", b"sBIT"}
_PNG_REFUSED = {b"acTL", b"fcTL", b"fdAT"}  # an animation is refused at upload; never half-copy one

_WEBP_IMAGE = {b"VP8 ", b"VP8L", b"ALPH"}
_WEBP_REFUSED = {b"ANIM", b"ANMF"}
_VP8X_ALPHA = 0x10


def strip_metadata(data: bytes, image_format: str) -> bytes | None:
    """Return the image without metadata or trailing bytes, pixel data untouched; None if it cannot be done."""
    walker = {"JPEG": strip_jpeg, "PNG": strip_png, "WEBP": strip_webp}.get(image_format)
    return walker(data) if walker else None


def strip_jpeg(data: bytes) -> bytes | None:
    """Return the first JPEG in data with only its decoding segments, JFIF (no thumbnail) and Adobe APP14."""
    if not data.startswith(b"\xff\xd8"):
        return None
    kept = [b"\xff\xd8"]
    position, segments = 2, 0
    while (found := _next_marker(data, position)) is not None and segments < _MAX_JPEG_SEGMENTS:
        marker, position = found
        segments += 1
        if marker == _EOI:
            return b"".join(kept) + b"\xff\xd9"
        if position + 2 > len(data):
            return None
        end = position + struct.unpack_from(">H", data, position)[0]
        if end < position + 2 or end > len(data):
            return None
        if marker == _SOS:  # the scan header, then its entropy-coded data up to the next real marker
            scan_end = _SCAN_END.search(data, end)
            if scan_end is None:
                return None
            end = scan_end.start()
        segment = _kept_segment(marker, data[position - 2:end])  # from 0xFF and the marker, fill bytes left out
        if segment is None:
            return None
        kept.append(segment)
        position = end
    return None


def _next_marker(data: bytes, position: int) -> tuple[int, int] | None:
    """Return the marker at position and where its segment starts; None where no marker is."""
    if position >= len(data) or data[position] != 0xFF:
        return None
    while position < len(data) and data[position] == 0xFF:  # fill bytes may precede any marker
        position += 1
    return (data[position], position + 1) if position < len(data) else None


def _kept_segment(marker: int, segment: bytes) -> bytes | None:
    """Return what to keep of a segment (b"" to drop it); None for a marker a plain photo never has."""
    payload = segment[4:]
    if marker in _JPEG_KEPT or marker == _SOS:
        return segment
    if marker == _APP14 and payload.startswith(b"Adobe"):
        # The colour transform flag: without it a decoder may read RGB as YCbCr and change every colour.
        return segment
    if marker == _APP0 and payload.startswith(b"JFIF\x00") and len(payload) >= 14:
        return _jfif_without_thumbnail(payload)
    # APPn and COM are metadata; RSTn or TEM outside a scan, hierarchical or reserved markers: not a photo to copy.
    return b"" if 0xE0 <= marker <= 0xEF or marker == _COM else None


def _jfif_without_thumbnail(payload: bytes) -> bytes:
    # JFIF tells decoders the three components are YCbCr, and its densities give the pixel aspect ratio: keep the
    # identifier, version, units and densities, with a 0x0 thumbnail.
    body = payload[:12] + b"\x00\x00"
    return b"\xff\xe0" + struct.pack(">H", len(body) + 2) + body


def strip_png(data: bytes) -> bytes | None:
    """Return an 8-bit RGB or RGBA PNG with only its pixel and colour-meaning chunks; None for any other PNG."""
    if not data.startswith(_PNG_SIGNATURE):
        return None
    kept = [_PNG_SIGNATURE]
    position = len(_PNG_SIGNATURE)
    while position + 12 <= len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        end = position + 12 + length
        if end > len(data):
            return None
        chunk = data[position:end]
        if position == len(_PNG_SIGNATURE) and not _is_8bit_colour_header(chunk):
            return None  # palette, grey and 16-bit images are converted to 8-bit RGB(A) by re-encoding instead
        if kind in _PNG_REFUSED or (kind not in _PNG_KEPT and not kind[0] & 0x20):
            return None  # an animation, or an unknown critical chunk: the decoder would need it
        if kind in _PNG_KEPT:
            kept.append(chunk)
        if kind == b"IEND":
            return b"".join(kept)
        position = end
    return None


def _is_8bit_colour_header(chunk: bytes) -> bool:
    if len(chunk) != 25 or chunk[4:8] != b"IHDR":
        return False
    bit_depth, colour_type = chunk[16], chunk[17]
    return bit_depth == 8 and colour_type in (2, 6)


def strip_webp(data: bytes) -> bytes | None:
    """Return a still WebP with only its VP8/VP8L/ALPH chunks (and VP8X, flags cleared, where alpha needs it)."""
    if len(data) < 12 or data[:4] != b"RIFF" or data[8:12] != b"WEBP":
        return None
    (riff_size,) = struct.unpack_from("<I", data, 4)
    if riff_size < 4 or 8 + riff_size > len(data):
        return None
    chunks = _riff_chunks(data[12:8 + riff_size])
    if chunks is None or any(kind in _WEBP_REFUSED for kind, _ in chunks):
        return None
    image = [(kind, body) for kind, body in chunks if kind in _WEBP_IMAGE]
    kinds = [kind for kind, _ in image]
    if kinds in ([b"VP8 "], [b"VP8L"]):
        body = _riff_chunk(*image[0])
    elif kinds == [b"ALPH", b"VP8 "] and chunks[0][0] == b"VP8X" and len(chunks[0][1]) == 10:
        # Lossy with alpha needs the extended header; keep its canvas size and the alpha flag, nothing else.
        header = bytes((_VP8X_ALPHA,)) + chunks[0][1][1:]
        body = _riff_chunk(b"VP8X", header) + b"".join(_riff_chunk(*chunk) for chunk in image)
    else:
        return None
    return b"RIFF" + struct.pack("<I", 4 + len(body)) + b"WEBP" + body


def _riff_chunks(data: bytes) -> list[tuple[bytes, bytes]] | None:
    chunks = []
    position = 0
    while position + 8 <= len(data):
        kind, size = struct.unpack_from("<4sI", data, position)
        end = position + 8 + size
        if end > len(data):
            return None
        chunks.append((kind, data[position + 8:end]))
        position = end + (size & 1)  # chunks are padded to an even length
    return chunks if position >= len(data) else None


def _riff_chunk(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("<I", len(body)) + body + b"\x00" * (len(body) & 1)
