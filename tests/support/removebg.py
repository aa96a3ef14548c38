"""The remove.bg-compatible endpoint's tests: the app served over real HTTP in a thread (the clients are other
processes or libraries speaking HTTP), the npm client run through node, and the studio's own API for comparison."""

from __future__ import annotations

import io
import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import numpy
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from werkzeug.serving import make_server

from tests.support.services import require

NPM_CLIENT_DIR = Path(__file__).resolve().parents[1] / "api" / "removebg_clients"


class HttpServer:
    """The Flask app served by werkzeug's threaded server on a free local port (requests may wait concurrently)."""

    def __init__(self, app: Flask) -> None:
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.thread.join(10)


def run_npm_client(base_url: str, function: str, options: dict[str, Any]) -> dict[str, Any]:
    """Call a function of the npm package remove.bg 1.3.0 through node with its endpoint pointed at base_url; return
    {"ok": True, "result": ...} or {"ok": False, "errors": ...}."""
    require((NPM_CLIENT_DIR / "node_modules" / "remove.bg").is_dir(),
            f"the npm package remove.bg is not installed in {NPM_CLIENT_DIR} (make install)")
    completed = subprocess.run(["node", "call.js", base_url, function, json.dumps(options)], cwd=NPM_CLIENT_DIR,
                               capture_output=True, text=True, timeout=180)
    assert completed.stdout.strip(), f"node printed nothing:\n{completed.stderr}"
    return json.loads(completed.stdout.strip().splitlines()[-1])


def studio_result(client: FlaskClient, headers: dict[str, str], photo: bytes, **options: str) -> bytes:
    """Return the result of the studio's own API (POST /api/v1/tasks, then ?wait) for a photo and options."""
    response = client.post("/api/v1/tasks", headers=headers, content_type="multipart/form-data",
                           data={"image": (io.BytesIO(photo), "photo.jpg"), **options})
    assert response.status_code == 202, response.get_data(as_text=True)
    task_id = response.get_json()["id"]
    task = client.get(f"/api/v1/tasks/{task_id}?wait=20", headers=headers).get_json()
    for _ in range(10):
        if task["status"] == "COMPLETED":
            break
        assert task["status"] in ("PENDING", "PROCESSING"), task
        task = client.get(f"/api/v1/tasks/{task_id}?wait=20", headers=headers).get_json()
    result = client.get(f"/api/v1/tasks/{task_id}/result", headers=headers)
    assert result.status_code == 200, result.get_data(as_text=True)
    return result.get_data()


def pixels(data: bytes) -> numpy.ndarray:
    """Return an image's pixels as an array, in its own mode (RGBA, RGB or L)."""
    with Image.open(io.BytesIO(data)) as image:
        return numpy.asarray(image.convert(image.mode if image.mode in ("RGBA", "RGB", "L") else "RGBA"))


def assert_same_pixels(got: bytes, expected: bytes) -> None:
    """Assert two images have the same size, mode and pixels (alpha included)."""
    first, second = pixels(got), pixels(expected)
    assert first.shape == second.shape
    assert numpy.array_equal(first, second), f"{int((first != second).sum())} values differ"
