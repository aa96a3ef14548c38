"""id_photo: a passport or visa photo, background replaced, head sized and placed as the standard says."""

from __future__ import annotations

from pydantic import Field, model_validator

from ml.edits.id_presets import BACKGROUNDS, DEFAULT_PRESET, ID_PRESETS, sheet_pixels
from ml.operations.base import Operation, Output, WholeNumber, choice
from ml.operations.faces import FaceOptions, detector_work
from ml.operations.mask_model import MASK_MODEL_SCHEMA, MaskModel, alpha_matting_field, background_threshold_field, \
    check_matting, erode_size_field, estimate_foreground_field, foreground_threshold_field

Preset = choice(*ID_PRESETS)
Resolution = choice("300", "600")
Background = choice(*BACKGROUNDS)
PrintFormat = choice("jpeg", "png")


class IdPhotoOptions(FaceOptions):
    """Options of id_photo."""

    preset: Preset = Field(DEFAULT_PRESET, title="Standard",
                           description="the photo's size, head height and head position",
                           json_schema_extra={"x-labels": {name: preset.title for name, preset in ID_PRESETS.items()}})
    dpi: Resolution = Field("300", title="Resolution (dpi)",
                            description="print resolution written in the file; 600 needs a sharper, larger face")
    background: Background = Field("white", title="Background", description="the plain colour behind the person",
                                   json_schema_extra={"x-labels": {"white": "White", "light_grey": "Light grey",
                                                                   "light_blue": "Light blue"}})
    mask_model: MaskModel = Field("u2net", title="Subject finder",
                                  description="cuts the person out of the background; Accurate follows hair better",
                                  json_schema_extra=MASK_MODEL_SCHEMA)
    alpha_matting: bool = alpha_matting_field()
    alpha_matting_foreground_threshold: WholeNumber = foreground_threshold_field()
    alpha_matting_background_threshold: WholeNumber = background_threshold_field()
    alpha_matting_erode_size: WholeNumber = erode_size_field()
    estimate_foreground: bool = estimate_foreground_field()
    sheet: bool = Field(False, title="Print sheet",
                        description="also make a 10x15 cm page with as many copies as fit, to print at a lab")
    format: PrintFormat = Field("jpeg", title="Format", description="JPEG or PNG, both with the resolution written in",
                                json_schema_extra={"x-labels": {"jpeg": "JPEG", "png": "PNG"}})

    @model_validator(mode="after")
    def _matting(self) -> "IdPhotoOptions":
        check_matting(self)
        return self


def id_photo_size(options: IdPhotoOptions, width: int, height: int) -> tuple[int, int]:
    """Return the largest image id_photo makes: the print sheet when asked for, else the photo at the standard."""
    photo = ID_PRESETS[options.preset].pixels(int(options.dpi))
    sheet = sheet_pixels(int(options.dpi)) if options.sheet else (0, 0)
    return max(photo, sheet, key=lambda size: size[0] * size[1])


OPERATION = Operation(
    name="id_photo", title="ID photo",
    description="Make a passport or visa photo: background replaced, eyes levelled, head sized and placed as the "
                "standard says, at print resolution.",
    options=IdPhotoOptions, run="ml.runs.id_photo:run",
    outputs=(Output("result", "image", "the ID photo, at the standard's size in pixels at the resolution chosen"),
             Output("sheet", "image", "a 10x15 cm print sheet of copies (when asked for)")),
    models=("mtcnn",),
    helper_models=lambda options: (options.mask_model,),
    work=detector_work, output_size=id_photo_size,
)
