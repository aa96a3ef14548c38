"""smart_crop: the photo cropped to its main subject at the aspect ratio asked, for listings and social posts."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from ml.operations.base import IMAGE_FORMAT_LABELS, ImageFormat, Operation, Output, WholeNumber, choice
from ml.operations.detect import DetectionOptions
from ml.operations.colours import COLOUR_DETAILS, FILL_PRESETS, MAX_COLOUR_LENGTH, parse_colour
from ml.operations.mask_model import MASK_MODEL_SCHEMA, MaskModel

ASPECTS = ("1:1", "4:5", "5:4", "3:4", "4:3", "2:3", "3:2", "16:9", "9:16")
Aspect = choice(*ASPECTS)
Fill = choice("none", "blur", "color", aliases={"colour": "color"})


class SmartCropOptions(DetectionOptions):
    """Options of smart_crop."""

    aspect: Aspect = Field("1:1", title="Aspect ratio",
                           description="the crop's shape: 1:1 for a square listing, 4:5 for a portrait post, 16:9 "
                                       "for a banner")
    margin: WholeNumber = Field(10, ge=0, le=50, title="Margin (% of the subject)",
                                description="space kept around the subject on each side, shrunk to stay in the photo")
    fill: Fill = Field("none", title="When the subject does not fit",
                       description="crop inside the photo, keeping its most important part (people and animals "
                                   "first), or extend the photo past its edges to hold the whole subject, with a "
                                   "blurred copy of the photo or a colour",
                       json_schema_extra={"x-details": "none crops inside the photo; blur and color extend it, "
                                                       "color with fill_color",
                                          "x-labels": {"none": "Crop inside the photo",
                                                       "blur": "Extend with a blurred backdrop",
                                                       "color": "Extend with a colour"}})
    fill_color: str = Field("#ffffff", title="Fill colour", max_length=MAX_COLOUR_LENGTH,
                            json_schema_extra={"format": "color", "x-requires": {"fill": "color"},
                                               "x-presets": FILL_PRESETS, "x-details": COLOUR_DETAILS},
                            description="the colour past the photo's edges, by name (white) or picked")
    mask_model: MaskModel = Field("u2netp", title="Subject finder", json_schema_extra=MASK_MODEL_SCHEMA,
                                  description="finds the subject: it weighs in beside the detected objects, and "
                                              "is the subject alone when no object is detected")
    format: ImageFormat = Field("jpeg", title="Format", description="the crop's file format",
                                json_schema_extra={"x-labels": IMAGE_FORMAT_LABELS})

    @field_validator("fill_color")
    @classmethod
    def _colour(cls, value: str) -> str:
        red, green, blue, alpha = parse_colour(value)
        return f"#{red:02x}{green:02x}{blue:02x}{alpha:02x}"

    @model_validator(mode="after")
    def _opaque_for_jpeg(self) -> "SmartCropOptions":
        if self.format == "jpeg" and self.fill == "color" and self.fill_rgba[3] < 255:
            raise ValueError("fill_color: JPEG has no transparency: give an opaque fill_color or the png format")
        return self

    @property
    def fill_rgba(self) -> tuple[int, int, int, int]:
        """Return fill_color as RGBA."""
        return parse_colour(self.fill_color)


def crop_size(options: SmartCropOptions, width: int, height: int) -> tuple[int, int]:
    """Return the largest crop a run can make: the photo itself, or with a fill the shape around the whole photo."""
    if options.fill == "none":
        return width, height
    across, down = (int(side) for side in options.aspect.split(":"))
    units = max(-(-width // across), -(-height // down))
    return units * across, units * down


OPERATION = Operation(
    name="smart_crop", title="Smart crop",
    description="Crop the photo to its main subject at the aspect ratio you choose, for listings and social posts; "
                "when the subject does not fit that shape, keep its most important part, or extend the photo.",
    options=SmartCropOptions, run="ml.runs.smart_crop:run",
    outputs=(Output("result", "image", "the crop, at the photo's resolution"),
             Output("crop", "json", '{"box", "basis": "object", "mask" or "centre", "subject", "label", "whole"}: '
                                    "what the crop holds and why, and whether it holds all of the subject")),
    models=("nanodet",), output_size=crop_size,
    helper_models=lambda options: (options.mask_model,),
)
