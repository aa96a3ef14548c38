"""remove.bg's request fields translated into an upload of the studio's remove_background operation.

Only the translation lives here: what the fields mean is checked where every upload is checked
(studio/tasks/service.py and the operation's declaration), so a refusal reads the same as the API's.
A remove.bg option the studio cannot honour is refused naming the field, never silently ignored, except those
remove.bg itself treats as hints (type, type_level, semitransparency). add_shadow, scale, position and roi map onto
remove_background's own shadow, placement and region options (ml/edits/shadow.py, ml/edits/placement.py).
"""

from __future__ import annotations

import base64
import binascii
import io
import re
from dataclasses import dataclass, field
from typing import Any, Mapping

from PIL import ImageColor
from werkzeug.datastructures import FileStorage

from studio.tasks.uploads import UploadRejected

OPERATION = "remove_background"
# remove.bg's sizes by the studio's size presets (studio's own: ml/operations/remove_background.py SIZES).
SIZES = {"preview": "preview", "small": "preview", "regular": "preview", "medium": "medium", "hd": "hd",
         "4k": "4k", "full": "full", "auto": "full"}
FORMATS = {"auto": None, "png": "png", "jpg": "jpeg", "jpeg": "jpeg", "webp": "webp", "zip": "png"}
TYPES = ("auto", "person", "product", "animal", "car", "car_interior", "car_part", "transportation", "graphics",
         "other")
TYPE_LEVELS = ("none", "latest", "1", "2")
CHANNELS = ("rgba", "alpha")
# remove.bg's own cap on a margin (it also allows at most 50% of the subject, which it measures first).
MAX_MARGIN_PIXELS = 500
WHOLE_IMAGE_ROI = ("0%", "0%", "100%", "100%")
PHOTO_FIELDS = ("image_file", "image_file_b64", "image_url")
KNOWN_FIELDS = frozenset({*PHOTO_FIELDS, "size", "type", "type_level", "format", "roi", "crop", "crop_margin",
                          "scale", "position", "channels", "add_shadow", "semitransparency", "bg_color",
                          "bg_image_url", "bg_image_file"})
_HEX = re.compile(r"^#?([0-9a-fA-F]{3,4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")
_PIXELS = re.compile(r"^(\d{1,6})(px)?$")
_PERCENT = re.compile(r"^\d{1,3}(\.\d+)?%$")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class Call:
    """A remove.bg call as a studio upload: the text fields, the photo's file (None when given by URL), the other
    files, and what the answer needs beyond the task's result."""

    fields: dict[str, str]
    photo: FileStorage | None
    files: dict[str, FileStorage] = field(default_factory=dict)
    zip: bool = False
    type: str = "auto"

    @property
    def detected_type(self) -> str:
        """Return what X-Type says: the type asked for; "auto" is answered "other" (no classifier runs here)."""
        return "other" if self.type == "auto" else self.type


def translate(values: Mapping[str, Any], files: Mapping[str, FileStorage]) -> Call:
    """Translate remove.bg's fields (text values and files) into a studio upload; 400 naming a bad field."""
    text = {name: _text(name, value) for name, value in values.items() if value is not None}
    text = {name: value for name, value in text.items() if value != ""}
    unknown = sorted((set(text) | set(files)) - KNOWN_FIELDS)
    if unknown:
        raise _refused(unknown[0], "remove.bg has no such field")
    stray = sorted(set(files) - {"image_file", "bg_image_file"})
    if stray:
        raise _refused(stray[0], "send it as a text field, not as a file")
    for name in ("image_file", "bg_image_file"):
        if name in text:
            raise _refused(name, "send it as a file upload (or its URL in " + name.replace("_file", "_url") + ")")
    _ignored_hints(text)
    channels = _choice(text, "channels", CHANNELS, "rgba")
    kind = _choice(text, "format", tuple(FORMATS), "auto")
    fields = {"operation": OPERATION, "size": SIZES[_choice(text, "size", tuple(SIZES), "preview")],
              "output": "mask" if channels == "alpha" else "cutout"}
    _layout(text, fields)
    if _flag(text, "crop"):
        fields["crop"] = "true"
        fields["margin"] = str(_margin(text.get("crop_margin", "0")))
    background = _background(text, fields, files)
    if kind == "zip" and (background or channels == "alpha"):
        raise _refused("format", "zip holds the colour photo and its alpha matte: leave out bg_color, bg_image "
                                 "and channels=alpha")
    fields["format"] = FORMATS[kind] or ("jpeg" if background and channels == "rgba" and _opaque(fields) else "png")
    attached = {"bg_image": files["bg_image_file"]} if "bg_image_file" in files else {}
    photo = _photo(text, files, fields)
    return Call(fields, photo, attached, zip=kind == "zip", type=text.get("type", "auto"))


def _text(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float, str)):
        return str(value).strip()
    raise _refused(name, "must be a single value, not a list or an object")


def _refused(name: str, message: str) -> UploadRejected:
    return UploadRejected(400, "invalid_option", f"{name[:40]}: {message}.")


def _choice(text: Mapping[str, str], name: str, allowed: tuple[str, ...], default: str) -> str:
    value = text.get(name, default).lower()
    if value not in allowed:
        raise _refused(name, f"{text[name][:40]!r} is not one of {', '.join(allowed)}")
    return value


def _flag(text: Mapping[str, str], name: str) -> bool:
    value = text.get(name, "false").lower()
    if value not in _TRUE + _FALSE:
        raise _refused(name, f"{text[name][:40]!r} is not true or false")
    return value in _TRUE


