"""Colour options: a colour is a CSS name ("white", "skyblue") or a hex code, stored as #rrggbbaa.

The names are Pillow's (ImageColor.colormap, the 148 CSS colour names), the list browsers know too, so what the
colour field's picker shows is what the server paints.
"""

from __future__ import annotations

import re

from PIL import ImageColor

_HEX_COLOUR = re.compile(r"^#?([0-9a-fA-F]{3}|[0-9a-fA-F]{4}|[0-9a-fA-F]{6}|[0-9a-fA-F]{8})$")
# The longest CSS colour name ("lightgoldenrodyellow") with room to spare.
MAX_COLOUR_LENGTH = 30
COLOUR_DETAILS = ("any CSS colour name (white, black, lightgrey, skyblue...) or a hex code: #rgb, #rrggbb, or "
                  "#rrggbbaa with transparency; stored as #rrggbbaa")
# The swatches the form offers beside its colour picker: (value, label); an empty value clears the field.
BACKGROUND_PRESETS = [
    {"value": "", "label": "Transparent"}, {"value": "white", "label": "White"},
    {"value": "black", "label": "Black"}, {"value": "#f2f2f2", "label": "Light grey"},
    {"value": "#808080", "label": "Grey"}, {"value": "#fdf6e3", "label": "Cream"},
    {"value": "#dbeafe", "label": "Pale blue"}, {"value": "#fce7f3", "label": "Pale pink"},
]
FILL_PRESETS = [preset for preset in BACKGROUND_PRESETS if preset["value"]]


def parse_colour(value: str) -> tuple[int, int, int, int]:
    """Parse a colour name or hex code (#rgb, #rgba, #rrggbb, #rrggbbaa, '#' optional) into RGBA; raise
    ValueError."""
    text = value.strip()
    name = text.lower().replace(" ", "")
    if name in ImageColor.colormap:
        red, green, blue = ImageColor.getrgb(name)[:3]
        return red, green, blue, 255
    match = _HEX_COLOUR.match(text)
    if not match:
        raise ValueError(f"{value[:40]!r} is not a colour: use a name like white or black, or a hex code like "
                         "#ffffff")
    digits = match.group(1)
    if len(digits) in (3, 4):
        digits = "".join(character * 2 for character in digits)
    if len(digits) == 6:
        digits += "ff"
    red, green, blue, alpha = (int(digits[index:index + 2], 16) for index in range(0, 8, 2))
    return red, green, blue, alpha
