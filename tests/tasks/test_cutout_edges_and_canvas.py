"""A cutout with alpha matting, a shadow and a canvas, end to end: the API, a real RQ worker, the stored result."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from ml.edits.placement import subject_box
from tests.support.studio import load_task, run_worker, upload

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_a_matted_product_on_a_white_canvas_with_a_shadow(app, client, headers, photo_bytes, model_ready):
    options = {"alpha_matting": "true", "add_shadow": "true", "shadow_offset_y": "3", "canvas": "600x600",
               "position": "center", "scale": "80", "padding": "5", "bg_color": "#ffffff", "format": "jpeg"}
    answer = upload(client, headers, photo_bytes("horse.jpg"), filename="horse.jpg", **options)
    assert answer.status_code == 202, answer.get_json()
    assert answer.get_json()["options"]["alpha_matting"] is True
    run_worker(app)
    task = load_task(app, answer.get_json()["id"])
    assert (task.status, task.error) == ("COMPLETED", None)
    result = Image.open(io.BytesIO(client.get(f"/api/v1/tasks/{task.id}/result", headers=headers).data))
    assert result.format == "JPEG" and result.size == (600, 600)
    values = np.asarray(result.convert("L"), dtype=int)
    subject = Image.fromarray(((values < 200) * 255).astype(np.uint8))
    left, top, right, bottom = subject_box(subject)
    # 80% of the 540-pixel free width, centred (the horse is wider than tall); its shadow darkens the canvas below.
    assert abs((right - left) - 432) <= 12 and abs((left + right) / 2 - 300) <= 8
    assert values[:20].min() >= 250 and values[bottom + 2:bottom + 10, left:right].mean() < 250
