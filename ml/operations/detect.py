"""detect: the objects in the photo, of COCO's 80 kinds, as JSON, with a labelled preview.

DetectionOptions, the NanoDet detector's options (classes kept, score threshold), are what smart_crop starts from too.
"""

from __future__ import annotations

from pydantic import Field, field_validator

from ml.models.nanodet.classes import COCO_CLASSES
from ml.operations.base import Operation, Options, Output, WholeNumber, choice

DetectorModel = choice("nanodet")


class DetectionOptions(Options):
    """What the object operations ask of the detector."""

    model: DetectorModel = Field("nanodet", title="Model",
                                 description="finds 80 kinds of everyday objects",
                                 json_schema_extra={"x-details": "NanoDet-g, trained on the COCO data set's 80 "
                                                                 "classes"})
    classes: str = Field("", max_length=100, title="Objects to keep",
                         description="kinds of objects separated by commas (person, dog, bicycle...); empty keeps all",
                         json_schema_extra={"x-details": "the class names of the COCO data set, in English: "
                                                         "person, bicycle, car, dog, cup, laptop... (80 in all; an "
                                                         "unknown name is refused)"})
    score_threshold: WholeNumber = Field(30, ge=5, le=95, title="Score threshold (%)",
                                         description="how sure the detector must be that an object is there")

    @field_validator("classes")
    @classmethod
    def _known_classes(cls, value: str) -> str:
        names = [name.strip().lower() for name in value.split(",") if name.strip()]
        unknown = [name for name in names if name not in COCO_CLASSES]
        if unknown:
            raise ValueError(f"{unknown[0][:30]!r} is not a kind of object the detector knows (person, car, dog, "
                             "...: one of COCO's classes)")
        return ", ".join(dict.fromkeys(names))

    @property
    def class_set(self) -> set[str] | None:
        """Return the classes to keep, None for all."""
        return {name.strip() for name in self.classes.split(",") if name.strip()} or None


class DetectOptions(DetectionOptions):
    """Options of detect."""


OPERATION = Operation(
    name="detect", title="Find objects",
    description="Find the objects in the photo (80 kinds: people, animals, vehicles, food, furniture...), as JSON, "
                "with a labelled preview.",
    options=DetectOptions, run="ml.runs.detect:run",
    outputs=(Output("result", "json", '{"count", "objects": [{"label", "box": [x1, y1, x2, y2], "score"}]} in '
                                      "photo pixels, best score first"),
             Output("preview", "image", "the photo with labelled boxes", image_format="jpeg")),
    models=("nanodet",),
)
