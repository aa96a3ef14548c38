"""What an upload must be: one still JPEG, PNG or WebP photo and well-formed fields; what is kept is a clean copy.

The web request checks only what the header says (accept_photo: format, size, structure, pixels; no pixel is
decoded there); the job makes the clean copy (clean_photo) before its operation runs, in the worker.
Nothing here needs the app, so the property tests can throw random bytes and option maps at it directly.
Every refusal is an UploadRejected with a 4xx status, a stable code and a sentence a person can act on.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from PIL import ExifTags, Image, ImageCms
from werkzeug.datastructures import FileStorage

from ml.imageio import (
    MEDIA_TYPES,
    DamagedImage,
    ImageDecodeError,
    ImageInfo,
    TooComplex,
    TooManyPixels,
    UnsupportedImage,
    decode_image,
    inspect_image,
)
from studio.tasks.strip import strip_metadata

logger = logging.getLogger(__name__)

# Longer than any valid value (a model name, #rrggbbaa); a longer one is a mistake or an attack, not a typo.
MAX_OPTION_LENGTH = 100
SUPPORTED = "Upload a JPEG, PNG or WebP photo."
_SRGB = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB"))
# What Pillow reads from the parts a stripped copy keeps (JFIF, Adobe APP14, PNG colour chunks, WebP defaults).
_PIXEL_INFO = {"jfif", "jfif_version", "jfif_unit", "jfif_density", "dpi", "adobe", "adobe_transform", "progressive",
               "progression", "gamma", "chromaticity", "srgb", "transparency", "loop", "background", "duration",
               "timestamp"}
# EXIF orientations that swap width and height (a quarter turn, with or without a mirror).
_TURNING = {5, 6, 7, 8}
# Rows compared at a time: the check never holds a third full copy of a large photo in memory.
_COMPARED_ROWS = 256


class UploadRejected(Exception):
    """An upload or re-run refused for a reason the user can fix; carries the HTTP status and an error code.

    A refusal about one option or file field also carries its name (`field`) and the message without it
    (`detail`): the API says "scale: ...", the upload page names the option by its label instead.
    """

    def __init__(self, status: int, code: str, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.field = field
        self.detail = message.removeprefix(f"{field}: ") if field else message

    @classmethod
    def about(cls, field: str, detail: str, status: int = 400, code: str = "invalid_option") -> "UploadRejected":
        """Return a refusal of one field: "field: detail"."""
        return cls(status, code, f"{field}: {detail}", field=field)


@dataclass(frozen=True)
class CleanPhoto:
    """The photo as stored, with no metadata or trailing bytes left: the upload's own compressed pixels when they
    are already upright, sRGB, 8-bit RGB or RGBA; otherwise the decoded photo turned upright, converted and
    re-encoded in its own format."""

    data: bytes
    media_type: str
    extension: str
    width: int
    height: int


@dataclass(frozen=True)
class AcceptedPhoto:
    """An upload as received, checked from its header only: its real format and its upright size; the job
    replaces it in storage by its clean copy."""

    data: bytes
    media_type: str
    extension: str
    width: int
    height: int


def read_upload(upload: FileStorage | None, max_bytes: int | None) -> bytes:
    """Return the uploaded bytes; refuse a missing, empty or oversized file."""
    if upload is None or not upload.filename:
        raise UploadRejected(400, "missing_file", f"Attach a photo. {SUPPORTED}")
    data = upload.stream.read(max_bytes + 1 if max_bytes else -1)
    if max_bytes and len(data) > max_bytes:
        raise UploadRejected(413, "file_too_large", f"The photo is larger than the limit of {max_bytes:,} bytes.")
    if not data:
        raise UploadRejected(400, "empty_file", "The file is empty; choose a photo.")
    return data


def accept_attachment(name: str, upload: FileStorage | None, max_bytes: int | None,
                      max_pixels: int) -> AcceptedPhoto:
    """Check an attached picture (a background, a style) by the photo's rules; refusals name the field."""
    try:
        return accept_photo(read_upload(upload, max_bytes), max_pixels)
    except UploadRejected as error:
        raise UploadRejected.about(name, error.message, error.status, error.code) from None


