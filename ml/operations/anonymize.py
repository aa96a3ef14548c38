"""anonymize: every face blurred or pixelated, for publishing photos of crowds and streets."""

from __future__ import annotations

from pydantic import Field

from ml.operations.base import IMAGE_FORMAT_LABELS, ImageFormat, Operation, Output, WholeNumber, choice
from ml.operations.faces import FaceOptions, detector_work

AnonymizeMethod = choice("blur", "pixelate")


class AnonymizeOptions(FaceOptions):
    """Options of anonymize."""

    method: AnonymizeMethod = Field("blur", title="Method", description="blur the faces, or pixelate them",
                                    json_schema_extra={"x-labels": {"blur": "Blur", "pixelate": "Pixelate"}})
    strength: WholeNumber = Field(60, ge=0, le=100, title="Strength",
                                  description="how coarse: even 0 hides the features")
    margin: WholeNumber = Field(25, ge=0, le=100, title="Margin (% of the face)",
                                description="hidden around each face, more above it, to cover the hair line and chin")
    format: ImageFormat = Field("jpeg", title="Format", description="the result's file format",
                                json_schema_extra={"x-labels": IMAGE_FORMAT_LABELS})


OPERATION = Operation(
    name="anonymize", title="Hide faces",
    description="Blur or pixelate every face, for publishing photos of crowds and streets.",
    options=AnonymizeOptions, run="ml.runs.anonymize:run",
    outputs=(Output("result", "image", "the photo with every face hidden"),
             Output("faces", "json", '{"count", "hidden": [{"box", "region", "confidence"}]}: what was hidden, in '
                                     "photo pixels")),
    models=("mtcnn",), work=detector_work,
)
