"""smart_crop's run: the main object NanoDet finds (else the subject mask), cropped to at the aspect ratio."""

from __future__ import annotations

from ml.edits.smart_crop import main_object, smart_crop as cut, smart_crop_box
from ml.models.u2net.infer import predict_mask
from ml.operations.base import Inputs, Result
from ml.operations.smart_crop import SmartCropOptions
from ml.runner import RunContext
from ml.runs.detect import detected_objects


def run(inputs: Inputs, options: SmartCropOptions, context: RunContext) -> Result:
    """Crop to the main object at the aspect ratio, or to the subject mask when no object is found."""
    objects = detected_objects(inputs, options, context)
    mask = None
    if main_object(objects) is None:
        context.progress(65, "nothing detected: finding the subject")
        mask = predict_mask(inputs.photo, context.session(options.mask_model))
    width, height = (int(side) for side in options.aspect.split(":"))
    choice = smart_crop_box(inputs.photo.size, objects, mask, (width, height), margin=options.margin / 100)
    context.progress(90, "cropping")
    return Result(cut(inputs.photo, choice.box), {"crop": choice.to_dict()})
