"""mask_stats: where the subject is, as data: its bounding box, area and centroid, with a preview."""

from __future__ import annotations

from pydantic import Field

from ml.operations.base import Operation, Options, Output, WholeNumber
from ml.operations.mask_model import MASK_MODEL_SCHEMA, MASK_MODELS, MaskModel


# The preview's long side at most (ml/mask_stats.py draws it), whatever the photo's size.
PREVIEW_MAX_SIDE = 1600


def preview_size(options: "MaskStatsOptions", width: int, height: int) -> tuple[int, int]:
    """Return the preview's size: the photo scaled down to PREVIEW_MAX_SIDE on its long side."""
    scale = min(1.0, PREVIEW_MAX_SIDE / max(width, height))
    return max(1, round(width * scale)), max(1, round(height * scale))


class MaskStatsOptions(Options):
    """Options of mask_stats."""

    model: MaskModel = Field("u2netp", title="Model", description="Fast is quick; Accurate follows edges better",
                             json_schema_extra=MASK_MODEL_SCHEMA)
    threshold: WholeNumber = Field(
        128, ge=1, le=254, title="Threshold",
        description="how sure the model must be that a pixel is subject: higher keeps only the clearest parts",
        json_schema_extra={"x-details": "the mask value (1-254) from which a pixel counts as subject; 128 is the "
                                        "usual 0.5"})


OPERATION = Operation(
    name="mask_stats",
    title="Subject statistics",
    description="Find the subject and report where it is: bounding box, area and centroid, as JSON.",
    options=MaskStatsOptions,
    run="ml.runs.mask_stats:run",
    outputs=(Output("result", "json", '{"width", "height", "subject": {"found", "box": [x1, y1, x2, y2], "area", '
                                      '"area_fraction", "centroid": [x, y]}} in photo pixels'),
             Output("preview", "image", "the photo with the subject outlined, its box and centroid drawn",
                    image_format="jpeg")),
    models=MASK_MODELS, output_size=preview_size,
)
