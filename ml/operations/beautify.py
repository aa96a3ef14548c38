"""beautify: the skin of every face smoothed, eyes, brows and lips kept sharp."""

from __future__ import annotations

from pydantic import Field

from ml.operations.base import IMAGE_FORMAT_LABELS, ImageFormat, Operation, Output, WholeNumber
from ml.operations.faces import FaceOptions, detector_work


class BeautifyOptions(FaceOptions):
    """Options of beautify."""

    strength: WholeNumber = Field(50, ge=0, le=100, title="Strength",
                                  description="how much the skin is smoothed; eyes, brows and lips stay sharp")
    format: ImageFormat = Field("jpeg", title="Format", description="the result's file format",
                                json_schema_extra={"x-labels": IMAGE_FORMAT_LABELS})


OPERATION = Operation(
    name="beautify", title="Smooth skin",
    description="Smooth the skin of every face, eyes, brows and lips kept sharp, blended into the rest of the photo.",
    options=BeautifyOptions, run="ml.runs.beautify:run",
    outputs=(Output("result", "image", "the photo with smoothed skin"),
             Output("faces", "json", '{"count", "faces": [...]}: the faces that were smoothed')),
    models=("mtcnn",), work=detector_work,
)
