"""A stored photo is the user's own compressed pixels, cut of its metadata, whenever nothing about them has to change;
only a photo that must turn upright or change colours is re-encoded. Either way nothing but the picture is kept."""

from __future__ import annotations

import io
import struct

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image, ImageCms, PngImagePlugin

from ml.imageio import decode_image
from studio.tasks import uploads
from studio.tasks.uploads import clean_photo
from tests.support import samples

MAX_PIXELS = 50_000_000
SECRETS = (b"SecretCam", b"SECRET-GPS-DATUM", b"SecretXMP", b"SecretIPTC", b"SecretComment", b"EXIF-THUMBNAIL",
           b"JFIF-THUMB-PIXELS!", b"<html", b"Exif", b"Photoshop", b"ICC_PROFILE", b"MPF", b"http://ns.adobe.com")
XMP = b'<x:xmpmeta xmlns:x="adobe:ns:meta/"><rdf:Description xmp:Creator="SecretXMP"/></x:xmpmeta>'


def exif_with_gps() -> Image.Exif:
    """Return EXIF with orientation 1 (nothing to turn), a camera and a GPS position with a findable datum."""
    exif = samples.exif_with_gps(1)
    exif.get_ifd(0x8825)[0x12] = "SECRET-GPS-DATUM"
    return exif


def segment(marker: int, payload: bytes) -> bytes:
    """Return a JPEG marker segment."""
    return bytes((0xFF, marker)) + struct.pack(">H", len(payload) + 2) + payload


def exif_thumbnail_segment() -> bytes:
    """Return an APP1 EXIF segment whose IFD1 holds a thumbnail JPEG (what cameras write)."""
    thumbnail = b"\xff\xd8EXIF-THUMBNAIL\xff\xd9"
    ifd0 = struct.pack(">HHHIHH", 1, 0x0112, 3, 1, 1, 0) + struct.pack(">I", 26)
    ifd1 = struct.pack(">HHHII", 2, 0x0201, 4, 1, 56) + struct.pack(">HHII", 0x0202, 4, 1, len(thumbnail))
    return segment(0xE1, b"Exif\x00\x00MM\x00\x2a\x00\x00\x00\x08" + ifd0 + ifd1 + b"\x00" * 4 + thumbnail)


def jpeg_with_everything(image: Image.Image, **params) -> bytes:
    """Return a JPEG carrying EXIF with GPS, XMP, IPTC, a comment, two thumbnails and an HTML page after its end."""
    data = samples.encoded(image, "JPEG", quality=90, exif=exif_with_gps(), xmp=XMP, comment=b"SecretComment",
                           **params)
    assert data[2:6] == b"\xff\xe0\x00\x10"  # Pillow's JFIF segment, replaced by one with a 3x2 thumbnail
    jfif = segment(0xE0, data[6:18] + b"\x03\x02" + b"JFIF-THUMB-PIXELS!")
    by_line = b"\x1c\x02\x50\x00\x0aSecretIPTC"  # IPTC record 2, dataset 80 (the author)
    iptc = segment(0xED, b"Photoshop 3.0\x008BIM\x04\x04\x00\x00" + struct.pack(">I", len(by_line)) + by_line
                   + b"\x00")
    return data[:2] + jfif + iptc + exif_thumbnail_segment() + data[20:] + samples.SCRIPT


def png_with_everything(image: Image.Image) -> bytes:
    """Return a PNG carrying text, compressed text, XMP, EXIF with GPS, a time, a resolution, a private chunk
    and a gamma, with an HTML page after its end."""
    info = PngImagePlugin.PngInfo()
    info.add_text("Author", "SecretCam owner")
    info.add_text("Comment", "SecretComment", zip=True)
    info.add_itxt("XML:com.adobe.xmp", XMP.decode())
    info.add(b"tIME", struct.pack(">HBBBBB", 2024, 5, 1, 12, 0, 0))
    info.add(b"gAMA", struct.pack(">I", 45455))
    info.add(b"prVt", b"SecretIPTC")
    return samples.encoded(image, "PNG", pnginfo=info, exif=exif_with_gps(), dpi=(300, 300)) + samples.SCRIPT


def webp_with_everything(image: Image.Image, **params) -> bytes:
    """Return a WebP carrying EXIF with GPS and XMP, with an HTML page after its end."""
    return samples.encoded(image, "WEBP", exif=exif_with_gps(), xmp=XMP, **params) + samples.SCRIPT


def png_chunks(data: bytes) -> list[bytes]:
    """Return the types of a PNG's chunks, in order."""
    kinds, position = [], 8
    while position < len(data):
        length, kind = struct.unpack_from(">I4s", data, position)
        kinds.append(kind)
        position += 12 + length
    return kinds


