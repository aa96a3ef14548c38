"""The subject-mask models an option may name (U²-Net's four), shared by every declaration that finds the subject."""

from __future__ import annotations

from ml.operations.base import choice

MASK_MODELS = ("u2netp", "u2net", "u2netp_release", "u2net_human_seg")
MaskModel = choice(*MASK_MODELS)
