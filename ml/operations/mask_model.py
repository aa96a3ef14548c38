"""The subject-mask models an option may name (U²-Net's four), shared by every declaration that finds the subject."""

from __future__ import annotations

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