def accept_photo(data: bytes, max_pixels: int) -> AcceptedPhoto:
    """Check an upload from its header alone, no pixel decoded: its format, structure, pixels and upright size."""
    info = inspect_upload(data, max_pixels)
    try:
        turned = _source_facts(data)[2] in _TURNING
    except Exception:  # noqa: BLE001 - Pillow's EXIF parser raises many kinds on a damaged block
        turned = False  # an unreadable EXIF turns nothing here; the job's clean copy decides for good
    width, height = (info.height, info.width) if turned else (info.width, info.height)
    return AcceptedPhoto(data, MEDIA_TYPES[info.format], _ENCODERS[info.format][0], width, height)


def inspect_upload(data: bytes, max_pixels: int) -> ImageInfo:
    """Identify the real format and size from the header alone: never the filename or the client's content type."""
    try:
        info = inspect_image(data, max_pixels)
    except TooManyPixels as error:
        raise UploadRejected(400, "too_many_pixels", f"{_sentence(str(error))} Upload a smaller photo.") from None
    except TooComplex as error:
        # Refused from its bytes: decoding it would cost many times what a photo of its size does.
        raise UploadRejected(400, "image_too_complex", f"{_sentence(str(error))} Save it again as an ordinary "
                             "still photo and upload that.") from None
    except DamagedImage:
        raise _damaged() from None
    except (UnsupportedImage, ImageDecodeError):
        raise UploadRejected(415, "unsupported_image", f"The file is not a JPEG, PNG or WebP image. {SUPPORTED}") \
            from None
    if info.frames > 1:
        # An animation cannot be cut out frame by frame here, and silently keeping one frame would surprise.
        raise UploadRejected(415, "animated_image", f"Animated images are not supported. {SUPPORTED}")
    return info


def clean_photo(data: bytes, max_pixels: int, info: ImageInfo | None = None) -> CleanPhoto:
    """Decode a whole upload and return its clean copy: no EXIF, GPS, XMP, IPTC, comments, profile or trailing bytes.

    When decoding changes nothing (no EXIF rotation, no colour profile to convert, 8-bit RGB or RGBA), the copy is
    the upload with its metadata cut out, pixels untouched and checked by decoding it again; otherwise, or if that
    check fails, it is the upright sRGB photo re-encoded (JPEG and WebP at quality 95, PNG). info is what
    inspect_upload found in these bytes, when the caller has it already.
    """
    info = info or inspect_upload(data, max_pixels)
    try:
        image = decode_image(data, max_pixels, inspected=info)
    except TooManyPixels as error:
        raise UploadRejected(400, "too_many_pixels", f"{_sentence(str(error))} Upload a smaller photo.") from None
    except ImageDecodeError as error:
        logger.info("refused a damaged %s upload: %s", info.format, error)
        raise _damaged() from None
    mode, icc_profile, orientation = _source_facts(data)
    rotated = orientation in range(2, 9)
    converted = _as_srgb(image, icc_profile)
    extension = _ENCODERS[info.format][0]
    if converted is image and not rotated and mode in ("RGB", "RGBA"):
        copy = _stripped_copy(data, info.format, image, max_pixels)
        if copy is not None:
            return CleanPhoto(copy, MEDIA_TYPES[info.format], extension, image.width, image.height)
        logger.info("re-encoding a %s upload: its metadata could not be cut out losslessly", info.format)
    buffer = io.BytesIO()
    _ENCODERS[info.format][1](converted, buffer)
    return CleanPhoto(buffer.getvalue(), MEDIA_TYPES[info.format], extension, converted.width, converted.height)


def option_fields(raw_options: Mapping[str, Any]) -> dict[str, Any]:
    """Return the submitted fields as a plain dict; refuse repeated fields, lists and overlong values.

    A URL field (webhook_url) checks its own, longer, limit.
    """
    getlist: Callable[[str], list[Any]] | None = getattr(raw_options, "getlist", None)
    fields: dict[str, Any] = {}
    for name in raw_options:
        label = str(name)[:40]
        values = getlist(name) if getlist is not None else [raw_options[name]]
        if len(values) != 1:
            code = "invalid_webhook_url" if name == "webhook_url" else "invalid_option"
            raise UploadRejected.about(label, f"give it once, not {len(values)} times", code=code)
        value = values[0]
        if isinstance(value, (list, tuple, dict, set)):
            raise _invalid(label, "must be a single value, not a list or an object")
        if isinstance(value, str) and len(value) > MAX_OPTION_LENGTH and not name.endswith("_url"):
            raise _invalid(label, f"is too long ({len(value):,} characters; at most {MAX_OPTION_LENGTH})")
        fields[str(name)] = value
    return fields


