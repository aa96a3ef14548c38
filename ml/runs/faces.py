"""faces' run: the faces MTCNN finds, as JSON, and a preview with their boxes and landmarks.

detected_faces is where every face operation (anonymize, beautify, id_photo) starts: the detector run as the
options say.
"""

from __future__ import annotations

from PIL import Image

from ml.edits.faces import draw_faces
from ml.models.mtcnn.infer import Face, detect_faces
from ml.operations.base import Inputs, Result
from ml.operations.faces import FaceOptions
from ml.runner import RunContext


def detected_faces(image: Image.Image, options: FaceOptions, context: RunContext, end: int = 60) -> list[Face]:
    """Detect the faces as the options say, reporting progress from 10 to `end`."""
    faces = detect_faces(image, context.session(options.model), min_face_size=options.min_face_size,
                         thresholds=(0.6, 0.7, options.confidence / 100), progress=context.part(10, end))
    context.progress(end, f"found {len(faces)} face{'s' if len(faces) != 1 else ''}")
    return faces


def run(inputs: Inputs, options: FaceOptions, context: RunContext) -> Result:
    """Return every face as JSON, and a preview with their boxes and landmarks."""
    faces = detected_faces(inputs.photo, options, context, end=80)
    data = {"count": len(faces), "faces": [face.to_dict() for face in faces]}
    return Result(data, {"preview": draw_faces(inputs.photo, faces)})
