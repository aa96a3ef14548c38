"""detect's run: the objects NanoDet finds, as JSON, and a preview with their labelled boxes.

detected_objects is where smart_crop starts too: the detector run as the options say.
"""

from __future__ import annotations

from ml.models.nanodet.infer import detect_objects, draw_detections
from ml.operations.base import Inputs, Result
from ml.operations.detect import DetectionOptions
from ml.runner import RunContext


def detected_objects(inputs: Inputs, options: DetectionOptions, context: RunContext) -> list:
    """Detect the objects as the options say, reporting progress from 10 to 60."""
    return detect_objects(inputs.photo, context.session(options.model), score_threshold=options.score_threshold / 100,
                          classes=options.class_set, progress=context.part(10, 60))


def run(inputs: Inputs, options: DetectionOptions, context: RunContext) -> Result:
    """Return the objects found as JSON, and a preview with their labelled boxes."""
    objects = detected_objects(inputs, options, context)
    context.progress(80, "drawing the preview")
    data = {"count": len(objects), "objects": [item.to_dict() for item in objects]}
    return Result(data, {"preview": draw_detections(inputs.photo, objects)})
