"""stylize: the photo painted in one of 26 styles (or a blend of two), all of it, its subject or its background."""

from __future__ import annotations

from pydantic import Field, model_validator

from ml.operations.base import IMAGE_FORMAT_LABELS, ImageFormat, Operation, Options, Output, WholeNumber, choice
from ml.operations.mask_model import MASK_MODEL_SCHEMA, MaskModel, alpha_matting_field, background_threshold_field, \
    check_matting, erode_size_field, estimate_foreground_field, foreground_threshold_field

# (slug, what it looks like) in the network's order; ml/models/style26/infer.py's STYLES, kept here without torch (a
# test checks they agree). The thumbnails are static/img/styles/<slug>.webp, made by tools/style_previews.py.
STYLE_NAMES = (
    ("golden-pastel", "Golden pastel"), ("ink-on-yellow", "Bold ink on yellow"),
    ("charcoal-hatching", "Charcoal hatching"), ("electric-scribbles", "Electric scribbles"),
    ("crimson-wash", "Crimson and sky wash"), ("autumn-dabs", "Autumn dabs"), ("midnight-dots", "Midnight dots"),
    ("colour-blocks", "Bold colour blocks"), ("pink-sketch", "Pink and teal sketch"), ("teal-mosaic", "Teal mosaic"),
    ("sepia-oils", "Sepia oils"), ("gold-etching", "Gold etching"), ("lilac-haze", "Lilac haze"),
    ("fauve-greens", "Fauve greens"), ("icy-wash", "Icy blue wash"), ("stained-glass", "Stained glass"),
    ("blue-crayon", "Blue crayon"), ("brick-grid", "Red brick grid"), ("ochre-woodgrain", "Ochre woodgrain"),
    ("starry-swirls", "Starry blue swirls"), ("ember-red", "Ember red"), ("ink-and-pastel", "Ink and pastel"),
    ("red-spotted-ink", "Red-spotted ink"), ("smoky-dusk", "Smoky dusk"), ("blue-engraving", "Blue engraving"),
    ("dark-tapestry", "Dark tapestry"),
)
SLUGS = tuple(slug for slug, _ in STYLE_NAMES)
Style = choice(*SLUGS)
SecondStyle = choice("none", *SLUGS)
Region = choice("all", "background", "subject")
StyleModel = choice("style26")
_LABELS = dict(STYLE_NAMES)
_PREVIEWS = {slug: f"img/styles/{slug}.webp" for slug in SLUGS}


class StylizeOptions(Options):
    """Options of stylize."""

    model: StyleModel = Field("style26", title="Model", description="one network that paints all 26 styles",
                              json_schema_extra={"x-details": "the multi-style network of Dumoulin et al., \"A "
                                                              "Learned Representation for Artistic Style\" "
                                                              "(conditional instance normalisation)"})
    style: Style = Field("starry-swirls", title="Style", description="the look to paint the photo in",
                         json_schema_extra={"x-labels": _LABELS, "x-previews": _PREVIEWS})
    blend_with: SecondStyle = Field("none", title="Blend with",
                                    description="a second style mixed in, in one pass (it costs nothing extra)",
                                    json_schema_extra={"x-labels": {"none": "No second style", **_LABELS}})
    blend: WholeNumber = Field(50, ge=0, le=100, title="Mix (% of the first style)",
                               description="how much of the first style against the second: 100 is the first alone",
                               json_schema_extra={"x-requires": {"blend_with": {"not": "none"}}})
    strength: WholeNumber = Field(100, ge=0, le=100, title="Strength",
                                  description="how much painting against the photo: 0 keeps the photo")
    apply_to: Region = Field("all", title="Paint",
                             description="the whole photo, only its background (the subject stays sharp) or only "
                                         "its subject",
                             json_schema_extra={"x-labels": {"all": "The whole photo",
                                                             "background": "The background only",
                                                             "subject": "The subject only"}})
    mask_model: MaskModel = Field("u2netp", title="Subject finder",
                                  description="finds the subject when only the subject or the background is painted",
                                  json_schema_extra={**MASK_MODEL_SCHEMA, "x-requires": {"apply_to": {"not": "all"}}})
    feather: WholeNumber = Field(6, ge=0, le=200, title="Edge softness (pixels)",
                                 description="how far the painting fades into the photo at the subject's edge",
                                 json_schema_extra={"x-requires": {"apply_to": {"not": "all"}}})
    alpha_matting: bool = alpha_matting_field()
    alpha_matting_foreground_threshold: WholeNumber = foreground_threshold_field()
    alpha_matting_background_threshold: WholeNumber = background_threshold_field()
    alpha_matting_erode_size: WholeNumber = erode_size_field()
    estimate_foreground: bool = estimate_foreground_field()
    working_size: WholeNumber = Field(
        1024, ge=256, le=2048, title="Brush scale (pixels)",
        description="smaller paints bolder strokes, larger finer ones; the result keeps the photo's size",
        json_schema_extra={"x-details": "the long side the network paints at (its strokes have a fixed size in "
                                        "pixels); the result is scaled back to the photo's size"})
    format: ImageFormat = Field("jpeg", title="Format", description="the result's file format",
                                json_schema_extra={"x-labels": IMAGE_FORMAT_LABELS})

    @model_validator(mode="after")
    def _blend_needs_a_second_style(self) -> "StylizeOptions":
        check_matting(self)
        if self.blend_with == self.style:
            raise ValueError("blend_with: choose a second style other than the first, or none")
        return self


OPERATION = Operation(
    name="stylize",
    title="Paint in a style",
    description="Repaint the photo in one of 26 artistic styles or a blend of two, all of it, or only its "
                "background or its subject.",
    options=StylizeOptions,
    run="ml.runs.stylize:run",
    outputs=(Output("result", "image", "the painted photo, at the photo's size"),),
    models=("style26",),
    helper_models=lambda options: (options.mask_model,) if options.apply_to != "all" else (),
)
