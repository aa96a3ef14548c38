"""The upload and re-run forms' fields, generated from each operation's options schema (no template per operation).

Each JSON Schema property becomes a field: an enum a select (or a row of pictures when the schema has previews,
like the styles), a boolean a switch, an integer a number box with its range, text a text box. Labels, help text,
defaults and "which option needs which" (x-requires) come from the schema; the server validates whatever is sent.
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
class FormField:
    """One input of the form, ready to render."""

    name: str
    label: str
    help: str
    widget: str  # select, pictures, switch, number, colour, text
    value: Any
    choices: tuple[Choice, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    # Shown only while these other fields have these values: {"crop": true}.
    requires: dict[str, Any] = field(default_factory=dict)


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
        fields.append(_field(name, prop, value, installed if name == MODEL_FIELD else None))
    return fields


def _default_model(operation: Operation, installed: tuple[str, ...], default_model: str) -> str | None:
    usable = [name for name in operation.models if name in installed]
    return default_model if default_model in usable else (usable[0] if usable else None)


def _field(name: str, prop: dict[str, Any], value: Any, installed: tuple[str, ...] | None) -> FormField:
    label, help_text = prop.get("title", name.replace("_", " ").capitalize()), prop.get("description", "")
    requires = prop.get("x-requires", {})
    if "enum" in prop:
        labels, previews = prop.get("x-labels", {}), prop.get("x-previews", {})
        choices = tuple(Choice(str(option), _choice_label(name, str(option), labels),
                               disabled=installed is not None and option not in installed,
                               preview=url_for("static", filename=previews[option]) if option in previews else None)
                        for option in prop["enum"])
        return FormField(name, label, help_text, "pictures" if previews else "select", value, choices,
                         requires=requires)
    kind = prop.get("type")
    if kind == "boolean":
        return FormField(name, label, help_text, "switch", value in (True, "true", "on", "1"), requires=requires)
    if kind == "integer":
        return FormField(name, label, help_text, "number", value, minimum=prop.get("minimum"),
                         maximum=prop.get("maximum"), requires=requires)
    colour = prop.get("format") == "color" or any(option.get("format") == "color" for option in prop.get("anyOf", []))
    return FormField(name, label, help_text, "colour" if colour else "text", value or "", requires=requires)


def _choice_label(name: str, value: str, labels: Mapping[str, str]) -> str:
    if value in labels:
        return labels[value]
    if name == MODEL_FIELD and value in MODELS:
        return MODELS[value].title
    return value
