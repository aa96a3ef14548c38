"""upscale: the photo 2x or 4x larger with Real-ESRGAN, alone or as a cutout (the subject on transparency)."""

from __future__ import annotations

from pydantic import Field, model_validator

from ml.operations.base import IMAGE_FORMAT_LABELS, ImageFormat, Operation, Options, Output, WholeNumber, choice
from ml.operations.mask_model import MASK_MODEL_SCHEMA, MaskModel, alpha_matting_field, background_threshold_field, \
    check_matting, erode_size_field, estimate_foreground_field, foreground_threshold_field

UpscaleModel = choice("realesrgan_x4plus")
Scale = choice("2", "4")
# What a job is allowed per megapixel of the photo, from ml/models/realesrgan/infer.py's estimate: 400 CPU
# seconds a megapixel the network runs on, about 1.8 times the photo with the tiles' context, on one thread
# (STUDIO_TORCH_THREADS), with a margin of 3 for a busy machine. ml/models/realesrgan/infer.py's timeout_seconds says
# the same (tests/ml/test_upscale.py).
TIMEOUT_SECONDS_PER_MEGAPIXEL = 3 * 400 * 1.8
TIMEOUT_FLOOR_SECONDS = 300
# The largest photo taken unless the operator says otherwise (STUDIO_OPERATION_MAX_PIXELS): 1920x1080 fits, about
# 25 CPU minutes on one thread. The network makes the 4x image for either scale (2x is that image reduced).
MAX_INPUT_PIXELS = 2_100_000
NETWORK_SCALE = 4
# A run's seconds per megapixel of work (the 4x image): 400 CPU seconds a megapixel the network runs on, 1.8 times
# the photo, over the 16 pixels made from each (an 89 s upscale of a 0.12 MP photo on a busy 2-core machine).
SECONDS_PER_MEGAPIXEL = 45.0


class UpscaleOptions(Options):
    """Options of upscale."""

    model: UpscaleModel = Field("realesrgan_x4plus", title="Model", description="a network trained on photos",
                                json_schema_extra={"x-details": "Real-ESRGAN x4plus (RRDBNet, 23 blocks), run in "
                                                                "overlapping tiles"})
    scale: Scale = Field("2", title="Scale", description="how many times wider and taller: 2 or 4",
                         json_schema_extra={"x-labels": {"2": "2x", "4": "4x"}})
    remove_background: bool = Field(False, title="Cut the subject out",
                                    description="a transparent cutout, its edge upscaled cleanly")
    mask_model: MaskModel = Field(
        "u2net", title="Subject finder", description="finds the subject for the cutout",
        json_schema_extra={**MASK_MODEL_SCHEMA, "x-requires": {"remove_background": True}})
    alpha_matting: bool = alpha_matting_field()
    alpha_matting_foreground_threshold: WholeNumber = foreground_threshold_field()
    alpha_matting_background_threshold: WholeNumber = background_threshold_field()
    alpha_matting_erode_size: WholeNumber = erode_size_field()
    estimate_foreground: bool = estimate_foreground_field()
    format: ImageFormat = Field("png", title="Format", description="JPEG has no transparency: not for a cutout",
                                json_schema_extra={"x-labels": IMAGE_FORMAT_LABELS})

    @model_validator(mode="after")
    def _cutouts_need_transparency(self) -> "UpscaleOptions":
        check_matting(self)
        if self.remove_background and self.format == "jpeg":
            raise ValueError("format: JPEG has no transparency: a cutout needs png or webp")
        return self


def output_size(options: UpscaleOptions, width: int, height: int) -> tuple[int, int]:
    """Return the result's size: the photo's, times the scale."""
    return width * int(options.scale), height * int(options.scale)


def work(options: UpscaleOptions, width: int, height: int) -> int:
    """Return the pixels the network makes: the photo's at 4x, whichever scale is asked for."""
    return width * height * NETWORK_SCALE ** 2


def timeout(options: UpscaleOptions, pixels: int) -> int:
    """Return the seconds a job may take for a photo of this many pixels."""
    return int(TIMEOUT_FLOOR_SECONDS + TIMEOUT_SECONDS_PER_MEGAPIXEL * pixels / 1e6)


OPERATION = Operation(
    name="upscale", title="Upscale",
    description="Make the photo 2x or 4x larger with Real-ESRGAN, sharper than resizing; optionally as a transparent "
                "cutout of its subject.",
    options=UpscaleOptions, run="ml.runs.upscale:run",
    outputs=(Output("result", "image", "the photo (or the cutout) 2 or 4 times wider and taller"),),
    models=("realesrgan_x4plus",),
    helper_models=lambda options: (options.mask_model,) if options.remove_background else (),
    timeout=timeout, output_size=output_size, work=work, max_input_pixels=MAX_INPUT_PIXELS,
    seconds_per_megapixel=SECONDS_PER_MEGAPIXEL,
    # Minutes per photo: one at a time on every core, not one per core; and on the slow queue, so the account's
    # quick jobs do not wait behind it.
    photo_parallel=False, cost_class="slow",
)
