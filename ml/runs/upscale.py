"""upscale's run: the subject cut out first when asked, then Real-ESRGAN tile by tile, each tile reported."""

from __future__ import annotations

from PIL import ImageChops

from ml.edits.matting import refine
from ml.models.realesrgan.infer import upscale
from ml.models.u2net.infer import predict_mask
from ml.operations.base import Inputs, Result
from ml.operations.upscale import UpscaleOptions
from ml.runner import RunContext


def run(inputs: Inputs, options: UpscaleOptions, context: RunContext) -> Result:
    """Upscale the photo, or its cutout, as the options say."""
    photo = inputs.photo
    if options.remove_background:
        context.progress(5, "cutting the subject out")
        mask = predict_mask(photo, context.session(options.mask_model))
        photo, mask = refine(photo, mask, options, placed=False)
        if photo.mode == "RGBA":
            # A photo that is already partly transparent stays so: the subject mask only takes more away.
            mask = ImageChops.multiply(mask, photo.getchannel("A"))
        photo = photo.convert("RGBA")
        photo.putalpha(mask)
    return Result(upscale(photo, context.session(options.model), scale=int(options.scale),
                          max_output_pixels=context.limits.max_output_pixels, progress=context.part(10, 95)))
