"""beautify's run: the faces found, then their skin smoothed."""

from __future__ import annotations

from ml.edits.faces import beautify as smooth_skin
from ml.operations.base import Inputs, Result
from ml.operations.beautify import BeautifyOptions
from ml.runner import RunContext
from ml.runs.faces import detected_faces


def run(inputs: Inputs, options: BeautifyOptions, context: RunContext) -> Result:
    """Smooth the skin of every face."""
    faces = detected_faces(inputs.photo, options, context)
    context.progress(70, "smoothing the skin")
    smoothed = smooth_skin(inputs.photo, faces, strength=options.strength)
    return Result(smoothed, {"faces": {"count": len(faces), "faces": [face.to_dict() for face in faces]}})
