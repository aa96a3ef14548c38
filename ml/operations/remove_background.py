"""remove_background: the subject cut out with U²-Net, as a cutout, a mask, or on a colour, a blur or a picture."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from ml.operations.base import IMAGE_FORMAT_LABELS, Attachment, ImageFormat, Operation, Options, Output, WholeNumber, \
    choice
from ml.operations.colours import BACKGROUND_PRESETS, COLOUR_DETAILS, MAX_COLOUR_LENGTH, parse_colour
from ml.operations.keep import KEEP_DESCRIPTION, KEEP_DETAILS, keep_work, normalise_keep
from ml.operations.mask_model import MASK_MODEL_SCHEMA, MASK_MODELS, MaskModel

# Output size presets as remove.bg names them: the most pixels an output may have (None: the photo's own size).
SIZES: dict[str, int | None] = {"full": None, "4k": 10_000_000, "hd": 4_000_000, "medium": 1_500_000,
                                "preview": 250_000}
OutputKind = choice("cutout", "mask")
SizePreset = choice(*SIZES)
# parse_colour is imported here too: callers of this module's colour rules keep finding it.
__all__ = ["OPERATION", "RemoveBackgroundOptions", "SIZES", "parse_colour"]


class RemoveBackgroundOptions(Options):
    """Options of remove_background."""

    model: MaskModel = Field("u2netp", title="Model", description="Fast is quick; Accurate follows edges better",
                             json_schema_extra=MASK_MODEL_SCHEMA)
    output: OutputKind = Field(
        "cutout", title="Output", description="the subject on a transparent background, or the mask itself",
        json_schema_extra={"x-labels": {"cutout": "Cutout (subject only)", "mask": "Mask (black and white)"}})
    format: ImageFormat = Field(
        "png", title="Format", description="JPEG has no transparency: give it an opaque background colour or a blur",
        json_schema_extra={"x-labels": IMAGE_FORMAT_LABELS})
    bg_color: str | None = Field(
        None, title="Background colour", max_length=MAX_COLOUR_LENGTH,
        json_schema_extra={"format": "color", "x-presets": BACKGROUND_PRESETS, "x-requires": {"output": "cutout"},
                           "x-details": COLOUR_DETAILS},
        description="a colour behind the subject, by name (white) or picked; empty keeps it transparent")
    blur: WholeNumber = Field(
        0, ge=0, le=100, title="Background blur", json_schema_extra={"x-requires": {"output": "cutout"}},
        description="keep the photo's own background, blurred this much (0: no blur)")
    crop: bool = Field(False, title="Crop to the subject", description="crop the result to the subject's box")
    margin: WholeNumber = Field(
        0, ge=0, le=2000, title="Margin (pixels)", json_schema_extra={"x-requires": {"crop": True}},
        description="space kept around the cropped subject; may reach past the photo")
    size: SizePreset = Field(
        "full", title="Output size",
        description="the result's size: the photo's own, or smaller for the web",
        json_schema_extra={"x-details": "at most 10 (4k), 4 (hd), 1.5 (medium) or 0.25 (preview) megapixels, scaled "
                                        "down with Lanczos resampling",
                           "x-labels": {"full": "Full resolution", "4k": "4K (up to 10 MP)", "hd": "HD (up to 4 MP)",
                                        "medium": "Medium (up to 1.5 MP)", "preview": "Preview (up to 0.25 MP)"}})
    post_process: bool = Field(
        False, title="Clean the edges", description="remove stray specks and make the edges crisp",
        json_schema_extra={"x-details": "the mask is cleaned as rembg's post_process does it: an opening to drop "
                                        "specks, then a blur and a threshold to harden the edges"})
    keep: str = Field("", max_length=100, title="Objects to keep", description=KEEP_DESCRIPTION,
                      json_schema_extra={"x-details": KEEP_DETAILS})
    bg_image: bool = Field(
        False, title="Background image", json_schema_extra={"readOnly": True},
        description="true when a background picture was attached (the bg_image file): the cutout is put on it")

    @field_validator("bg_color")
    @classmethod
    def _colour(cls, value: str | None) -> str | None:
        if value is None:
            return None
        red, green, blue, alpha = parse_colour(value)
        return f"#{red:02x}{green:02x}{blue:02x}{alpha:02x}"

    @field_validator("keep")
    @classmethod
    def _keep(cls, value: str) -> str:
        return normalise_keep(value)

    @model_validator(mode="after")
    def _consistent(self) -> "RemoveBackgroundOptions":
        if self.bg_image and (self.bg_color or self.blur):
            raise ValueError("bg_image: choose one background: an image, a colour (bg_color) or a blur, not several")
        if self.format == "jpeg" and self.output == "cutout" and not self.blur and not self.bg_image:
            if self.bg_color is None or not self.bg_color.endswith("ff"):
                raise ValueError("format: JPEG has no transparency: choose a background colour (bg_color) or a "
                                 "blur, or PNG")
        return self

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


def output_size(options: RemoveBackgroundOptions, width: int, height: int) -> tuple[int, int]:
    """Return the largest image a run makes: the photo, or a crop whose margin reaches past it on every side."""
    if options.crop:
        return width + 2 * options.margin, height + 2 * options.margin
    return width, height


OPERATION = Operation(
    name="remove_background",
    title="Remove background",
    description="Cut the subject out: a transparent cutout, a mask, or the subject on a colour, a blur or a picture.",
    options=RemoveBackgroundOptions,
    run="ml.runs.remove_background:run",
    outputs=(Output("result", "image", "the cutout, or the mask, at the photo's size unless cropped or resized"),),
    models=MASK_MODELS, output_size=output_size,
    # keep finds the objects first, then outlines each one (ml/operations/keep.py).
    helper_models=lambda options: ("nanodet",) if options.keep else (), work=keep_work,
    attachments=(Attachment("bg_image", "Background image",
                            "a picture to put behind the cutout, scaled and cropped to cover it (not with a "
                            "background colour or blur)"),),
)