def compressed_pixels(data: bytes, image_format: str) -> bytes:
    """Return a stored file from its first compressed pixel data to its end (scans, IDATs or VP8/VP8L data)."""
    if image_format == "JPEG":
        return data[data.index(b"\xff\xda"):]
    if image_format == "PNG":
        return data[data.index(b"IDAT") - 4:]
    return data[min(start for start in map(data.find, (b"ALPH", b"VP8 ", b"VP8L")) if start >= 0):]


def assert_same_pixels(stored: bytes, upload: bytes) -> None:
    """Assert that the stored copy decodes to exactly the upload's decoded pixels."""
    first, second = decode_image(stored), decode_image(upload)
    assert (first.mode, first.size) == (second.mode, second.size)
    assert np.array_equal(np.asarray(first), np.asarray(second))


def assert_kept_losslessly(stored: bytes, upload: bytes, image_format: str) -> None:
    """Assert that the stored copy holds the upload's own compressed pixels, byte for byte, and nothing secret."""
    assert compressed_pixels(stored, image_format) in upload
    assert_same_pixels(stored, upload)
    leaked = [secret for secret in SECRETS if secret in stored]
    assert not leaked


def wide_gamut_profile() -> bytes:
    """Return an Adobe RGB (1998)-like ICC profile: its primaries and gamma 2.2, built tag by tag."""
    def xyz(x: float, y: float, z: float) -> bytes:
        return b"XYZ \x00\x00\x00\x00" + struct.pack(">3i", *(round(value * 65536) for value in (x, y, z)))

    gamma = b"curv\x00\x00\x00\x00" + struct.pack(">IH", 1, 563) + b"\x00\x00"
    tags = [(b"wtpt", xyz(0.9642, 1.0, 0.8249)), (b"rXYZ", xyz(0.6097, 0.3111, 0.0195)),
            (b"gXYZ", xyz(0.2053, 0.6257, 0.0609)), (b"bXYZ", xyz(0.1492, 0.0632, 0.7446)),
            (b"rTRC", gamma), (b"gTRC", gamma), (b"bTRC", gamma)]
    offset = 128 + 4 + 12 * len(tags)
    table, bodies = struct.pack(">I", len(tags)), b""
    for signature, body in tags:
        table += signature + struct.pack(">II", offset + len(bodies), len(body))
        bodies += body
    size = offset + len(bodies)
    header = (struct.pack(">I", size) + b"lcms" + b"\x02\x10\x00\x00" + b"mntrRGB XYZ " + b"\x00" * 12 + b"acsp"
              + b"\x00" * 24 + struct.pack(">I", 0) + xyz(0.9642, 1.0, 0.8249)[8:] + b"\x00" * 48)
    assert len(header) == 128
    return header + table + bodies


def test_real_photos_keep_their_own_pixels_unless_a_colour_profile_must_be_converted(photos_dir):
    photos = sorted(path for path in photos_dir.iterdir() if path.suffix.lower() in (".jpg", ".jpeg", ".png"))
    assert len(photos) >= 10
    for path in photos:
        upload = path.read_bytes()
        with Image.open(path) as original:
            image_format, profile, metadata = original.format, original.info.get("icc_profile"), set(original.info)
        photo = clean_photo(upload, MAX_PIXELS)
        if profile:  # converted to sRGB, so re-encoded, and the profile is gone
            assert compressed_pixels(photo.data, image_format) not in upload, path.name
            with Image.open(io.BytesIO(photo.data)) as stored:
                assert "icc_profile" not in stored.info, path.name
            continue
        assert_kept_losslessly(photo.data, upload, image_format)
        assert len(photo.data) <= len(upload), path.name
        with Image.open(io.BytesIO(photo.data)) as stored:
            # The Adobe segment says how to read the colours: it stays, as do JFIF and the progression.
            kept = {"adobe", "jfif", "progressive"}
            assert set(stored.info) & kept == metadata & kept, path.name
            assert not set(stored.info) & {"exif", "xmp", "comment", "photoshop", "icc_profile"}, path.name


def test_jpeg_loses_exif_gps_xmp_iptc_comments_thumbnails_and_trailing_html_but_not_a_bit_of_its_pixels():
    upload = jpeg_with_everything(samples.noise((96, 64)))
    assert all(secret in upload for secret in SECRETS if secret not in (b"ICC_PROFILE", b"MPF"))
    photo = clean_photo(upload, MAX_PIXELS)
    assert_kept_losslessly(photo.data, upload, "JPEG")
    assert photo.data.endswith(b"\xff\xd9") and photo.data.count(b"\xff\xd8\xff") == 1
    with Image.open(io.BytesIO(photo.data)) as stored:
        assert stored.info["jfif_density"] == (1, 1) and len(stored.getexif()) == 0


