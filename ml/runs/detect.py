"""The object operations' runs: detect with NanoDet, then report, or crop to the main subject."""

from __future__ import annotations

from ml.models.nanodet.infer import detect_objects, draw_detections, main_object, smart_crop as cut, smart_crop_box
from ml.operations.base import Inputs, Result
from ml.operations.detect import DetectionOptions, SmartCropOptions
from ml.runner import RunContext
from ml.models.u2net.infer import predict_mask


def _objects(inputs: Inputs, options: DetectionOptions, context: RunContext) -> list:
    return detect_objects(inputs.photo, context.session(options.model), score_threshold=options.score_threshold / 100,
                          classes=options.class_set, progress=context.part(10, 60))


def detect(inputs: Inputs, options: DetectionOptions, context: RunContext) -> Result:
    """Return the objects found as JSON, and a preview with their labelled boxes."""
    objects = _objects(inputs, options, context)
    context.progress(80, "drawing the preview")
    data = {"count": len(objects), "objects": [item.to_dict() for item in objects]}
    return Result(data, {"preview": draw_detections(inputs.photo, objects)})


def smart_crop(inputs: Inputs, options: SmartCropOptions, context: RunContext) -> Result:
    """Crop to the main object at the aspect ratio, or to the subject mask when no object is found."""
    objects = _objects(inputs, options, context)
    mask = None
    if main_object(objects) is None:
        context.progress(65, "nothing detected: finding the subject")
        mask = predict_mask(inputs.photo, context.session(options.mask_model))
    width, height = (int(side) for side in options.aspect.split(":"))
    choice = smart_crop_box(inputs.photo.size, objects, mask, (width, height), margin=options.margin / 100)
    context.progress(90, "cropping")
    return Result(cut(inputs.photo, choice.box), {"crop": choice.to_dict()})
