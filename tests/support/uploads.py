"""Helpers for the upload tests: the same bad input through the API and the HTML form, and what is kept."""

from __future__ import annotations

import html
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from redis import Redis
from sqlalchemy import func, select

from ml.operations import OPERATIONS
from studio.extensions import db
from studio.models import Task
from tests.support.studio import PASSWORD
from tests.support.web import csrf_token

ROUTES = ("api", "html")
# The upload page lists refusals beside its button, one sentence each.
_ERROR_BOX = re.compile(r'<div id="upload-errors"[^>]*>(.*?)</div>', re.S)
_ERRORS = re.compile(r"<li>(.*?)</li>", re.S)
# What the upload page calls the fields that are not options.
_PAGE_NAMES = {"photo": "The photo"}


@dataclass
class Answer:
    """What a route answered to an upload: the status, the error code (API only) and the text a person reads."""

    status: int
    code: str | None
    text: str
    location: str | None
    body: str


class Uploader:
    """Upload through one route, as the API client or as a person with the HTML form would."""

    def __init__(self, route: str, client: FlaskClient, headers: dict[str, str]) -> None:
        self.route = route
        self.client = client
        self.headers = headers

    def send(self, data: bytes, filename: str = "photo.jpg", content_type: str | None = None,
             **options: Any) -> Answer:
        """Upload one file with options; content_type is the (possibly false) type the client claims."""
        part = (io.BytesIO(data), filename, content_type) if content_type else (io.BytesIO(data), filename)
        if self.route == "api":
            response = self.client.post("/api/v1/tasks", headers=self.headers, content_type="multipart/form-data",
                                        data={"image": part, **options})
            body = response.get_data(as_text=True)
            payload = response.get_json(silent=True) or {}
            error = payload.get("error") or {}
            return Answer(response.status_code, error.get("code"), error.get("message", ""),
                          response.headers.get("Location"), body)
        form = {"csrf_token": csrf_token(self.client, "/"), "photo": part, **options}
        response = self.client.post("/tasks", data=form, content_type="multipart/form-data")
        body = response.get_data(as_text=True)
        box = _ERROR_BOX.search(body)
        errors = _ERRORS.findall(box.group(1)) if box else []
        return Answer(response.status_code, None, html.unescape(" ".join(errors)), response.headers.get("Location"),
                      body)

    def names(self, field: str, operation: str = "remove_background") -> str:
        """Return how this route names a field: "margin:" to the API, its label ("Margin (pixels)") on the page."""
        if self.route == "api":
            return f"{field}:"
        prop = OPERATIONS[operation].option_schema()["properties"].get(field, {})
        return prop.get("title") or _PAGE_NAMES[field]

    def says(self, field: str, detail: str, operation: str = "remove_background") -> str:
        """Return how this route words a refusal of a field: "margin: ..." to the API, "Margin (pixels): ..." (by
        the option's label, as a sentence) on the page."""
        if self.route == "api":
            return f"{field}: {detail}"
        return self.names(field, operation) + (" " if detail.startswith(("must ", "is ")) else ": ") + detail

    def task_id(self, answer: Answer) -> str:
        """Return the id of the task an accepted upload created."""
        assert answer.status in (201, 202, 302), (answer.status, answer.text)
        return answer.location.rstrip("/").rsplit("/", 1)[-1]


def sign_in(client: FlaskClient, email: str) -> None:
    """Sign a test client in through the real form."""
    response = client.post("/login", data={"email": email, "password": PASSWORD,
                                           "csrf_token": csrf_token(client, "/login")})
    assert response.status_code == 302, response.get_data(as_text=True)[:500]


def stored_files(app: Flask) -> list[Path]:
    """Return every file in the app's local storage."""
    root = Path(app.config["STUDIO_STORAGE_DIR"])
    return sorted(path for path in root.rglob("*") if path.is_file()) if root.exists() else []


def queued_ids(app: Flask) -> list[bytes]:
    """Return the job ids waiting in the app's queue."""
    return Redis.from_url(app.config["REDIS_URL"]).lrange(f"rq:queue:{app.config['STUDIO_QUEUE']}", 0, -1)


def task_count(app: Flask) -> int:
    """Return how many task rows exist."""
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(Task))


def assert_nothing_kept(app: Flask) -> None:
    """Assert that a refused upload left nothing behind: no file, no task row, no job."""
    assert stored_files(app) == []
    assert task_count(app) == 0
    assert queued_ids(app) == []
