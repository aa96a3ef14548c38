"""Logging for the web app, the workers and the scheduler: one JSON object a line, ids on every line, no secrets.

JSON lines come from python-json-logger (maintained, used widely): it carries `extra=` fields, exceptions and
values json cannot encode into the object; what is ours is the field names, the context and the redaction.

A request's id is always the server's own (new for each request, returned in the response's X-Request-ID); the
X-Request-ID the request came with (nginx's, or anything a client made up) is kept apart as `client_request_id`
when it is short and plain, so no client can make its lines pass for another request's. Both sit in a context
variable that a handler filter copies onto every record of the request; `current_request_id()` hands the server's
id to the job being enqueued and `bind(request_id=..., task_id=...)` puts it, with the task id, on every line the
job logs. Redaction happens in the formatter, on the finished text or fields, so nothing that reaches a line
escapes it; so does, in the text format, the escaping of control characters, so no text a client sent (a path,
a header, an email, a file name) can start a line of its own.
"""

from __future__ import annotations

import logging
import re
import sys
import time
import uuid
from urllib.parse import quote
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Iterator, Mapping

from flask import Flask, g, request
from pythonjsonlogger.json import JsonFormatter
from werkzeug.wrappers import Response

logger = logging.getLogger(__name__)

REQUEST_ID_HEADER = "X-Request-ID"
# nginx's $request_id is 32 hex digits, a UUID 36 characters; anything else short and plain is kept as it came,
# in its own field. Longer or with other characters, it is dropped.
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
# Probes and scrapes come every few seconds from machines; at INFO they would drown the requests of people.
QUIET_ENDPOINTS = frozenset({"health.healthz", "health.livez", "health.readyz", "metrics.metrics"})
REDACTED = "[REDACTED]"
# What a path shows unencoded in a request's line: RFC 3986's unreserved and sub-delimiter characters, ":" and "@".
_PATH_SAFE = "/:@!$&'()*+,;=-._~"

_context: ContextVar[Mapping[str, str]] = ContextVar("studio_log_context", default={})

# (pattern, replacement) applied in order to every string that reaches a line.
_REDACTIONS: tuple[tuple[re.Pattern[str], str], ...] = (
    # Header lines and header dicts: the credential of Authorization, every cookie of Cookie and Set-Cookie.
    (re.compile(r"(?i)((?:proxy-)?authorization['\"]?\s*[:=]\s*['\"]?)(?:(?:bearer|basic|token)\s+)?[^\s'\",;]+"),
     rf"\1{REDACTED}"),
    (re.compile(r"(?i)((?:set-)?cookie['\"]?\s*[:=]\s*['\"]?)[^'\"\n]+"), rf"\1{REDACTED}"),
    (re.compile(r"(?i)\b(bearer|basic)\s+(?!\[REDACTED\])[A-Za-z0-9._~+/=-]+"), rf"\1 {REDACTED}"),
    # Our API tokens and webhook secrets, wherever they appear.
    (re.compile(r"\b(ps|whsec)_[A-Za-z0-9_+/=-]{6,}"), rf"\1_{REDACTED}"),
    # Flask's session and remember-me cookies written as name=value.
    (re.compile(r"(?i)\b(session|remember_token)=[^;\s'\"]+"), rf"\1={REDACTED}"),
    # Presigned URLs: the query string is the credential.
    (re.compile(r"(?i)(\bhttps?://[^\s?'\"<>]+)\?[^\s'\"<>]*(?:x-amz-|signature=|awsaccesskeyid=)[^\s'\"<>]*"),
     rf"\1?{REDACTED}"),
    # Passwords in connection URLs (postgresql://user:secret@host, redis://:secret@host).
    (re.compile(r"(?i)\b([a-z][a-z0-9+.-]*://[^:/\s@'\"]*:)[^@\s/'\"]+@"), rf"\1{REDACTED}@"),
    # key=value and "key": "value" for anything named like a secret.
    (re.compile(r"(?i)\b([a-z0-9_-]*(?:password|passwd|secret|token|api_?key|signature)[a-z0-9_-]*)"
                r"(['\"]?\s*[:=]\s*['\"]?)(?!\[REDACTED\])[^'\"\s,;&)}]+"), rf"\1\2{REDACTED}"),
)
# Fields whose whole value is withheld, whatever it looks like (`extra={"password": ...}`, EXIF blocks).
_SECRET_FIELD = re.compile(r"(?i)password|passwd|secret|token|authorization|cookie|signature|exif")


