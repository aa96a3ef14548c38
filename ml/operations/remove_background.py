"""remove_background: the subject cut out with U²-Net, as a cutout, a mask, or on a colour, a blur or a picture."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from ml.edits.placement import parse_canvas, parse_position, parse_roi, roi_box
from ml.operations.base import IMAGE_FORMAT_LABELS, Attachment, ImageFormat, InvalidOptions, Limits, Operation, \
    Options, Output, WholeNumber, choice
from ml.operations.colours import BACKGROUND_PRESETS, COLOUR_DETAILS, MAX_COLOUR_LENGTH, parse_colour
from ml.operations.keep import KEEP_DESCRIPTION, KEEP_DETAILS, keep_work, normalise_keep
from ml.operations.mask_model import MASK_MODEL_SCHEMA, MASK_MODELS, MaskModel, alpha_matting_field, \
    background_threshold_field, check_matting, erode_size_field, estimate_foreground_field, foreground_threshold_field

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
    alpha_matting: bool = alpha_matting_field()
    alpha_matting_foreground_threshold: WholeNumber = foreground_threshold_field()
    alpha_matting_background_threshold: WholeNumber = background_threshold_field()
    alpha_matting_erode_size: WholeNumber = erode_size_field()
    estimate_foreground: bool = estimate_foreground_field()
    add_shadow: bool = Field(False, title="Shadow",
                             description="a soft shadow of the subject's own shape behind it, so a product does not "
                                         "float")
    shadow_opacity: WholeNumber = Field(50, ge=0, le=100, title="Shadow opacity (%)",
                                        description="how dark the shadow is: 100 is black",
                                        json_schema_extra={"x-requires": {"add_shadow": True}})
    shadow_blur: WholeNumber = Field(4, ge=0, le=30, title="Shadow softness (% of the subject's height)",
                                     description="how far the shadow's edge fades",
                                     json_schema_extra={"x-requires": {"add_shadow": True}})
    shadow_offset_x: WholeNumber = Field(0, ge=-50, le=50, title="Shadow offset right (% of the subject's height)",
                                         description="how far right the shadow falls (negative: left)",
                                         json_schema_extra={"x-requires": {"add_shadow": True}})
    shadow_offset_y: WholeNumber = Field(2, ge=-50, le=50, title="Shadow offset down (% of the subject's height)",
                                         description="how far down the shadow falls (negative: up)",
                                         json_schema_extra={"x-requires": {"add_shadow": True}})
    canvas: str | None = Field(
        None, title="Canvas", max_length=20,
        description="the output's size, 1200x800 (pixels), or an aspect ratio, 1:1, covering the photo; none: the "
                    "photo's size")
    position: str = Field(
        "original", title="Subject position", max_length=20,
        description="original (where it was), center, or X,Y percentages of the free space (0,100: bottom left)")
    scale: WholeNumber = Field(
        100, ge=10, le=100, title="Subject size (%)",
        description="the subject's size: with a position, the % of the canvas (within the padding) it fills; with "
                    "original, the % of its own size")
    padding: WholeNumber = Field(
        0, ge=0, le=40, title="Padding (% of the canvas)",
        description="space kept free on each side of the canvas when the subject is positioned")
    roi: str | None = Field(
        None, title="Region of interest", max_length=60,
        description="look for the subject only inside x1,y1,x2,y2, in pixels or percentages (10%,10%,90%,90%)")
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

    @field_validator("canvas")
    @classmethod
    def _canvas(cls, value: str | None) -> str | None:
        if value is not None:
            parse_canvas(value)
        return value.strip().lower() if value else None

    @field_validator("position")
    @classmethod
    def _position(cls, value: str) -> str:
        parse_position(value)
        return value.strip().lower()

    @field_validator("roi")
    @classmethod
    def _roi(cls, value: str | None) -> str | None:
        if value is not None:
            parse_roi(value)
        return value.strip() if value else None

    @field_validator("keep")
    @classmethod
    def _keep(cls, value: str) -> str:
        return normalise_keep(value)

    @model_validator(mode="after")
    def _consistent(self) -> "RemoveBackgroundOptions":
        check_matting(self)
        if self.crop and self.placed:
            raise ValueError("crop: choose crop (the subject's box) or a canvas, position or scale, not both")
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
    def placed(self) -> bool:
        """Return True when the subject is moved onto a canvas (a canvas, a position or a scale was asked for)."""
        return self.canvas is not None or self.position != "original" or self.scale != 100

    @property
    def on_background(self) -> bool:
        """Return True when the cutout lands on a colour, a blur or a picture (foreground estimation's default)."""
        return self.output == "cutout" and (self.blur > 0 or self.background is not None or self.bg_image)

    @property
    def max_output_pixels(self) -> int | None:
        """Return the size preset's pixel budget for the output, None for the photo's own size."""
        return SIZES[self.size]

    @property
    def background(self) -> tuple[int, int, int, int] | None:
        """Return the background colour as RGBA, or None for transparent."""
        return parse_colour(self.bg_color) if self.bg_color else None


def output_size(options: RemoveBackgroundOptions, width: int, height: int) -> tuple[int, int]:
    """Return the largest image a run makes: the photo, a canvas, or a crop whose margin reaches past the photo."""
    if options.canvas is not None:
        return parse_canvas(options.canvas).size(width, height)
    if options.crop:
        return width + 2 * options.margin, height + 2 * options.margin
    return width, height


def check(options: RemoveBackgroundOptions, width: int, height: int, limits: Limits) -> None:
    """Refuse a region of interest that is empty or reaches past the photo."""
    if options.roi is not None:
        try:
            roi_box(options.roi, width, height)
        except ValueError as error:
            raise InvalidOptions("roi", str(error)) from None


def grown_by(options: RemoveBackgroundOptions) -> str:
    """Return the option that made the output larger than the photo: the canvas, or the crop's margin."""
    return "canvas" if options.canvas is not None else "margin"


OPERATION = Operation(
    name="remove_background",
    title="Remove background",
    description="Cut the subject out: a transparent cutout, a mask, or the subject on a colour, a blur or a picture.",
    options=RemoveBackgroundOptions,
    run="ml.runs.remove_background:run",
    outputs=(Output("result", "image", "the cutout, or the mask, at the photo's size unless cropped or resized"),),
    models=MASK_MODELS, output_size=output_size, check=check, grown_by=grown_by,
    # keep finds the objects first, then outlines each one (ml/operations/keep.py).
    helper_models=lambda options: ("nanodet",) if options.keep else (), work=keep_work,
    attachments=(Attachment("bg_image", "Background image",
                            "a picture to put behind the cutout, scaled and cropped to cover it (not with a "
                            "background colour or blur)"),),
)
