"""The upload and re-run forms' fields, generated from each operation's options schema (no template per operation).

Each JSON Schema property becomes a field: an enum a select (or a grid of pictures when the schema has previews,
like the styles; a fixed line when it has one value), a boolean a switch, an integer a number box with its range, a
colour a picker with preset swatches, text a text box. Labels, plain help, the technical detail behind a "details"
link (x-details), defaults and "which option needs which" (x-requires) come from the schema; the server validates
whatever is sent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Mapping

from flask import url_for

from ml.operations import Operation
from ml.registry import MODELS

MODEL_FIELD = "model"


@dataclass(frozen=True)
class Choice:
    """One value of a select or of a row of pictures."""

    value: str
    label: str
    disabled: bool = False
    preview: str | None = None  # URL of a small picture of what the value gives


@dataclass(frozen=True)
class Preset:
    """A colour swatch offered beside a colour field; an empty value clears the field."""

    value: str
    label: str


@dataclass(frozen=True)
class FormField:
    """One input of the form, ready to render."""

    name: str
    label: str
    help: str
    widget: str  # select, pictures, fixed (one value), switch, number, colour, text
    value: Any
    choices: tuple[Choice, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    # Shown only while these other fields have these values: {"crop": true}, or not this one: {"blend_with":
    # {"not": "none"}}.
    requires: dict[str, Any] = field(default_factory=dict)
    # The technical detail (the model's paper, the resampling filter), shown behind a "details" link.
    details: str = ""
    presets: tuple[Preset, ...] = ()


def fields_for(operation: Operation, values: Mapping[str, Any], installed: tuple[str, ...],
               default_model: str) -> list[FormField]:
    """Return the form fields of an operation, filled with the given values (else the schema's defaults)."""
    schema = operation.option_schema()
    fields = []
    for name, prop in schema["properties"].items():
        if prop.get("readOnly"):
            continue  # set from an attached file, never typed in
        default = _default_model(operation, installed, default_model) if name == MODEL_FIELD else prop.get("default")
        value = values.get(name, default)
        fields.append(_field(name, prop, value, installed))
    return fields


def _default_model(operation: Operation, installed: tuple[str, ...], default_model: str) -> str | None:
    usable = [name for name in operation.models if name in installed]
    return default_model if default_model in usable else (usable[0] if usable else None)


def _field(name: str, prop: dict[str, Any], value: Any, installed: tuple[str, ...] | None) -> FormField:
    text = {"label": prop.get("title", name.replace("_", " ").capitalize()), "help": prop.get("description", ""),
            "details": prop.get("x-details", ""), "requires": prop.get("x-requires", {})}
    if "enum" in prop:
        return _enum_field(name, prop, value, installed, text)
    kind = prop.get("type")
    if kind == "boolean":
        return FormField(name, widget="switch", value=value in (True, "true", "on", "1"), **text)
    if kind == "integer":
        return FormField(name, widget="number", value=value, minimum=prop.get("minimum"),
                         maximum=prop.get("maximum"), **text)
    colour = prop.get("format") == "color" or any(option.get("format") == "color" for option in prop.get("anyOf", []))
    if colour:
        presets = tuple(Preset(preset["value"], preset["label"]) for preset in prop.get("x-presets", ()))
        return FormField(name, widget="colour", value=value or "", presets=presets, **text)
    return FormField(name, widget="text", value=value or "", **text)


def _enum_field(name: str, prop: dict[str, Any], value: Any, installed: tuple[str, ...] | None,
                text: dict[str, Any]) -> FormField:
    """Return a select, a grid of pictures, or a fixed line for an enum of one value (nothing to choose)."""
    labels, previews = prop.get("x-labels", {}), prop.get("x-previews", {})
    models = all(option in MODELS for option in prop["enum"])
    choices = tuple(Choice(str(option), _choice_label(name, str(option), labels),
                           # Any option naming models is marked by what this server has, not only `model`.
                           disabled=models and installed is not None and option not in installed,
                           preview=url_for("static", filename=previews[option]) if option in previews else None)
                    for option in prop["enum"])
    if len(choices) == 1:
        widget = "fixed"
    else:
        widget = "pictures" if previews else "select"
    return FormField(name, widget=widget, value=value, choices=choices, **text)


def _choice_label(name: str, value: str, labels: Mapping[str, str]) -> str:
    if value in labels:
        return labels[value]
    if value in MODELS:
        return MODELS[value].title
    return value


def sentence(text: str) -> str:
    """Return schema text as a sentence: its first letter capitalised (the rest kept: JPEG, U²-Net) and a full
    stop."""
    text = text.strip()
    if not text:
        return ""
    return text[:1].upper() + text[1:] + ("" if text.endswith((".", "!", "?", "...")) else ".")
