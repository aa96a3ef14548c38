"""segment: every object the detector finds, each with its own mask, as JSON (COCO RLE) with a coloured preview.

Each object costs one run of the subject model (U²-Net) on its box, so max_objects is bounded (MAX_OBJECTS) and
counted in the work a plan counts.
"""

from __future__ import annotations

from pydantic import Field

from ml.operations.base import Operation, Output, WholeNumber
from ml.operations.detect import DetectionOptions
from ml.operations.keep import DEFAULT_MAX_OBJECTS
from ml.operations.mask_model import MASK_MODEL_SCHEMA, MaskModel

# The most objects one run masks: each is a subject-model run (about a remove_background of its box).
MAX_OBJECTS = 20
# A run's seconds per megapixel of work (objects_work): bench/segment.py's median over five fixture photos, u2netp, on
# 2 cores under a load of 6 (1.4); photos under a megapixel with many objects take longer per megapixel, since each
# object's model run costs the same whatever the box's size (docs/detection.md#segmentation).
SECONDS_PER_MEGAPIXEL = 1.5


class SegmentOptions(DetectionOptions):
    """Options of segment."""

    max_objects: WholeNumber = Field(DEFAULT_MAX_OBJECTS, ge=1, le=MAX_OBJECTS, title="Most objects",
                                     description=f"masks at most this many objects, best scores first (up to "
                                                 f"{MAX_OBJECTS}: each one is a run of the subject finder)")
    mask_model: MaskModel = Field("u2netp", title="Subject finder", json_schema_extra=MASK_MODEL_SCHEMA,
                                  description="draws each object's outline inside its box")
    mask_threshold: WholeNumber = Field(50, ge=5, le=95, title="Mask threshold (%)",
                                        description="how sure the subject finder must be that a pixel belongs to "
                                                    "the object")


def objects_work(options: SegmentOptions, width: int, height: int) -> int:
    """Return the pixels of work: the photo for the detector, and at most the photo again for each object's mask."""
    return width * height * (1 + options.max_objects)


OPERATION = Operation(
    name="segment", title="Outline objects",
    description="Find the objects in the photo (80 kinds: people, animals, vehicles...) and outline each one on "
                "its own, as JSON, with a preview that colours each object.",
    options=SegmentOptions, run="ml.runs.segment:run",
    outputs=(Output("result", "json", '{"width", "height", "count", "objects": [{"index", "label", "score", '
                                      '"box": [x1, y1, x2, y2], "area", "mask": {"size": [height, width], '
                                      '"counts"}}]}: boxes in photo pixels, masks in COCO RLE, best score first'),
             Output("preview", "image", "the photo with each object coloured and its box labelled",
                    image_format="jpeg")),
    models=("nanodet",), helper_models=lambda options: (options.mask_model,),
    work=objects_work, seconds_per_megapixel=SECONDS_PER_MEGAPIXEL,
)
