"""The face operations' runs: detect with MTCNN, then draw, hide, smooth or lay out an ID photo."""

from __future__ import annotations

from PIL import Image

from ml.edits.faces import anonymized_region, draw_faces
from ml.edits.faces import anonymize as hide_faces
from ml.edits.faces import beautify as smooth_skin
from ml.edits.id_photo import BACKGROUNDS, IdPhotoError, choose_single_face, print_sheet
from ml.edits.id_photo import id_photo as lay_out
from ml.models.mtcnn.infer import Face, detect_faces
from ml.operations.base import Inputs, Result
from ml.operations.faces import AnonymizeOptions, BeautifyOptions, FaceOptions, IdPhotoOptions
from ml.runner import OperationFailed, RunContext
from ml.models.u2net.infer import predict_mask


def _faces(image: Image.Image, options: FaceOptions, context: RunContext, end: int = 60) -> list[Face]:
    """Detect the faces as the options say, reporting progress from 10 to `end`."""
    faces = detect_faces(image, context.session(options.model), min_face_size=options.min_face_size,
                         thresholds=(0.6, 0.7, options.confidence / 100), progress=context.part(10, end))
    context.progress(end, f"found {len(faces)} face{'s' if len(faces) != 1 else ''}")
    return faces


def find_faces(inputs: Inputs, options: FaceOptions, context: RunContext) -> Result:
    """Return every face as JSON, and a preview with their boxes and landmarks."""
    faces = _faces(inputs.photo, options, context, end=80)
    data = {"count": len(faces), "faces": [face.to_dict() for face in faces]}
    return Result(data, {"preview": draw_faces(inputs.photo, faces)})


def anonymize(inputs: Inputs, options: AnonymizeOptions, context: RunContext) -> Result:
    """Blur or pixelate every face; say which regions were hidden."""
    faces = _faces(inputs.photo, options, context)
    margin = options.margin / 100
    hidden = hide_faces(inputs.photo, faces, method=options.method, strength=options.strength, margin=margin)
    regions = [{"box": face.to_dict()["box"], "region": list(anonymized_region(face, inputs.photo.size, margin)),
                "confidence": face.to_dict()["confidence"]} for face in faces]
    return Result(hidden, {"faces": {"count": len(faces), "hidden": regions}})


def beautify(inputs: Inputs, options: BeautifyOptions, context: RunContext) -> Result:
    """Smooth the skin of every face."""
    faces = _faces(inputs.photo, options, context)
    context.progress(70, "smoothing the skin")
    smoothed = smooth_skin(inputs.photo, faces, strength=options.strength)
    return Result(smoothed, {"faces": {"count": len(faces), "faces": [face.to_dict() for face in faces]}})


def id_photo(inputs: Inputs, options: IdPhotoOptions, context: RunContext) -> Result:
    """Lay the one face out as the standard says; refuse no face, several, or too few pixels for the print."""
    faces = _faces(inputs.photo, options, context, end=40)
    try:
        face = choose_single_face(faces)
        context.progress(45, "cutting the person out")
        mask = predict_mask(inputs.photo, context.session(options.mask_model))
        context.progress(80, "laying the photo out")
        photo = lay_out(inputs.photo, face, mask, preset=options.preset, dpi=int(options.dpi),
                        background=BACKGROUNDS[options.background])
    except IdPhotoError as error:
        raise OperationFailed(_sentence(str(error))) from None
    extras = {"sheet": print_sheet(photo)} if options.sheet else {}
    return Result(photo, extras)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:].rstrip(".") + "."
