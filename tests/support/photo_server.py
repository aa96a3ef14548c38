"""A real HTTP server on a local address that serves scripted answers by path, for the photos-by-URL tests."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Answer:
    """What the server sends for one path: a status, headers and a body."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)


class PhotoServer:
    """Serve scripted answers by path on host (127.0.0.1 unless told), recording every request's path."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.answers: dict[str, Answer] = {}
        self.requests: list[str] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                server.requests.append(self.path)
                answer = server.answers.get(self.path, Answer(404, b"not here"))
                self.send_response(answer.status)
                for name, value in answer.headers.items():
                    if value != "":  # an empty Content-Length: none sent, the body ends when the connection does
                        self.send_header(name, value)
                if answer.headers.get("Content-Length") is None:
                    self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                try:
                    self.wfile.write(answer.body)
                except OSError:
                    pass  # the client hung up (a body over its cap)

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.host, self.port = host, self.server.server_port
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def serve(self, path: str, body: bytes, content_type: str = "image/png", status: int = 200) -> str:
        """Answer path with this body; return its URL."""
        self.answers[path] = Answer(status, body, {"Content-Type": content_type})
        return self.url(path)

    def redirect(self, path: str, location: str, status: int = 302) -> str:
        """Answer path with a redirect to location; return its URL."""
        self.answers[path] = Answer(status, b"", {"Location": location})
        return self.url(path)

    def url(self, path: str, host: str | None = None) -> str:
        """Return the URL of a path on this server (under another host name, when given)."""
        return f"http://{host or self.host}:{self.port}{path}"

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
