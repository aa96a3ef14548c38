"""id_photo's run: the one face found, the person cut out, then laid out as the standard says (and a print sheet)."""

from __future__ import annotations

from ml.edits.id_photo import BACKGROUNDS, IdPhotoError, choose_single_face, print_sheet
from ml.edits.id_photo import id_photo as lay_out
from ml.edits.matting import refine
from ml.models.u2net.infer import predict_mask
from ml.operations.base import Inputs, Result
from ml.operations.id_photo import IdPhotoOptions
from ml.runner import OperationFailed, RunContext
from ml.runs.faces import detected_faces


def run(inputs: Inputs, options: IdPhotoOptions, context: RunContext) -> Result:
    """Lay the one face out as the standard says; refuse no face, several, or too few pixels for the print."""
    faces = detected_faces(inputs.photo, options, context, end=40)
    try:
        face = choose_single_face(faces)
        context.progress(45, "cutting the person out")
        mask = predict_mask(inputs.photo, context.session(options.mask_model))
        # The person is put on a plain colour: the edge takes the person's colours, not the old background's.
        person, mask = refine(inputs.photo, mask, options, placed=True)
        context.progress(80, "laying the photo out")
        photo = lay_out(person, face, mask, preset=options.preset, dpi=int(options.dpi),
                        background=BACKGROUNDS[options.background])
    except IdPhotoError as error:
        raise OperationFailed(_sentence(str(error))) from None
    extras = {"sheet": print_sheet(photo)} if options.sheet else {}
    return Result(photo, extras)


def _sentence(text: str) -> str:
    return text[:1].upper() + text[1:].rstrip(".") + "."
