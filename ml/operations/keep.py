"""remove_background's `keep`: which detected objects stay (labels, the largest, or indices of segment's result).

What is kept is parsed here, without torch; ml/runs/segment.py's kept_mask builds the mask of the chosen objects.
"""

from __future__ import annotations

from dataclasses import dataclass

from ml.models.nanodet.classes import COCO_CLASSES

# segment's default number of objects (ml/operations/segment.py takes it from here, so importing keep for
# remove_background does not import segment and detect).
DEFAULT_MAX_OBJECTS = 10

LARGEST = "largest"
KEEP_DESCRIPTION = ("only these objects stay, everything else goes with the background: kinds of objects separated "
                    "by commas (dog, person), largest, or numbers from segment's result (0, 2); empty keeps the "
                    "subject")
KEEP_DETAILS = (f"the objects are found as segment finds them with its default options (score threshold 30%, every "
                f"kind, the {DEFAULT_MAX_OBJECTS} best), so segment's index numbers name the same objects; largest "
                "is the object with the largest box; each kept object's mask comes from the subject finder run in "
                "its box")


@dataclass(frozen=True)
class KeepChoice:
    """The objects to keep: by COCO label, the largest one, or by index in segment's result."""

    labels: frozenset[str] = frozenset()
    largest: bool = False
    indices: tuple[int, ...] = ()


def normalise_keep(value: str) -> str:
    """Return `keep` written canonically; raise ValueError naming a label that is not a COCO class."""
    return ", ".join(_items(value))


def parse_keep(value: str) -> KeepChoice | None:
    """Return what `keep` asks for, None when it is empty (the whole subject stays)."""
    items = _items(value)
    if not items:
        return None
    if items == [LARGEST]:
        return KeepChoice(largest=True)
    if all(item.isdigit() for item in items):
        return KeepChoice(indices=tuple(int(item) for item in items))
    return KeepChoice(labels=frozenset(items))


def _items(value: str) -> list[str]:
    """Split and check `keep`: labels, largest alone, or whole numbers below DEFAULT_MAX_OBJECTS, not mixed."""
    items = list(dict.fromkeys(" ".join(item.split()).lower() for item in value.split(",") if item.strip()))
    numbers = [item for item in items if item.isdigit()]
    labels = [item for item in items if not item.isdigit()]
    if LARGEST in labels and len(items) > 1:
        raise ValueError("largest keeps one object: give it alone, not with other kinds or numbers")
    if numbers and labels:
        raise ValueError("give kinds of objects (dog, person) or numbers from segment's result (0, 2), not both")
    unknown = [item for item in labels if item != LARGEST and item not in COCO_CLASSES]
    if unknown:
        raise ValueError(f"{unknown[0][:30]!r} is not a kind of object the detector knows (person, dog, car, ...: "
                         "one of COCO's classes), nor largest")
    too_high = [item for item in numbers if len(item) > 3 or int(item) >= DEFAULT_MAX_OBJECTS]
    if too_high:
        raise ValueError(f"{too_high[0][:10]} is not an index of segment's result: its indices go from 0 to "
                         f"{DEFAULT_MAX_OBJECTS - 1}")
    return items


def keep_work(options: object, width: int, height: int) -> int:
    """Return remove_background's pixels of work: the photo, and with `keep` the detector's and each object's too."""
    if not getattr(options, "keep", ""):
        return width * height
    # The detector sees the photo; at most DEFAULT_MAX_OBJECTS objects are outlined, each on at most the photo.
    return width * height * (1 + DEFAULT_MAX_OBJECTS)
