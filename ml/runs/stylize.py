"""stylize's run: the style weights, the network at its working size, then the strength and the region."""

from __future__ import annotations

from ml.edits.matting import refine
from ml.models.style26.infer import apply, style_weights, stylize
from ml.models.u2net.infer import predict_mask
from ml.operations.base import Inputs, Result
from ml.operations.stylize import SLUGS, StylizeOptions
from ml.runner import RunContext


def run(inputs: Inputs, options: StylizeOptions, context: RunContext) -> Result:
    """Paint the photo as the options say."""
    second = SLUGS.index(options.blend_with) if options.blend_with != "none" else None
    weights = style_weights(SLUGS.index(options.style), second, options.blend if second is not None else 100)
    painted = stylize(inputs.photo, context.session(options.model), weights, working_size=options.working_size,
                      progress=context.part(10, 80))
    mask, photo = None, inputs.photo
    if options.apply_to != "all":
        context.progress(82, "finding the subject")
        mask = predict_mask(photo, context.session(options.mask_model))
        # The sharp subject is put on a painted background: its edge takes the subject's colours (not when the
        # subject is painted on its own old background).
        photo, mask = refine(photo, mask, options, placed=options.apply_to == "background")
    context.progress(90, "blending")
    return Result(apply(photo, painted, strength=options.strength, mask=mask, apply_to=options.apply_to,
                        feather=options.feather))
