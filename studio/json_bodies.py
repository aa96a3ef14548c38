"""JSON request bodies parsed within bounds: a deeply nested or oversized body is a 400, never a 500.

Python's json module recurses once per level of nesting, so `[[[[...]]]]` a hundred thousand deep raises
RecursionError, which Flask does not turn into a 400. The app's JSON provider checks the size and the nesting
first; whatever it refuses raises ValueError, which Flask's request.get_json answers with 400 Bad Request (or
None with silent=True).
"""

from __future__ import annotations

from typing import Any

from flask.json.provider import DefaultJSONProvider

MAX_JSON_BYTES = 64 * 1024
MAX_JSON_DEPTH = 32


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON provider, refusing bodies over MAX_JSON_BYTES or nested deeper than MAX_JSON_DEPTH."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        """Parse JSON after checking its size and nesting; raise ValueError for either."""
        if len(s) > MAX_JSON_BYTES:
            raise ValueError(f"the JSON body is larger than {MAX_JSON_BYTES:,} bytes")
        check_depth(s if isinstance(s, str) else s.decode("utf-8", errors="replace"))
        return super().loads(s, **kwargs)


def check_depth(text: str, limit: int = MAX_JSON_DEPTH) -> None:
    """Raise ValueError when arrays and objects nest deeper than limit (brackets inside strings do not count)."""
    depth, in_string, escaped = 0, False, False
    for character in text:
        if in_string:
            if escaped:
                escaped = False
            elif character == "\\":
                escaped = True
            elif character == '"':
                in_string = False
        elif character == '"':
            in_string = True
        elif character in "[{":
            depth += 1
            if depth > limit:
                raise ValueError(f"the JSON body nests deeper than {limit} levels")
        elif character in "]}":
            depth -= 1
