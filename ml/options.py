"""Processing options: one parser shared by the CLI, the web form and the JSON API."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Mapping

from ml.compose import OUTPUT_TYPES

OUTPUTS = tuple(OUTPUT_TYPES)
FORMATS = ("png", "webp", "jpeg")
MAX_BLUR = 100
MAX_MARGIN = 2000
# Output size presets as remove.bg names them: the most pixels an output may have (None: the photo's own size).
SIZES: dict[str, int | None] = {
    "full": None,
    "4k": 10_000_000,
    "hd": 4_000_000,
    "medium": 1_500_000,
    "preview": 250_000,
}
_HEX_COLOUR = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class InvalidOptions(ValueError):
    """Raised when a processing option is unknown, malformed or out of range."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def parse_colour(value: str) -> tuple[int, int, int, int]:
    """Parse a hex colour (#rgb, #rgba, #rrggbb or #rrggbbaa, '#' optional) into RGBA."""
    match = _HEX_COLOUR.match(value.strip())
    if not match:
        raise InvalidOptions("bg_color", f"{value[:40]!r} is not a hex colour like #ffffff or #00000080")
    digits = match.group(1)
    if len(digits) in (3, 4):
        digits = "".join(character * 2 for character in digits)
    if len(digits) == 6:
        digits += "ff"
    red, green, blue, alpha = (int(digits[index:index + 2], 16) for index in range(0, 8, 2))
    return red, green, blue, alpha


def _choice(data: Mapping[str, Any], field: str, choices: tuple[str, ...], default: str) -> str:
    value = data.get(field)
    if value is None or value == "":
        return default
    if not isinstance(value, str):
        raise InvalidOptions(field, f"must be one of {', '.join(choices)}")
    value = value.strip().lower()
    if field == "format" and value == "jpg":
        value = "jpeg"
    if value not in choices:
        raise InvalidOptions(field, f"{value[:40]!r} is not one of {', '.join(choices)}")
    return value


def _integer(data: Mapping[str, Any], field: str, low: int, high: int) -> int:
    value = data.get(field)
    if value is None or value == "":
        return 0
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise InvalidOptions(field, f"must be a whole number from {low} to {high}")
    try:
        number = int(value.strip()) if isinstance(value, str) else value
    except ValueError:
        raise InvalidOptions(field, f"must be a whole number from {low} to {high}") from None
    if not low <= number <= high:
        raise InvalidOptions(field, f"must be from {low} to {high}, got {number}")
    return number


def _flag(data: Mapping[str, Any], field: str) -> bool:
    value = data.get(field)
    if value is None or isinstance(value, bool):
        return bool(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE | _FALSE:
        return value.strip().lower() in _TRUE
    raise InvalidOptions(field, "must be true or false")


@dataclass(frozen=True)
class ProcessingOptions:
    """What to produce from a photo: which model, which output and how it is encoded."""

    model: str = "u2netp"
    output: str = "cutout"
    format: str = "png"
    bg_color: str | None = None
    blur: int = 0
    crop: bool = False
    margin: int = 0
    size: str = "full"
    post_process: bool = False
    # Set by whoever attaches the background image (the upload, the CLI's --bg-image), never typed by a user.
    bg_image: bool = False

    FIELDS = ("model", "output", "format", "bg_color", "blur", "crop", "margin", "size", "post_process", "bg_image")

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any], *, models: tuple[str, ...] | None = None,
                     default_model: str = "u2netp") -> "ProcessingOptions":
        """Validate user input (form fields, JSON or CLI flags) into options; raise InvalidOptions."""
        unknown = sorted(set(data) - set(cls.FIELDS))
        if unknown:
            raise InvalidOptions(unknown[0][:40], "is not a known option")
        model = data.get("model") or default_model
        if not isinstance(model, str) or (models is not None and model not in models):
            raise InvalidOptions("model", f"{str(model)[:40]!r} is not one of {', '.join(models or ())}")
        bg_color = data.get("bg_color")
        if bg_color in (None, ""):
            bg_color = None
        elif not isinstance(bg_color, str):
            raise InvalidOptions("bg_color", "must be a hex colour like #ffffff")
        else:
            red, green, blue, alpha = parse_colour(bg_color)
            bg_color = f"#{red:02x}{green:02x}{blue:02x}{alpha:02x}"
        options = cls(
            model=model,
            output=_choice(data, "output", OUTPUTS, "cutout"),
            format=_choice(data, "format", FORMATS, "png"),
            bg_color=bg_color,
            blur=_integer(data, "blur", 0, MAX_BLUR),
            crop=_flag(data, "crop"),
            margin=_integer(data, "margin", 0, MAX_MARGIN),
            size=_choice(data, "size", tuple(SIZES), "full"),
            post_process=_flag(data, "post_process"),
            bg_image=_flag(data, "bg_image"),
        )
        options.check_consistent()
        return options

    def check_consistent(self) -> None:
        """Refuse combinations that cannot be encoded (a transparent cutout as JPEG) or that contradict each other."""
        if self.bg_image and (self.bg_color or self.blur):
            raise InvalidOptions("bg_image", "choose one background: an image, a bg_color or a blur, not several")
        if self.format == "jpeg" and self.output == "cutout" and not self.blur and not self.bg_image:
            if self.bg_color is None or not self.bg_color.endswith("ff"):
                raise InvalidOptions("format", "JPEG has no transparency: give an opaque bg_color or a blur")

    @property
    def uses_background_image(self) -> bool:
        """Return True when the output needs the background image: a cutout with bg_image (a mask ignores it)."""
        return self.bg_image and self.output == "cutout"

    @property
    def max_output_pixels(self) -> int | None:
        """Return the size preset's pixel budget for the output, None for the photo's own size."""
        return SIZES[self.size]

    @property
    def background(self) -> tuple[int, int, int, int] | None:
        """Return the background colour as RGBA, or None for transparent."""
        return parse_colour(self.bg_color) if self.bg_color else None

    def to_dict(self) -> dict[str, Any]:
        """Return the options as plain JSON-ready data."""
        return asdict(self)
