"""The face operations' declarations: find faces, hide them, smooth their skin, make an ID photo.

They share the MTCNN detector's options (smallest face, confidence); each has its own module entry in OPERATIONS.
"""

from __future__ import annotations

from pydantic import Field

from ml.id_presets import BACKGROUNDS, DEFAULT_PRESET, ID_PRESETS, sheet_pixels
from ml.operations.base import IMAGE_FORMAT_LABELS, ImageFormat, Operation, Options, Output, WholeNumber, choice
from ml.operations.remove_background import U2NET_MODELS

FaceModel = choice("mtcnn")
AnonymizeMethod = choice("blur", "pixelate")
Preset = choice(*ID_PRESETS)
Resolution = choice("300", "600")
Background = choice(*BACKGROUNDS)
PrintFormat = choice("jpeg", "png")
MaskModel = choice(*U2NET_MODELS)


class FaceOptions(Options):
    """What every face operation asks of the detector."""

    model: FaceModel = Field("mtcnn", title="Model",
                             description="the MTCNN face detector (P-Net, R-Net and O-Net cascade)")
    min_face_size: WholeNumber = Field(20, ge=10, le=1000, title="Smallest face (pixels)",
                                       description="faces smaller than this, in photo pixels, are not looked for "
                                                   "(smaller is slower)")
    confidence: WholeNumber = Field(70, ge=50, le=99, title="Confidence (%)",
                                    description="how sure the last stage must be that it is a face")


class FindFacesOptions(FaceOptions):
    """Options of faces."""


class AnonymizeOptions(FaceOptions):
    """Options of anonymize."""

    method: AnonymizeMethod = Field("blur", title="Method", description="blur the faces, or pixelate them",
                                    json_schema_extra={"x-labels": {"blur": "Blur", "pixelate": "Pixelate"}})
    strength: WholeNumber = Field(60, ge=0, le=100, title="Strength",
                                  description="how coarse: even 0 hides the features")
    margin: WholeNumber = Field(25, ge=0, le=100, title="Margin (% of the face)",
                                description="hidden around each face, more above it, to cover the hair line and chin")
    format: ImageFormat = Field("jpeg", title="Format", description="the result's file format",
                                json_schema_extra={"x-labels": IMAGE_FORMAT_LABELS})


class BeautifyOptions(FaceOptions):
    """Options of beautify."""

    strength: WholeNumber = Field(50, ge=0, le=100, title="Strength",
                                  description="how much the skin is smoothed; eyes, brows and lips stay sharp")
    format: ImageFormat = Field("jpeg", title="Format", description="the result's file format",
                                json_schema_extra={"x-labels": IMAGE_FORMAT_LABELS})


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
    mask_model: MaskModel = Field("u2net", title="Subject model",
                                  description="cuts the person out of the background; u2net follows hair better")
    sheet: bool = Field(False, title="Print sheet",
                        description="also make a 10x15 cm page with as many copies as fit, to print at a lab")
    format: PrintFormat = Field("jpeg", title="Format", description="JPEG or PNG, both with the resolution written in",
                                json_schema_extra={"x-labels": {"jpeg": "JPEG", "png": "PNG"}})


# MTCNN's first stage scans the photo at 12 / min_face_size of its size and then at 0.709 of each level before
# (ml/mtcnn.py): its pixels are the photo's times the sum of the squared scales.
DETECTOR_WINDOW = 12
PYRAMID_FACTOR = 0.709


def detector_work(options: FaceOptions, width: int, height: int) -> int:
    """Return the pixels the detector's image pyramid scans for a photo of this size."""
    first = (DETECTOR_WINDOW / options.min_face_size) ** 2
    return int(width * height * first / (1 - PYRAMID_FACTOR ** 2))


def id_photo_size(options: IdPhotoOptions, width: int, height: int) -> tuple[int, int]:
    """Return the largest image id_photo makes: the print sheet when asked for, else the photo at the standard."""
    photo = ID_PRESETS[options.preset].pixels(int(options.dpi))
    sheet = sheet_pixels(int(options.dpi)) if options.sheet else (0, 0)
    return max(photo, sheet, key=lambda size: size[0] * size[1])


def _faces_json(description: str) -> Output:
    return Output("faces", "json", description)


FIND_FACES = Operation(
    name="faces", title="Find faces",
    description="Find every face: its box, five landmarks (eyes, nose, mouth corners) and confidence, as JSON, with "
                "a preview.",
    options=FindFacesOptions, run="ml.face_runs:find_faces",
    outputs=(Output("result", "json", '{"count", "faces": [{"box": [x1, y1, x2, y2], "landmarks", "confidence"}]} '
                                      "in photo pixels"),
             Output("preview", "image", "the photo with each face's box and landmarks drawn", image_format="jpeg")),
    models=("mtcnn",), work=detector_work,
)
ANONYMIZE = Operation(
    name="anonymize", title="Hide faces",
    description="Blur or pixelate every face, for publishing photos of crowds and streets.",
    options=AnonymizeOptions, run="ml.face_runs:anonymize",
    outputs=(Output("result", "image", "the photo with every face hidden"),
             _faces_json('{"count", "hidden": [{"box", "region", "confidence"}]}: what was hidden, in photo pixels')),
    models=("mtcnn",), work=detector_work,
)
BEAUTIFY = Operation(
    name="beautify", title="Smooth skin",
    description="Smooth the skin of every face, eyes, brows and lips kept sharp, blended into the rest of the photo.",
    options=BeautifyOptions, run="ml.face_runs:beautify",
    outputs=(Output("result", "image", "the photo with smoothed skin"),
             _faces_json('{"count", "faces": [...]}: the faces that were smoothed')),
    models=("mtcnn",), work=detector_work,
)
ID_PHOTO = Operation(
    name="id_photo", title="ID photo",
    description="Make a passport or visa photo: background replaced, eyes levelled, head sized and placed as the "
                "standard says, at print resolution.",
    options=IdPhotoOptions, run="ml.face_runs:id_photo",
    outputs=(Output("result", "image", "the ID photo, at the standard's size in pixels at the resolution chosen"),
             Output("sheet", "image", "a 10x15 cm print sheet of copies (when asked for)")),
    models=("mtcnn",),
    helper_models=lambda options: (options.mask_model,),
    work=detector_work, output_size=id_photo_size,
)