@pytest.mark.parametrize("params", [{"progressive": True}, {"restart_marker_blocks": 3}, {"subsampling": 2}],
                         ids=["progressive", "restart-markers", "subsampled"])
def test_progressive_jpegs_and_restart_markers_survive(params):
    upload = jpeg_with_everything(samples.noise((120, 80)), **params)
    photo = clean_photo(upload, MAX_PIXELS)
    assert_kept_losslessly(photo.data, upload, "JPEG")
    scans = photo.data[photo.data.index(b"\xff\xda"):]
    if "progressive" in params:
        assert scans.count(b"\xff\xda") > 1 and b"\xff\xc4" in scans  # several scans, tables between them
    if "restart_marker_blocks" in params:
        assert b"\xff\xdd" in photo.data and any(bytes((0xFF, marker)) in scans for marker in range(0xD0, 0xD8))


def test_fill_bytes_before_a_marker_are_read_past_and_an_unexpected_marker_means_re_encoding():
    upload = jpeg_with_everything(samples.noise((48, 32)))
    after_jfif = 4 + struct.unpack_from(">H", upload, 4)[0]
    padded = upload[:after_jfif] + b"\xff\xff\xff" + upload[after_jfif:]  # fill bytes may precede any marker
    photo = clean_photo(padded, MAX_PIXELS)
    assert_kept_losslessly(photo.data, padded, "JPEG")
    assert photo.data == clean_photo(upload, MAX_PIXELS).data
    # A restart marker outside any scan: libjpeg reads past it, the walker does not guess what it means.
    odd = upload[:after_jfif] + b"\xff\xd0" + upload[after_jfif:]
    photo = clean_photo(odd, MAX_PIXELS)
    assert compressed_pixels(photo.data, "JPEG") not in odd and not [secret for secret in SECRETS
                                                                     if secret in photo.data]


def test_an_mpo_is_stored_as_its_first_jpeg_exactly():
    upload = samples.mpo()
    photo = clean_photo(upload, MAX_PIXELS)
    assert_kept_losslessly(photo.data, upload, "JPEG")
    assert upload.count(b"\xff\xd8\xff") == 2 and photo.data.count(b"\xff\xd8\xff") == 1
    with Image.open(io.BytesIO(photo.data)) as stored:
        assert stored.format == "JPEG" and getattr(stored, "n_frames", 1) == 1


@pytest.mark.parametrize("mode", ["RGB", "RGBA"])
def test_png_keeps_only_its_pixel_and_colour_chunks(mode):
    upload = png_with_everything(samples.noise((64, 48)).convert(mode))
    photo = clean_photo(upload, MAX_PIXELS)
    assert_kept_losslessly(photo.data, upload, "PNG")
    chunks = png_chunks(photo.data)
    assert chunks[:2] == [b"IHDR", b"gAMA"] and chunks[-1] == b"IEND" and set(chunks[2:-1]) == {b"IDAT"}


@pytest.mark.parametrize("params", [{"lossless": True}, {"lossless": True, "mode": "RGBA"}, {"quality": 80},
                                    {"quality": 80, "mode": "RGBA"}],
                         ids=["lossless", "lossless-alpha", "lossy", "lossy-alpha"])
def test_webp_keeps_only_its_image_chunks(params):
    params = dict(params)
    image = samples.noise((64, 48)).convert(params.pop("mode", "RGB"))
    if image.mode == "RGBA":
        image.putalpha(Image.linear_gradient("L").resize(image.size))
    upload = webp_with_everything(image, **params)
    photo = clean_photo(upload, MAX_PIXELS)
    assert_kept_losslessly(photo.data, upload, "WEBP")
    header = photo.data[12:16]
    if header == b"VP8X":  # only a lossy photo with alpha needs the extended header, and only its alpha flag
        assert image.mode == "RGBA" and "quality" in params and photo.data[20] == 0x10
    else:
        assert header == (b"VP8L" if params.get("lossless") else b"VP8 ")
    assert struct.unpack_from("<I", photo.data, 4)[0] == len(photo.data) - 8


def test_a_jpeg_with_exif_orientation_6_is_still_turned_upright_by_re_encoding():
    upright = samples.picture((90, 60))
    upload = samples.jpeg_rotated_with_gps(upright)
    photo = clean_photo(upload, MAX_PIXELS)
    assert compressed_pixels(photo.data, "JPEG") not in upload
    stored = Image.open(io.BytesIO(photo.data))
    assert stored.size == (90, 60) and b"Exif" not in photo.data and b"SecretCam" not in photo.data
    difference = np.abs(np.asarray(stored, dtype=np.int16) - np.asarray(upright, dtype=np.int16)).mean()
    assert difference < 4


