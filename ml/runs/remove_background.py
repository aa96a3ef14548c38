"""remove_background's run: the subject mask from a U²-Net model, then the requested output composed from it."""

from __future__ import annotations

from PIL import Image

from ml.edits.compose import compose
from ml.models.u2net.infer import predict_mask
from ml.operations.base import Inputs, Result
from ml.operations.remove_background import RemoveBackgroundOptions
from ml.runner import RunContext
from ml.runs.keep import kept_mask


def run(inputs: Inputs, options: RemoveBackgroundOptions, context: RunContext) -> Result:
    """Cut the subject out of the photo as the options say."""
    session = context.session(options.model)
    context.progress(10, "finding the subject")
    if options.keep:
        mask = kept_mask(inputs.photo, options.keep, session, context)
    else:
        mask = predict_mask(inputs.photo, session)
    context.progress(70, "composing the result")
    background: Image.Image | None = inputs.attachments.get("bg_image") if options.uses_background_image else None
    return Result(compose(inputs.photo, mask, options, background))