# Characters that end a line or change how one shows: C0 and C1 controls (newline, carriage return, escape
# sequences), DEL, Unicode's line and paragraph separators, and the bidirectional overrides and isolates.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
_ESCAPES = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
# In the text format, what follows a record's first line (a traceback) starts with this, so a record's first line
# is the only one that starts at the left edge.
CONTINUATION = "  | "


def _escaped(match: re.Match[str]) -> str:
    character = match.group()
    return _ESCAPES.get(character) or (f"\\x{ord(character):02x}" if ord(character) < 0x100
                                       else f"\\u{ord(character):04x}")


def escape_controls(text: str) -> str:
    """Return the text on one line: control characters, line separators and bidi controls written as escapes."""
    return _UNPRINTABLE.sub(_escaped, text)


def redact(text: str) -> str:
    """Return the text with credentials, cookies and presigned query strings replaced by [REDACTED]."""
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


def _redact_value(key: str, value: Any) -> Any:
    if _SECRET_FIELD.search(key):
        return REDACTED
    if isinstance(value, (bytes, bytearray)):
        # Never a photo, its EXIF or a key in a log line: only how large it was.
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, Mapping):
        return {name: _redact_value(str(name), item) for name, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value(key, item) for item in value]
    if value is None or isinstance(value, (bool, int, float)):
        return value
    if isinstance(value, datetime):
        return value.isoformat()
    return redact(str(value))


class StudioJsonFormatter(JsonFormatter):
    """One JSON object a line: time, level, logger, message, process, the context ids, extras; redacted."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message", "process"],
            rename_fields={"levelname": "level", "name": "logger"},
            timestamp="time",
            # Every character past ASCII escaped: a reader that splits on U+2028 or U+0085 sees one line too.
            json_ensure_ascii=True,
        )

    def process_log_record(self, log_data: dict[str, Any]) -> dict[str, Any]:
        """Redact every field before it is serialized."""
        return {key: _redact_value(key, value) for key, value in log_data.items()}


class StudioTextFormatter(logging.Formatter):
    """A line for people to read: the usual fields, then the context ids; redacted, control characters escaped.

    A record is one line, whatever its message holds; a traceback follows on lines that start with CONTINUATION.
    """

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(process)d %(levelname)s %(name)s: %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        """Format the record on one line, add the context ids, then the traceback's lines; redacted."""
        record.message = record.getMessage()
        record.asctime = self.formatTime(record, self.datefmt)
        line = self.formatMessage(record)
        fields = " ".join(f"{key}={value}" for key, value in _context.get().items())
        line = escape_controls(redact(f"{line} [{fields}]" if fields else line))
        details = []
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            details.append(record.exc_text)
        if record.stack_info:
            details.append(self.formatStack(record.stack_info))
        for detail in details:
            line += "".join(f"\n{CONTINUATION}{escape_controls(part)}" for part in redact(detail).splitlines())
        return line


class ContextFilter(logging.Filter):
    """Copy the request and task ids of the current context onto each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Add the context's fields the record does not have yet; keep the record."""
        for key, value in _context.get().items():
            if not hasattr(record, key):
                setattr(record, key, value)
        return True


FORMATTERS = {"json": StudioJsonFormatter, "text": StudioTextFormatter}


class StandardErrorHandler(logging.StreamHandler):
    """Writes to sys.stderr as it is when a record comes, not as it was when logging was configured."""

    @property  # type: ignore[override]
    def stream(self) -> Any:
        """Return the current standard error (test runners and servers may have replaced it)."""
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def make_handler(fmt: str = "json") -> logging.Handler:
    """Return the standard-error handler every process logs through (also named by gunicorn's logconfig_dict)."""
    handler = StandardErrorHandler()
    handler.setFormatter(FORMATTERS[fmt]())
    handler.addFilter(ContextFilter())
    handler._studio = True  # type: ignore[attr-defined]  # lets configure() replace it, and only it
    return handler


