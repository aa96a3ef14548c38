"""faces: every face found, its box, five landmarks and confidence, as JSON, with a preview.

FaceOptions, the MTCNN detector's options (smallest face, confidence), are what every face operation (anonymize,
beautify, id_photo) starts from: each finds the faces as this operation does, then works on them.
"""

from __future__ import annotations

from pydantic import Field

from ml.operations.base import Operation, Options, Output, WholeNumber, choice

FaceModel = choice("mtcnn")


class FaceOptions(Options):
    """What every face operation asks of the detector."""

    model: FaceModel = Field("mtcnn", title="Model", description="a face detector that also finds eyes, nose and mouth",
                             json_schema_extra={"x-details": "MTCNN, a cascade of three networks (P-Net, R-Net and "
                                                             "O-Net) over an image pyramid"})
    min_face_size: WholeNumber = Field(20, ge=10, le=1000, title="Smallest face (pixels)",
                                       description="faces smaller than this, in photo pixels, are not looked for "
                                                   "(smaller is slower)")
    confidence: WholeNumber = Field(70, ge=50, le=99, title="Confidence (%)",
                                    description="how sure the detector must be that it is a face",
                                    json_schema_extra={"x-details": "the score of MTCNN's last stage (O-Net)"})


class FindFacesOptions(FaceOptions):
    """Options of faces."""


# MTCNN's first stage scans the photo at 12 / min_face_size of its size and then at 0.709 of each level before
# (ml/models/mtcnn/infer.py): its pixels are the photo's times the sum of the squared scales.
DETECTOR_WINDOW = 12
PYRAMID_FACTOR = 0.709


def detector_work(options: FaceOptions, width: int, height: int) -> int:
    """Return the pixels the detector's image pyramid scans for a photo of this size."""
    first = (DETECTOR_WINDOW / options.min_face_size) ** 2
    return int(width * height * first / (1 - PYRAMID_FACTOR ** 2))


OPERATION = Operation(
    name="faces", title="Find faces",
    description="Find every face: its box, five landmarks (eyes, nose, mouth corners) and confidence, as JSON, with "
                "a preview.",
    options=FindFacesOptions, run="ml.runs.faces:run",
    outputs=(Output("result", "json", '{"count", "faces": [{"box": [x1, y1, x2, y2], "landmarks", "confidence"}]} '
                                      "in photo pixels"),
             Output("preview", "image", "the photo with each face's box and landmarks drawn", image_format="jpeg")),
    models=("mtcnn",), work=detector_work,
)
