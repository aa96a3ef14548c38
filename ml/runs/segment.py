"""segment's run: each object NanoDet finds, outlined by the subject model run inside its box (ml/edits/segments.py),
returned as COCO RLE masks with a preview colouring each one."""

from __future__ import annotations

from ml.edits.coco_rle import encode_rle
from ml.edits.segments import draw_segments, object_masks
from ml.models.u2net.infer import predict_mask
from ml.operations.base import Inputs, Result
from ml.operations.segment import SegmentOptions
from ml.runner import RunContext
from ml.runs.detect import detected_objects


def run(inputs: Inputs, options: SegmentOptions, context: RunContext) -> Result:
    """Return each object's label, score, box and mask (COCO RLE) as JSON, and a preview colouring each one."""
    detections = detected_objects(inputs, options, context)[:options.max_objects]
    session = context.session(options.mask_model)
    objects = object_masks(inputs.photo, detections, lambda crop: predict_mask(crop, session), context.part(60, 90))
    context.progress(90, "drawing the preview")
    threshold = round(options.mask_threshold * 255 / 100)
    width, height = inputs.photo.size
    items = [{"index": index, **item.detection.to_dict(), "area": int(item.binary(threshold).sum()),
              "mask": encode_rle(item.full((width, height), threshold))} for index, item in enumerate(objects)]
    data = {"width": width, "height": height, "count": len(items), "objects": items}
    return Result(data, {"preview": draw_segments(inputs.photo, objects, threshold)})
