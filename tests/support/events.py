"""A Server-Sent Events client for the tests: `requests` reading a live stream, parsed as EventSource would."""

from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from flask import Flask

from studio.queue import get_redis
from studio.tasks.events import CHANNEL

READ_SECONDS = 60


@dataclass
class Event:
    """One event as EventSource dispatches it, plus the retry field it carried."""

    event: str = "message"
    data: Any = None
    id: str | None = None
    retry: int | None = None


@dataclass
class Stream:
    """What one request to an event stream gave: its status, headers, events and comments, until it closed."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    events: list[Event] = field(default_factory=list)
    comments: list[str] = field(default_factory=list)
    retry: list[int] = field(default_factory=list)


def read_stream(url: str, headers: dict[str, str]) -> Stream:
    """Read an event stream until the server closes it (a read that stalls fails the test)."""
    stream = Stream()
    with requests.get(url, headers=headers, stream=True, timeout=READ_SECONDS) as response:
        stream.status, stream.headers = response.status_code, dict(response.headers)
        if response.status_code != 200:
            return stream
        current: dict[str, str] = {}
        for line in response.iter_lines(decode_unicode=True):
            if not line:
                if "data" in current or "event" in current or "id" in current:
                    stream.events.append(Event(current.get("event", "message"),
                                               json.loads(current["data"]) if "data" in current else None,
                                               current.get("id"), int(current["retry"]) if "retry" in current
                                               else None))
                if "retry" in current:
                    stream.retry.append(int(current["retry"]))
                current = {}
            elif line.startswith(":"):
                stream.comments.append(line[1:].strip())
            else:
                name, _, value = line.partition(":")
                current[name] = value.removeprefix(" ")
    return stream


class StreamReader(threading.Thread):
    """A client reading an event stream in a thread of its own."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        super().__init__(daemon=True)
        self.url, self.request_headers = url, headers
        self.stream: Stream | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.stream = read_stream(self.url, self.request_headers)
        except BaseException as error:  # handed to the test, which reports it
            self.error = error

    def result(self) -> Stream:
        """Wait for the stream to close; return what it gave."""
        self.join(READ_SECONDS)
        assert not self.is_alive(), "the stream never closed"
        if self.error is not None:
            raise self.error
        return self.stream


def wait_until_streaming(app: Flask, task_id: str, subscribers: int = 1) -> None:
    """Wait until that many streams have subscribed to the task's events."""
    channel = CHANNEL.format(task_id)
    with app.app_context():
        redis = get_redis()
        for _ in range(1000):
            if dict(redis.pubsub_numsub(channel))[channel.encode()] >= subscribers:
                return
            time.sleep(0.01)
    raise AssertionError("the stream never subscribed")
