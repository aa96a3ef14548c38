"""remove_background's `keep`: the mask of the chosen objects only, outlined as segment outlines them.

Objects are found as segment finds them with its default options, so its result's indices name the same objects.
"""

from __future__ import annotations

from typing import Sequence

from PIL import Image

from ml.edits.segments import PixelBox, object_masks, pixel_box, union_mask
from ml.models.nanodet.infer import Detection, detect_objects
from ml.models.u2net.infer import predict_mask
from ml.operations.keep import DEFAULT_MAX_OBJECTS, KeepChoice, parse_keep
from ml.runner import OperationFailed, RunContext
from ml.sessions import ModelSession


def chosen_objects(choice: KeepChoice, detections: Sequence[Detection]) -> list[int]:
    """Return the indices of the detections `keep` chooses; raise OperationFailed when it names none found."""
    found = ", ".join(f"{index}: {item.label}" for index, item in enumerate(detections)) or "no object"
    if choice.largest:
        chosen = [max(range(len(detections)), key=lambda index: detections[index].area)] if detections else []
    elif choice.indices:
        missing = [index for index in choice.indices if index >= len(detections)]
        if missing:
            raise OperationFailed(f"keep: there is no object {missing[0]} in this photo; segment finds {found}")
        chosen = list(choice.indices)
    else:
        chosen = [index for index, item in enumerate(detections) if item.label in choice.labels]
    if not chosen:
        raise OperationFailed(f"keep: no {' or '.join(sorted(choice.labels)) or 'object'} was found in this photo; "
                              f"segment finds {found}")
    return chosen


def _overlaps(box: PixelBox, others: Sequence[PixelBox]) -> bool:
    return any(box[0] < other[2] and other[0] < box[2] and box[1] < other[3] and other[1] < box[3]
               for other in others)


def kept_mask(photo: Image.Image, keep: str, session: ModelSession, context: RunContext) -> Image.Image:
    """Return the mask (L, the photo's size) of the objects `keep` chooses, every other object taken out.

    A pixel claimed more surely by an object not kept (one whose box overlaps a kept one's) goes with the background:
    a kept dog's box holds its owner's hand, which the owner's own mask claims.
    """
    choice = parse_keep(keep)
    # Imported here: a cutout without keep must not import segment's declaration (and detect's) at start-up.
    from ml.operations.segment import SegmentOptions

    defaults = SegmentOptions()
    context.progress(10, "finding the objects")
    detections = detect_objects(photo, context.session(defaults.model), score_threshold=defaults.score_threshold / 100)
    detections = detections[:DEFAULT_MAX_OBJECTS]
    chosen = chosen_objects(choice, detections)
    kept_boxes = [pixel_box(detections[index].box, photo.size) for index in chosen]
    rivals = [index for index, item in enumerate(detections)
              if index not in chosen and _overlaps(pixel_box(item.box, photo.size), kept_boxes)]
    outlined = [detections[index] for index in chosen + rivals]
    masks = object_masks(photo, outlined, lambda crop: predict_mask(crop, session), context.part(30, 70))
    kept = union_mask(masks[:len(chosen)], photo.size)
    others = union_mask(masks[len(chosen):], photo.size)
    kept[others > kept] = 0
    return Image.fromarray(kept, mode="L")