def _ignored_hints(text: Mapping[str, str]) -> None:
    """Check the hints this server accepts and ignores, so a typo is still a 400."""
    _choice(text, "type", TYPES, "auto")
    _choice(text, "type_level", TYPE_LEVELS, "latest")
    _flag(text, "semitransparency")


def _layout(text: Mapping[str, str], fields: dict[str, str]) -> None:
    """Map add_shadow, scale, position and roi onto the operation's shadow, placement and region options.

    As at remove.bg, a scale implies position=center unless a position is given; "original" leaves the subject where
    it is and at its size.
    """
    if _flag(text, "add_shadow"):
        fields["add_shadow"] = "true"
    scale = text.get("scale", "original").lower()
    if scale != "original":
        if not _PERCENT.match(scale):
            raise _refused("scale", f"{text['scale'][:40]!r} is not 'original' or a percentage from 10% to 100%")
        fields["scale"] = str(round(float(scale[:-1])))
    position = text.get("position", "center" if scale != "original" else "original").lower()
    if position != "original":
        parts = position.split()
        if position != "center" and not (len(parts) in (1, 2) and all(_PERCENT.match(part) for part in parts)):
            raise _refused("position", f"{text['position'][:40]!r} is not 'original', 'center' or one or two "
                                       "percentages (50% 100%)")
        fields["position"] = "center" if position == "center" else \
            ",".join(str(round(float(part[:-1]))) for part in (parts * 2)[:2])
    if "roi" in text and tuple(text["roi"].split()) != WHOLE_IMAGE_ROI:
        corners = text["roi"].lower().split()
        if len(corners) != 4:
            raise _refused("roi", "give four values, x1 y1 x2 y2, in pixels or percentages (10% 10% 90% 90%)")
        fields["roi"] = ",".join(corner[:-2] if corner.endswith("px") else corner for corner in corners)


def _margin(value: str) -> int:
    """Return crop_margin in pixels: one, two or four values as remove.bg takes them, all the same here."""
    parts = value.replace(",", " ").split()
    if len(parts) not in (1, 2, 4):
        raise _refused("crop_margin", "give one, two or four values, like 30px or 10px 20px")
    if any(_PERCENT.match(part) for part in parts):
        raise _refused("crop_margin", "margins relative to the subject (10%) are not supported here; give pixels "
                                      "(30px)")
    matches = [_PIXELS.match(part.lower()) for part in parts]
    if not all(matches):
        raise _refused("crop_margin", f"{value[:40]!r} is not a margin like 30px")
    pixels = {int(match.group(1)) for match in matches if match}
    if len(pixels) > 1:
        raise _refused("crop_margin", "different margins per side are not supported here; give one value")
    margin = pixels.pop()
    if margin > MAX_MARGIN_PIXELS:
        raise _refused("crop_margin", f"at most {MAX_MARGIN_PIXELS}px")
    return margin


def _background(text: Mapping[str, str], fields: dict[str, str], files: Mapping[str, FileStorage]) -> bool:
    """Put bg_color or the background picture's URL into the fields; True when a background was given."""
    if "bg_color" in text:
        fields["bg_color"] = _colour(text["bg_color"])
    if "bg_image_url" in text:
        fields["bg_image_url"] = text["bg_image_url"]
    return bool({"bg_color", "bg_image_url"} & set(text) or "bg_image_file" in files)


def _colour(value: str) -> str:
    """Return a hex colour for remove.bg's bg_color: hex with or without '#', or a colour name ("green")."""
    if _HEX.match(value):
        return value if value.startswith("#") else f"#{value}"
    try:
        return "#" + "".join(f"{channel:02x}" for channel in ImageColor.getrgb(value))
    except ValueError:
        raise _refused("bg_color", f"{value[:40]!r} is neither a hex colour (81d4fa, #81d4fa77) nor a colour "
                                   "name") from None


def _opaque(fields: Mapping[str, str]) -> bool:
    """Return whether the background hides the photo's own everywhere: a picture, or a colour without alpha."""
    colour = fields.get("bg_color")
    if colour is None:
        return True
    digits = colour.lstrip("#").lower()
    if len(digits) == 4:
        return digits[3] == "f"
    return len(digits) != 8 or digits[6:] == "ff"


def _photo(text: Mapping[str, str], files: Mapping[str, FileStorage], fields: dict[str, str]) -> FileStorage | None:
    """Return the photo's file (image_file, or image_file_b64 decoded); put image_url into the fields."""
    given = [name for name in PHOTO_FIELDS if name in text or name in files]
    if not given:
        raise _refused("image_file", "give the photo as image_file, image_file_b64 or image_url")
    if len(given) > 1:
        raise _refused(given[1], f"give the photo once: {given[0]} or {given[1]}, not both")
    if "image_url" in text:
        fields["image_url"] = text["image_url"]
        return None
    if "image_file" in files:
        return files["image_file"]
    return FileStorage(io.BytesIO(_base64(text["image_file_b64"])), filename="image_file_b64",
                       name="image_file_b64")


def _base64(value: str) -> bytes:
    """Decode image_file_b64 (a data: URL's prefix allowed, whitespace ignored); 400 when it is not base64."""
    if value.startswith("data:"):
        value = value.partition(",")[2]
    try:
        return base64.b64decode("".join(value.split()), validate=True)
    except (binascii.Error, ValueError):
        raise _refused("image_file_b64", "not base64") from None
