"""smart_crop: the photo cropped to its main subject at the aspect ratio asked, for listings and social posts."""

from __future__ import annotations

from pydantic import Field

from ml.operations.base import IMAGE_FORMAT_LABELS, ImageFormat, Operation, Output, WholeNumber, choice
from ml.operations.detect import DetectionOptions
from ml.operations.mask_model import MaskModel

ASPECTS = ("1:1", "4:5", "5:4", "3:4", "4:3", "2:3", "3:2", "16:9", "9:16")
Aspect = choice(*ASPECTS)


class SmartCropOptions(DetectionOptions):
    """Options of smart_crop."""

    aspect: Aspect = Field("1:1", title="Aspect ratio",
                           description="the crop's shape: 1:1 for a square listing, 4:5 for a portrait post, 16:9 "
                                       "for a banner")
    margin: WholeNumber = Field(10, ge=0, le=50, title="Margin (% of the subject)",
                                description="space kept around the subject on each side, shrunk to stay in the photo")
    mask_model: MaskModel = Field("u2netp", title="Subject model",
                                  description="finds the subject when no object is detected")
    format: ImageFormat = Field("jpeg", title="Format", description="the crop's file format",
                                json_schema_extra={"x-labels": IMAGE_FORMAT_LABELS})


OPERATION = Operation(
    name="smart_crop", title="Smart crop",
    description="Crop the photo to its main subject at the aspect ratio you choose, for listings and social posts.",
    options=SmartCropOptions, run="ml.runs.smart_crop:run",
    outputs=(Output("result", "image", "the crop, at the photo's resolution"),
             Output("crop", "json", '{"box", "basis": "object", "mask" or "centre", "subject", "label"}: what the '
                                    "crop holds and why")),
    models=("nanodet",),
    helper_models=lambda options: (options.mask_model,),
)
