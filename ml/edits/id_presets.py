"""Passport and visa photo standards, without torch: the id_photo operation's options name them."""

from __future__ import annotations

from dataclasses import dataclass

MM_PER_INCH = 25.4
DEFAULT_PRESET = "eu_uk_passport"
DEFAULT_DPI = 300
DPI_CHOICES = (300, 600)
# The print sheet: a 10x15 cm page, landscape, copies 2 mm apart.
SHEET_MM = (150.0, 100.0)
SHEET_GAP_MM = 2.0
BACKGROUNDS = {"white": (255, 255, 255), "light_grey": (235, 235, 235), "light_blue": (214, 232, 248)}


@dataclass(frozen=True)
class IdPreset:
    """A photo standard: paper size, head height (chin to crown) and where the head sits, all in millimetres."""

    title: str
    size_mm: tuple[float, float]
    head_mm: tuple[float, float]
    description: str
    # Either the eye line's height above the bottom edge, or the gap between the top edge and the crown.
    eyes_from_bottom_mm: tuple[float, float] | None = None
    crown_margin_mm: tuple[float, float] | None = None

    def pixels(self, dpi: int) -> tuple[int, int]:
        """Return the photo's width and height in pixels at a resolution."""
        return round(self.size_mm[0] / MM_PER_INCH * dpi), round(self.size_mm[1] / MM_PER_INCH * dpi)


def sheet_pixels(dpi: int) -> tuple[int, int]:
    """Return the print sheet's width and height in pixels at a resolution."""
    return round(SHEET_MM[0] / MM_PER_INCH * dpi), round(SHEET_MM[1] / MM_PER_INCH * dpi)


ID_PRESETS: dict[str, IdPreset] = {
    "eu_uk_passport": IdPreset(
        "EU/UK passport (35x45 mm)", (35.0, 45.0), (32.0, 36.0),
        "35x45 mm, chin to crown 32-36 mm, head centred with 3-6 mm above the crown (ICAO 9303 layout used across "
        "the EU and the UK)", crown_margin_mm=(3.0, 6.0)),
    "us_passport": IdPreset(
        "US passport and visa (2x2 in)", (50.8, 50.8), (25.4, 34.925),
        "2x2 in, head 1-1 3/8 in from chin to crown, eyes 1 1/8-1 3/8 in above the bottom edge (US Department of "
        "State)", eyes_from_bottom_mm=(28.575, 34.925)),
    "china_visa": IdPreset(
        "China visa (33x48 mm)", (33.0, 48.0), (28.0, 33.0),
        "33x48 mm, head 28-33 mm from chin to crown, 3-5 mm between the crown and the top edge (Chinese visa "
        "photo rules)", crown_margin_mm=(3.0, 5.0)),
}
