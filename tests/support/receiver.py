"""A real HTTP receiver on a local port, for the webhook tests."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class Receiver:
    """An HTTP server on a local port that records each POST and answers with the scripted statuses in turn."""

    def __init__(self, name: str = "receiver", events: list[tuple[str, str]] | None = None) -> None:
        self.answers: list[int] = [204]
        self.calls: list[dict[str, Any]] = []
        # With silent set, a call is read and never answered: the receiver waits until the caller hangs up.
        self.silent = False
        # ("call", name) on each call and ("hung up", name) when a caller gives up on a silent receiver, in the order
        # they happened; several receivers may share one list.
        self.name = name
        self.events: list[tuple[str, str]] = [] if events is None else events
        # With endless_answer set, the answer's body never ends: it streams until the caller hangs up.
        self.endless_answer = False
        self.bytes_sent = 0
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                receiver.calls.append({"path": self.path, "headers": dict(self.headers), "body": body})
                receiver.events.append(("call", receiver.name))
                if receiver.silent:
                    self._wait_until_hung_up()
                    return
                status = receiver.answers.pop(0) if len(receiver.answers) > 1 else receiver.answers[0]
                self.send_response(status)
                if receiver.endless_answer:
                    self.send_header("Content-Length", str(1 << 40))
                    self.end_headers()
                    self._stream_until_hung_up()
                    return
                self.send_header("Content-Length", "0")
                self.end_headers()

            def _wait_until_hung_up(self) -> None:
                try:
                    while self.connection.recv(1024):
                        pass
                except OSError:
                    pass
                receiver.events.append(("hung up", receiver.name))
                self.close_connection = True

            def _stream_until_hung_up(self) -> None:
                chunk = b"x" * 65536
                try:
                    while receiver.bytes_sent < 1 << 30:
                        self.wfile.write(chunk)
                        receiver.bytes_sent += len(chunk)
                except OSError:
                    pass

            def log_message(self, *_: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hooks/photo?source=studio"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class NeverAccepting:
    """A local port that never accepts a connection: its listen queue is full, so a connect hangs until it times out."""

    def __init__(self) -> None:
        self.socket = socket.socket()
        self.socket.bind(("127.0.0.1", 0))
        self.socket.listen(0)
        port = self.socket.getsockname()[1]
        # One connection the server never accepts fills the queue; later handshakes get no answer.
        self.filler = socket.create_connection(("127.0.0.1", port))
        self.url = f"http://127.0.0.1:{port}/hooks/photo"

    def close(self) -> None:
        self.filler.close()
        self.socket.close()
