"""The object operations' declarations: find COCO's 80 kinds of objects, and crop a photo to its main subject."""

from __future__ import annotations

from pydantic import Field, field_validator

from ml.models.nanodet.classes import COCO_CLASSES
from ml.operations.base import IMAGE_FORMAT_LABELS, ImageFormat, Operation, Options, Output, WholeNumber, choice
from ml.operations.remove_background import U2NET_MODELS

DetectorModel = choice("nanodet")
MaskModel = choice(*U2NET_MODELS)
ASPECTS = ("1:1", "4:5", "5:4", "3:4", "4:3", "2:3", "3:2", "16:9", "9:16")
Aspect = choice(*ASPECTS)


class DetectionOptions(Options):
    """What the object operations ask of the detector."""

    model: DetectorModel = Field("nanodet", title="Model",
                                 description="the NanoDet-g detector of COCO's 80 kinds of objects")
    classes: str = Field("", max_length=100, title="Objects to keep",
                         description="COCO class names separated by commas (person, dog, bicycle...); empty: all")
    score_threshold: WholeNumber = Field(30, ge=5, le=95, title="Score threshold (%)",
                                         description="how sure the detector must be that an object is there")

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value: str) -> str:
        names = [name.strip().lower() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in COCO_CLASSES]
        if unknown:
            raise ValueError(f"{unknown[0][:30]!r} is not one of COCO's classes (person, car, dog, ...)")
        return ", ".join(dict.fromkeys(names))

    @property
    def class_set(self) -> set[str] | None:
        """Return the classes to keep, None for all."""
        return {name.strip() for name in self.classes.split(",") if name.strip()} or None


class DetectOptions(DetectionOptions):
    """Options of detect."""


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


DETECT = Operation(
    name="detect", title="Find objects",
    description="Find the objects in the photo (80 kinds: people, animals, vehicles, food, furniture...), as JSON, "
                "with a labelled preview.",
    options=DetectOptions, run="ml.runs.detect:detect",
    outputs=(Output("result", "json", '{"count", "objects": [{"label", "box": [x1, y1, x2, y2], "score"}]} in '
                                      "photo pixels, best score first"),
             Output("preview", "image", "the photo with labelled boxes", image_format="jpeg")),
    models=("nanodet",),
)
SMART_CROP = Operation(
    name="smart_crop", title="Smart crop",
    description="Crop the photo to its main subject at the aspect ratio you choose, for listings and social posts.",
    options=SmartCropOptions, run="ml.runs.detect:smart_crop",
    outputs=(Output("result", "image", "the crop, at the photo's resolution"),
             Output("crop", "json", '{"box", "basis": "object", "mask" or "centre", "subject", "label"}: what the '
                                    "crop holds and why")),
    models=("nanodet",),
    helper_models=lambda options: (options.mask_model,),
)
