"""anonymize's run: the faces found, then each one blurred or pixelated, with what was hidden as JSON."""

from __future__ import annotations

from ml.edits.faces import anonymize as hide_faces
from ml.edits.faces import anonymized_region
from ml.operations.anonymize import AnonymizeOptions
from ml.operations.base import Inputs, Result
from ml.runner import RunContext
from ml.runs.faces import detected_faces


def run(inputs: Inputs, options: AnonymizeOptions, context: RunContext) -> Result:
    """Blur or pixelate every face; say which regions were hidden."""
    faces = detected_faces(inputs.photo, options, context)
    margin = options.margin / 100
    hidden = hide_faces(inputs.photo, faces, method=options.method, strength=options.strength, margin=margin)
    regions = [{"box": face.to_dict()["box"], "region": list(anonymized_region(face, inputs.photo.size, margin)),
                "confidence": face.to_dict()["confidence"]} for face in faces]
    return Result(hidden, {"faces": {"count": len(faces), "hidden": regions}})
