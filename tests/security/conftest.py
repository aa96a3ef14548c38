"""Fixtures for the security tests: an app with rate limits off, a task whose files really are stored, a clock."""

from __future__ import annotations

import uuid
from typing import Any, Callable, Iterator

import pytest
from flask import Flask

from studio.extensions import db
from studio.models import Task, TaskStatus
from studio.storage import get_storage, input_key, result_key, thumbnail_key
from tests.support.security import png_bytes


@pytest.fixture
def app(security_app: Callable[..., Flask]) -> Flask:
    """Return an app with local storage and rate limits off."""
    return security_app()


@pytest.fixture
def make_stored_task(app: Flask) -> Callable[..., str]:
    """Insert a task whose photo, outputs (a result and a preview) and thumbnail really are in storage; return its
    id."""
    def make(user_id: int, status: TaskStatus = TaskStatus.COMPLETED) -> str:
        task_id = str(uuid.uuid4())
        with app.app_context():
            storage = get_storage()
            photo, result = input_key(user_id, task_id, ".png"), result_key(user_id, task_id, ".png")
            preview = result_key(user_id, task_id, ".png", "preview")
            thumbnail = thumbnail_key(user_id, task_id, "result")
            for key in (photo, result, preview, thumbnail):
                storage.put(key, png_bytes(), "image/png")
            db.session.add(Task(
                id=task_id, user_id=user_id, status=status.value, model="u2netp", operation="remove_background",
                options={"model": "u2netp", "output": "cutout", "format": "png", "bg_color": None, "blur": 0,
                         "crop": False, "margin": 0},
                original_filename="holiday.png", input_key=photo, input_content_type="image/png",
                input_size=1, input_width=4, input_height=3, progress=100,
                outputs={"result": {"key": result, "media_type": "image/png", "size": 1},
                         "preview": {"key": preview, "media_type": "image/png", "size": 1}},
                thumbnails={"result": {"key": thumbnail, "media_type": "image/webp", "size": 1}}))
            db.session.commit()
        return task_id
    return make


@pytest.fixture
def moved_clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[float], None]]:
    """Return a function that moves the in-memory rate-limit storage's clock forward by some seconds."""
    import time as real_time

    import limits.storage.memory as memory_storage

    offset = [0.0]

    class Clock:
        """Stands in for the time module inside limits' memory storage."""

        @staticmethod
        def time() -> float:
            return real_time.time() + offset[0]

        def __getattr__(self, name: str) -> Any:
            return getattr(real_time, name)

    monkeypatch.setattr(memory_storage, "time", Clock())

    def move(seconds: float) -> None:
        offset[0] += seconds

    yield move
