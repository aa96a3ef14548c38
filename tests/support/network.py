"""Local network helpers."""

from __future__ import annotations

import socket
from typing import Any


def free_port() -> int:
    """Return a TCP port nobody listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def scripted_resolver(monkeypatch: Any) -> dict[str, list[str]]:
    """Answer DNS questions for chosen names (as an attacker's DNS would): answers[name] lists the addresses given in
    turn (the last one again and again); every question for a chosen name is recorded under "__asked__"."""
    answers: dict[str, list[str]] = {}
    asked: list[str] = []
    real_getaddrinfo = socket.getaddrinfo

    def getaddrinfo(host: str, port: Any, *args: Any, **kwargs: Any) -> list[tuple[Any, ...]]:
        if host in answers:
            asked.append(host)
            address = answers[host].pop(0) if len(answers[host]) > 1 else answers[host][0]
            if ":" in address:
                return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, int(port), 0, 0))]
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, int(port)))]
        return real_getaddrinfo(host, port, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    answers["__asked__"] = asked  # type: ignore[assignment]
    return answers