def _invalid(field: str, message: str) -> UploadRejected:
    return UploadRejected.about(field, message)


def _damaged() -> UploadRejected:
    return UploadRejected(400, "damaged_image", "The image is damaged or incomplete (the upload may have been cut "
                          "off). Upload the photo again.")


def _sentence(text: str) -> str:
    text = text.strip()
    return (text[:1].upper() + text[1:]).rstrip(".") + "."


def _source_facts(data: bytes) -> tuple[str, bytes | None, int]:
    """Return the file's own mode, its colour profile, and its EXIF orientation (1: upright); header only."""
    with Image.open(io.BytesIO(data)) as image:
        # A PNG's own getexif() decodes every pixel again to look for EXIF after them; the header's is enough here,
        # since a stripped copy is only stored once its pixels equal the upright decoded ones.
        exif = Image.Image.getexif(image) if image.format == "PNG" else image.getexif()
        return image.mode, image.info.get("icc_profile") or None, exif.get(ExifTags.Base.Orientation, 1)


def _stripped_copy(data: bytes, image_format: str, decoded: Image.Image, max_pixels: int) -> bytes | None:
    """Return the upload without metadata if it decodes to exactly the decoded pixels and reads back clean."""
    copy = strip_metadata(data, image_format)
    if copy is None:
        return None
    try:
        with Image.open(io.BytesIO(copy), formats=(image_format,)) as reopened:
            if not set(reopened.info) <= _PIXEL_INFO:
                return None
        again = decode_image(copy, max_pixels)
    except (ImageDecodeError, OSError, ValueError, SyntaxError, EOFError):
        return None
    return copy if _same_pixels(again, decoded) else None


def _same_pixels(first: Image.Image, second: Image.Image) -> bool:
    if (first.mode, first.size) != (second.mode, second.size):
        return False
    width, height = first.size
    return all(first.crop((0, top, width, min(top + _COMPARED_ROWS, height))).tobytes()
               == second.crop((0, top, width, min(top + _COMPARED_ROWS, height))).tobytes()
               for top in range(0, height, _COMPARED_ROWS))


def _as_srgb(image: Image.Image, icc_profile: bytes | None) -> Image.Image:
    """Convert to sRGB when the photo carries an RGB colour profile: the stored copy has no profile left."""
    if not icc_profile or image.mode not in ("RGB", "RGBA"):
        return image
    try:
        source = ImageCms.ImageCmsProfile(io.BytesIO(icc_profile))
        converted = ImageCms.profileToProfile(image, source, _SRGB, outputMode=image.mode)
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
        # A broken or non-RGB profile (CMYK, grey): keep the decoded pixels, as every browser without it would.
        return image
    if converted is None:
        return image
    if image.mode == "RGBA":
        converted.putalpha(image.getchannel("A"))
    # ImageCms tags its result with the sRGB profile, which the PNG and WebP encoders would write out.
    converted.info = {}
    return converted


def _jpeg(image: Image.Image, buffer: io.BytesIO) -> None:
    # No chroma subsampling at quality 95: the cut-out edges come from this copy.
    image.convert("RGB").save(buffer, "JPEG", quality=95, subsampling=0)


def _png(image: Image.Image, buffer: io.BytesIO) -> None:
    image.save(buffer, "PNG", compress_level=3)


def _webp(image: Image.Image, buffer: io.BytesIO) -> None:
    image.save(buffer, "WEBP", quality=95, method=4)


_ENCODERS: dict[str, tuple[str, Callable[[Image.Image, io.BytesIO], None]]] = {
    "JPEG": (".jpg", _jpeg),
    "PNG": (".png", _png),
    "WEBP": (".webp", _webp),
}
# What a stored clean copy is, by its key's extension.
STORED_MEDIA_TYPES = {extension: MEDIA_TYPES[name] for name, (extension, _) in _ENCODERS.items()}