def configure(level: str | int = "INFO", fmt: str = "json") -> None:
    """Send every logger's records at `level` and above to standard error, as JSON lines or text."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        if getattr(handler, "_studio", False):
            root.removeHandler(handler)
    root.addHandler(make_handler(fmt))
    root.setLevel(level)
    # Python's warnings too, as lines like the others instead of bare text on standard error.
    logging.captureWarnings(True)


def configure_from(config: Mapping[str, Any]) -> None:
    """Configure logging from the settings STUDIO_LOG_LEVEL and STUDIO_LOG_FORMAT."""
    configure(config["STUDIO_LOG_LEVEL"], config["STUDIO_LOG_FORMAT"])


def gunicorn_logconfig(level: str = "INFO", fmt: str = "json") -> dict[str, Any]:
    """Return gunicorn's logconfig_dict: its own lines through our handler, no access log (the app logs requests)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "root": {"level": level, "handlers": ["studio"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": [], "propagate": True},
            "gunicorn.access": {"level": "WARNING", "handlers": [], "propagate": False},
        },
        "handlers": {"studio": {"()": "studio.logs.make_handler", "fmt": fmt}},
        "formatters": {},
    }


def current_request_id() -> str | None:
    """Return the id of the request being served (to put in the meta of the job it enqueues), or None."""
    return _context.get().get("request_id")


@contextmanager
def bind(**fields: str | None) -> Iterator[None]:
    """Put these fields (request_id, task_id) on every line logged inside the block; None values are left out."""
    token = _context.set({**_context.get(), **{key: str(value) for key, value in fields.items() if value}})
    try:
        yield
    finally:
        _context.reset(token)


def client_request_id_from(header: str | None) -> str | None:
    """Return the X-Request-ID the request came with when it is short and plain, else None."""
    return header if header and _VALID_REQUEST_ID.fullmatch(header) else None


def new_request_id() -> str:
    """Return a new id for a request: the server's own, never one a client chose."""
    return uuid.uuid4().hex


def init_app(app: Flask) -> None:
    """Configure logging from the settings, and give every request an id that its log lines and response carry."""
    configure_from(app.config)
    app.before_request(_begin_request)
    app.after_request(_log_request)
    app.teardown_request(_end_request)


def _begin_request() -> None:
    ids = {"request_id": new_request_id(),
           "client_request_id": client_request_id_from(request.headers.get(REQUEST_ID_HEADER))}
    g.studio_log_token = _context.set({**_context.get(), **{key: value for key, value in ids.items() if value}})
    g.studio_request_started = time.perf_counter()


def _log_request(response: Response) -> Response:
    request_id = current_request_id()
    if request_id:
        response.headers[REQUEST_ID_HEADER] = request_id
    started = g.get("studio_request_started")
    milliseconds = round((time.perf_counter() - started) * 1000, 1) if started is not None else None
    # The path without its query string: queries may carry tokens, and the endpoint names the page anyway. The
    # message shows it encoded as on the wire, so a space or bracket in it cannot pass for the line's own fields.
    logger.log(
        logging.DEBUG if request.endpoint in QUIET_ENDPOINTS else logging.INFO,
        "%s %s %s", request.method, quote(request.path, safe=_PATH_SAFE), response.status_code,
        extra={"method": request.method, "path": request.path, "endpoint": request.endpoint,
               "status": response.status_code, "duration_ms": milliseconds, "client": request.remote_addr},
    )
    return response


def _end_request(_error: BaseException | None) -> None:
    token = g.pop("studio_log_token", None)
    if token is None:
        return
    try:
        _context.reset(token)
    except ValueError:
        # Torn down in another context than it began in: forget the request's fields all the same.
        _context.set({})
