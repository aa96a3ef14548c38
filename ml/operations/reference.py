"""The operations reference (docs/operations.md), written from the declarations: what each operation does, its
models, its options (values, default, meaning, what each needs) and its outputs. `flask studio operations
--markdown` prints it; a test keeps the file in the repository equal to it.
"""

from __future__ import annotations

from typing import Any

from ml.operations.base import Operation
from ml.registry import MODELS

HEADER = """# Operations

Every operation the studio offers, written from the declarations in `ml/operations/` by
`flask --app wsgi studio operations --markdown` (a test keeps this page equal to that output). The same declarations
validate every request and generate the upload form, the API's OpenAPI document and the command line's flags, so
what this page says is what each of them accepts.

An option is a form field on the upload page, a multipart field of `POST /api/v1/tasks` (with `operation=NAME`) and
a flag of `flask studio process --operation NAME` (underscores become dashes: `--bg-color`). Anything outside these
values is refused before anything is stored: a 400 naming the field.
"""


def _values(schema: dict[str, Any]) -> str:
    """Return the values an option takes, in words."""
    choices = schema.get("enum") or schema.get("items", {}).get("enum")
    if choices:
        text = ", ".join(f"`{value}`" for value in choices)
        aliases = schema.get("x-aliases")
        if aliases:
            text += " (also " + ", ".join(f"`{alias}` for `{name}`" for alias, name in aliases.items()) + ")"
        return text
    kinds = [schema] + [part for part in schema.get("anyOf", ()) if part.get("type") != "null"]
    kind = next((part for part in kinds if "type" in part), schema)
    if kind.get("type") == "boolean":
        return "`true`, `false`"
    if kind.get("type") == "integer" or kind.get("type") == "number":
        low, high = kind.get("minimum"), kind.get("maximum")
        word = "a whole number" if kind.get("type") == "integer" else "a number"
        if low is not None and high is not None:
            return f"{word}, {low}-{high}"
        return word
    if "color" in (schema.get("format"), kind.get("format")):
        return "a colour name or hex code"
    if kind.get("type") == "string":
        return "text" + (f", at most {kind['maxLength']} characters" if "maxLength" in kind else "")
    return "see the description"


def _default(schema: dict[str, Any]) -> str:
    """Return the default value, as the API takes it."""
    default = schema.get("default")
    if default is None or default == "" or default == []:
        return "none"
    if isinstance(default, bool):
        return f"`{str(default).lower()}`"
    if isinstance(default, list):
        return ", ".join(f"`{value}`" for value in default)
    return f"`{default}`"


def _requirement(name: str, value: Any) -> str:
    """Return what another option must be, in words: `crop=true`, `blend_with` other than `none`."""
    if isinstance(value, dict) and "not" in value:
        return f"`{name}` other than `{value['not']}`"
    return f"`{name}={str(value).lower() if isinstance(value, bool) else value}`"


def _meaning(name: str, schema: dict[str, Any]) -> str:
    """Return the option's description with what it needs and whether it can be typed in."""
    text = schema.get("description", "").replace("|", "\\|")
    requires = schema.get("x-requires")
    if requires:
        needed = ", ".join(_requirement(key, value) for key, value in requires.items())
        text += f"; only with {needed}"
    if schema.get("x-details"):
        text += f" ({schema['x-details']})".replace("|", "\\|")
    if schema.get("readOnly"):
        text += f"; set by sending the `{name}` file, not typed in"
    return text


def operation_markdown(operation: Operation) -> str:
    """Return one operation's section."""
    lines = [f"## `{operation.name}`: {operation.title}", "", operation.description, ""]
    if operation.models:
        lines += ["| Model | What it is | Weights |", "| --- | --- | --- |"]
        for name in operation.models:
            spec = MODELS[name]
            lines.append(f"| `{name}` | {spec.purpose} | {spec.origin} |")
        lines.append("")
    properties = operation.option_schema().get("properties", {})
    if properties:
        lines += ["| Option | Values | Default | What it does |", "| --- | --- | --- | --- |"]
        for name, schema in properties.items():
            lines.append(f"| `{name}` | {_values(schema)} | {_default(schema)} | {_meaning(name, schema)} |")
        lines.append("")
    for attachment in operation.attachments:
        need = "required" if attachment.required else "optional"
        lines += [f"Takes a picture as the file `{attachment.name}` ({need}): {attachment.description}", ""]
    lines.append("Outputs:")
    lines.append("")
    for output in operation.outputs:
        if output.kind == "json":
            kind = "JSON"
        elif output.image_format == "options":
            kind = "an image in the chosen `format`"
        else:
            kind = f"a {output.image_format.upper()} image"
        label = "the result" if output is operation.result else f"`{output.name}`"
        lines.append(f"- {label} ({kind}): {output.description}")
    lines.append("")
    return "\n".join(lines)


def markdown(operations: dict[str, Operation]) -> str:
    """Return the whole reference page."""
    index = ["| Operation | What it does |", "| --- | --- |"]
    index += [f"| [`{name}`](#{_anchor(operation)}) | {operation.description} |"
              for name, operation in operations.items()]
    sections = [operation_markdown(operation) for operation in operations.values()]
    return "\n".join([HEADER, *index, "", *sections]).rstrip() + "\n"


def _anchor(operation: Operation) -> str:
    """Return the GitHub anchor of an operation's heading."""
    heading = f"{operation.name}: {operation.title}".lower()
    kept = "".join(character for character in heading if character.isalnum() or character in " -_")
    return kept.replace(" ", "-")
