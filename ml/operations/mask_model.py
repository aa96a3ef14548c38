"""The subject-mask models an option may name (U²-Net's four), shared by every declaration that finds the subject."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from ml.operations.base import choice

MASK_MODELS = ("u2netp", "u2net", "u2netp_release", "u2net_human_seg")
MaskModel = choice(*MASK_MODELS)
# What a form shows for each (plain words), and the technical detail behind its "details" link.
MASK_MODEL_LABELS = {"u2netp": "Fast", "u2net": "Accurate", "u2netp_release": "Fast (the authors' original)",
                     "u2net_human_seg": "People (trained on portraits)"}
MASK_MODEL_SCHEMA = {
    "x-labels": MASK_MODEL_LABELS,
    "x-details": "U²-Net salient-object detection: u2netp (4.7 MB), u2net (176 MB, the paper's full model), "
                 "u2netp_release (the authors' checkpoint), u2net_human_seg (tuned on people)",
}


# Alpha matting's options (ml/edits/matting.py), declared once and used by every operation that cuts out. Their
# names and defaults are rembg's, so its users find them. Each is a function so that every declaration gets its own
# Field; `check_matting` is each declaration's model validator's rule across them.
MATTING_REQUIRES = {"x-requires": {"alpha_matting": True}}


def alpha_matting_field() -> Any:
    """Return the alpha_matting switch."""
    return Field(False, title="Fine edges (hair and fur)",
                 description="hair and fur come out strand by strand instead of as a grey halo (a few seconds more)",
                 json_schema_extra={"x-details": "alpha matting: the band around the mask's edge is solved again "
                                                 "by closed-form matting (pymatting), at most 1 MP"})


def foreground_threshold_field() -> Any:
    """Return the trimap's foreground threshold (mask values above it are sure subject)."""
    return Field(240, ge=1, le=255, title="Matting: subject threshold",
                 description="mask values above this (0-255) are surely the subject",
                 json_schema_extra=MATTING_REQUIRES)


def background_threshold_field() -> Any:
    """Return the trimap's background threshold (mask values below it are sure background)."""
    return Field(10, ge=0, le=254, title="Matting: background threshold",
                 description="mask values below this (0-255) are surely background", json_schema_extra=MATTING_REQUIRES)


def erode_size_field() -> Any:
    """Return the trimap's erosion (pixels taken off each sure region: the band matting solves widens)."""
    return Field(10, ge=0, le=100, title="Matting: edge band (pixels)",
                 description="how far into each sure region the band matting re-solves reaches",
                 json_schema_extra=MATTING_REQUIRES)


def estimate_foreground_field() -> Any:
    """Return the foreground colour estimation switch."""
    return Field(True, title="Subject colours at the edge",
                 description="give semi-transparent edge pixels the subject's colour, not the old background's (no "
                             "halo), wherever the cutout is put on a colour, a blur or a picture, and with matting")


def check_matting(options: Any) -> None:
    """Refuse thresholds that leave no unknown band (raise ValueError naming the field)."""
    if options.alpha_matting_foreground_threshold <= options.alpha_matting_background_threshold:
        raise ValueError("alpha_matting_foreground_threshold: must be above alpha_matting_background_threshold "
                         f"({options.alpha_matting_background_threshold})")
