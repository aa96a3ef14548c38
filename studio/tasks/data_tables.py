"""What a data operation found (faces, objects, a subject's statistics, a crop), as tables people read.

Generic over operations: the JSON outputs' shapes and their field names decide. A list of records is a table with a
row each; a record is a table of name/value rows; plain values of an output go into one table of their own. Values
read with their units: four numbers are a box in photo pixels (x1, y1, x2, y2), two a point, a confidence or score is
a percentage, an area square pixels. Nothing is ever shown as raw JSON.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from numbers import Real
from typing import Any, Mapping

# Names people read for the field names the operations use; others are the field name in words.
LABELS = {
    "area_fraction": "Share of the photo",
    "basis": "Chosen by",
    "box": "Box",
    "centroid": "Centre",
    "confidence": "Confidence",
    "found": "Found",
    "label": "Object",
    "region": "Area hidden",
    "score": "Score",
    "whole": "Whole subject inside",
}
PERCENT_FIELDS = frozenset({"confidence", "score", "probability"})
PIXEL_FIELDS = frozenset({"width", "height", "x", "y", "margin"})


@dataclass(frozen=True)
class Cell:
    """One value as text, or as several short lines (the points of a face's landmarks)."""

    text: str = ""
    lines: tuple[str, ...] = ()


@dataclass
class Table:
    """A caption, column headings (none for a name/value table) and rows of cells (a name/value table's rows
    start with the name)."""

    caption: str
    columns: list[str] = field(default_factory=list)
    rows: list[list[Cell]] = field(default_factory=list)


def label(name: str) -> str:
    """Return the words people read for a field name."""
    return LABELS.get(name, name.replace("_", " ").capitalize())


def tables(outputs: Mapping[str, Any]) -> list[Table]:
    """Return the tables for a task's JSON outputs (by output name, the main result first)."""
    found: list[Table] = []
    for name, data in outputs.items():
        title = "Summary" if name == "result" else label(name)
        if isinstance(data, Mapping):
            found.extend(_tables_of(title, data))
        elif _is_records(data):
            found.append(_records_table(title, data))
        else:
            found.append(Table(title, rows=[[Cell(title), format_value(name, data)]]))
    return found


def _tables_of(title: str, data: Mapping[str, Any]) -> list[Table]:
    """Return a record's plain values as one table, then a table for each list of records and each record."""
    summary, more = Table(title), []
    counted = {len(value) for value in data.values() if isinstance(value, list)}
    for name, value in data.items():
        if _is_records(value):
            more.append(_records_table(label(name), value))
        elif isinstance(value, Mapping) and not _is_points(value):
            more.extend(_tables_of(label(name), value))
        elif name == "count" and value in counted:
            continue  # the list's caption says it: "Faces (2)"
        else:
            summary.rows.append([Cell(label(name)), format_value(name, value)])
    return ([summary] if summary.rows else []) + more


def _records_table(title: str, records: list[Mapping[str, Any]]) -> Table:
    columns = list(dict.fromkeys(name for record in records for name in record))
    rows = [[format_value(name, record.get(name)) for name in columns] for record in records]
    return Table(f"{title} ({len(records)})", [label(name) for name in columns], rows)


def _is_records(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(item, Mapping) for item in value)


def _is_point(value: Any) -> bool:
    return isinstance(value, (list, tuple)) and len(value) == 2 and all(_is_number(item) for item in value)


def _is_points(value: Mapping[str, Any]) -> bool:
    return bool(value) and all(_is_point(item) for item in value.values())


def _is_number(value: Any) -> bool:
    return isinstance(value, Real) and not isinstance(value, bool)


def format_value(name: str, value: Any) -> Cell:
    """Return a value as people read it, with its unit."""
    if value is None:
        return Cell("—")
    if isinstance(value, bool):
        return Cell("yes" if value else "no")
    if _is_number(value):
        return Cell(_number(name, value))
    if isinstance(value, str):
        return Cell(value)
    if isinstance(value, (list, tuple)) and len(value) == 4 and all(_is_number(item) for item in value):
        return Cell(_box(value))
    if _is_point(value):
        return Cell(_point(value))
    if isinstance(value, Mapping):
        return Cell(lines=tuple(f"{label(key)} {_text(format_value(key, item))}" for key, item in value.items()))
    if isinstance(value, (list, tuple)):
        return Cell(", ".join(_text(format_value(name, item)) for item in value) or "none")
    return Cell(str(value))


def _text(cell: Cell) -> str:
    return cell.text or "; ".join(cell.lines)


def _number(name: str, value: Real) -> str:
    if (name in PERCENT_FIELDS or name.endswith("_fraction")) and 0 <= value <= 1:
        return f"{value * 100:.1f} %"
    if name == "area" or name.endswith("_area"):
        return f"{value:,.0f} px²"
    if name in PIXEL_FIELDS:
        return f"{value:,.0f} px"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"


def _box(box: Any) -> str:
    """Return x1, y1, x2, y2 in photo pixels as its size and its top-left corner."""
    x1, y1, x2, y2 = box
    return f"{round(x2 - x1)} × {round(y2 - y1)} px at ({round(x1)}, {round(y1)})"


def _point(point: Any) -> str:
    return f"({round(point[0])}, {round(point[1])})"
