"""smart_crop's run: the main objects NanoDet finds (else the subject mask), cropped to at the aspect ratio."""

from __future__ import annotations

from ml.edits.smart_crop import smart_crop as cut, smart_crop_box
from ml.models.u2net.infer import predict_mask
from ml.operations.base import Inputs, Result
from ml.operations.smart_crop import SmartCropOptions
from ml.runner import RunContext
from ml.runs.detect import detected_objects


def run(inputs: Inputs, options: SmartCropOptions, context: RunContext) -> Result:
    """Crop to the main objects at the aspect ratio (the subject mask weighs in), or to the mask when none is found."""
    objects = detected_objects(inputs, options, context)
    context.progress(65, "finding the subject")
    mask = predict_mask(inputs.photo, context.session(options.mask_model))
    width, height = (int(side) for side in options.aspect.split(":"))
    choice = smart_crop_box(inputs.photo.size, objects, mask, (width, height), margin=options.margin / 100,
                            fit_subject=options.fill != "none")
    context.progress(90, "cropping")
    fill = options.fill_rgba if options.fill == "color" else None
    return Result(cut(inputs.photo, choice.box, fill), {"crop": choice.to_dict()})
