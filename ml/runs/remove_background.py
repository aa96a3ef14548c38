"""remove_background's run: the subject mask from a U²-Net model (inside the region of interest, when given), then
the requested output composed from it."""

from __future__ import annotations

from PIL import Image

from ml.edits.compose import compose
from ml.edits.placement import roi_box
from ml.models.u2net.infer import predict_mask
from ml.operations.base import Inputs, Result
from ml.operations.remove_background import RemoveBackgroundOptions
from ml.runner import RunContext
from ml.runs.keep import kept_mask
from ml.sessions import ModelSession


def run(inputs: Inputs, options: RemoveBackgroundOptions, context: RunContext) -> Result:
    """Cut the subject out of the photo as the options say."""
    session = context.session(options.model)
    context.progress(10, "finding the subject")
    if options.keep:
        mask = kept_mask(inputs.photo, options.keep, session, context)
    else:
        mask = subject_mask(inputs.photo, session, options.roi)
    context.progress(60, "refining the edge and composing the result"
                     if options.alpha_matting else "composing the result")
    background: Image.Image | None = inputs.attachments.get("bg_image") if options.uses_background_image else None
    return Result(compose(inputs.photo, mask, options, background))


def subject_mask(photo: Image.Image, session: ModelSession, roi: str | None) -> Image.Image:
    """Return the subject mask; with a region of interest, the model sees only the region and the rest is 0."""
    if roi is None:
        return predict_mask(photo, session)
    box = roi_box(roi, *photo.size)
    mask = Image.new("L", photo.size, 0)
    mask.paste(predict_mask(photo.crop(box), session), box[:2])
    return mask