def test_a_png_with_a_wide_gamut_profile_is_still_converted_to_srgb():
    profile = wide_gamut_profile()
    source = ImageCms.ImageCmsProfile(io.BytesIO(profile))
    image = samples.picture((64, 48))
    upload = samples.encoded(image, "PNG", icc_profile=profile)
    photo = clean_photo(upload, MAX_PIXELS)
    assert b"iCCP" not in photo.data and png_chunks(photo.data) == [b"IHDR", b"IDAT", b"IEND"]
    expected = ImageCms.profileToProfile(image, source, ImageCms.createProfile("sRGB"))
    stored = np.asarray(decode_image(photo.data), dtype=np.int16)
    assert np.array_equal(stored, np.asarray(expected, dtype=np.int16))
    assert np.abs(stored - np.asarray(image, dtype=np.int16)).max() > 10  # a real conversion, not a no-op


@pytest.mark.parametrize("upload, mode", [
    (samples.encoded(samples.picture((40, 30)).convert("CMYK"), "JPEG", quality=95), "RGB"),
    (samples.encoded(samples.picture((40, 30)).convert("L"), "JPEG", quality=95), "RGB"),
    (samples.png16_rgb(samples.picture((40, 30))), "RGB"),
    (samples.encoded(samples.picture((40, 30)).convert("P"), "PNG", transparency=0), "RGBA"),
], ids=["cmyk-jpeg", "grey-jpeg", "png-16-bit", "palette-png"])
def test_photos_the_pipeline_converts_are_re_encoded_as_8_bit_rgb(upload, mode):
    photo = clean_photo(upload, MAX_PIXELS)
    with Image.open(io.BytesIO(photo.data)) as stored:
        assert stored.mode == mode and stored.size == (40, 30)
    if photo.media_type == "image/png":  # 8 bits per channel (the IHDR's bit depth), the same pixels decoded
        assert photo.data[24] == 8
        assert_same_pixels(photo.data, upload)


def test_a_stripped_copy_that_decodes_differently_is_never_stored(monkeypatch):
    upload = jpeg_with_everything(samples.picture((96, 64)))
    impostor = samples.encoded(samples.picture((96, 64), seed=3), "JPEG", quality=90)
    monkeypatch.setattr(uploads, "strip_metadata", lambda data, image_format: impostor)
    photo = clean_photo(upload, MAX_PIXELS)
    assert photo.data != impostor and not [secret for secret in SECRETS if secret in photo.data]
    difference = np.abs(np.asarray(decode_image(photo.data), dtype=np.int16)
                        - np.asarray(decode_image(upload), dtype=np.int16)).mean()
    assert difference < 2  # the re-encoded upload, not the impostor


@st.composite
def uploads_with_metadata(draw: st.DrawFn) -> tuple[bytes, str]:
    """Return a random small photo in a random format with random metadata and trailing bytes."""
    image_format = draw(st.sampled_from(["JPEG", "PNG", "WEBP"]))
    mode = "RGB" if image_format == "JPEG" else draw(st.sampled_from(["RGB", "RGBA"]))
    width, height = draw(st.integers(1, 40)), draw(st.integers(1, 40))
    pixels = np.random.default_rng(draw(st.integers(0, 2**32 - 1))).integers(0, 256, (height, width, len(mode)),
                                                                             dtype=np.uint8)
    params = {}
    if draw(st.booleans()):
        params["exif"] = exif_with_gps()
    if draw(st.booleans()) and image_format != "PNG":
        params["xmp"] = XMP
    if image_format == "JPEG":
        params.update(quality=draw(st.integers(30, 100)), progressive=draw(st.booleans()))
        if draw(st.booleans()):
            params["comment"] = b"SecretComment"
    elif image_format == "WEBP":
        params.update(lossless=draw(st.booleans()), quality=draw(st.integers(30, 100)))
    elif draw(st.booleans()):
        params["pnginfo"] = PngImagePlugin.PngInfo()
        params["pnginfo"].add_text("Author", "SecretCam owner", zip=draw(st.booleans()))
    upload = samples.encoded(Image.fromarray(pixels), image_format, **params)
    return upload + draw(st.sampled_from([b"", samples.SCRIPT, b"\x00" * 7])), image_format


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(uploads_with_metadata())
def test_random_photos_with_random_metadata_keep_exactly_their_pixels(case: tuple[bytes, str]) -> None:
    upload, image_format = case
    photo = clean_photo(upload, MAX_PIXELS)
    assert_kept_losslessly(photo.data, upload, image_format)
