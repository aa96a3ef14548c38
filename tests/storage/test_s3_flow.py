"""The whole flow on S3 (moto's server): upload, a real worker, a presigned redirect, re-run and delete."""

from __future__ import annotations

import io
import urllib.request

import boto3
import pytest
from PIL import Image

from studio.extensions import db
from studio.tasks import service
from tests.support.studio import load_task, run_worker, upload

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _keys(app) -> list[str]:
    client = boto3.client("s3", endpoint_url=app.config["STUDIO_S3_ENDPOINT_URL"], region_name="us-east-1")
    listing = client.list_objects_v2(Bucket=app.config["STUDIO_S3_BUCKET"])
    return sorted(item["Key"] for item in listing.get("Contents", []))


def test_s3_flow_with_presigned_redirect(s3_app, make_user, make_token, photo_bytes, model_ready):
    app, client = s3_app, s3_app.test_client()
    user = make_user()
    headers = make_token(user)
    data = photo_bytes("girl.png")
    task_id = upload(client, headers, data, filename="girl.png", format="webp").get_json()["id"]
    assert _keys(app) == [f"studio/inputs/{user.id}/{task_id}.png"]
    run_worker(app)
    assert load_task(app, task_id).status == "COMPLETED"
    assert _keys(app) == [f"studio/inputs/{user.id}/{task_id}.png", f"studio/results/{user.id}/{task_id}.webp",
                          f"studio/thumbnails/{user.id}/{task_id}-input.webp",
                          f"studio/thumbnails/{user.id}/{task_id}-result.webp"]

    response = client.get(f"/api/v1/tasks/{task_id}/result?download=1", headers=headers)
    assert response.status_code == 302
    assert response.headers["Cache-Control"] == "private, no-store"
    location = response.headers["Location"]
    assert location.startswith(app.config["STUDIO_S3_ENDPOINT_URL"]) and "X-Amz-Expires=300" in location
    with urllib.request.urlopen(location) as presigned:
        body = presigned.read()
        assert presigned.headers["Content-Type"] == "image/webp"
        assert presigned.headers["Content-Disposition"] == 'attachment; filename="girl.webp"'
    result = Image.open(io.BytesIO(body))
    assert result.format == "WEBP" and result.size == Image.open(io.BytesIO(data)).size

    with app.test_request_context():
        task = service.get_task(user, task_id)
        rerun = service.rerun_task(task, {"output": "mask"})
        rerun_id, rerun_key = rerun.id, rerun.input_key
        db.session.remove()
    assert rerun_key == f"inputs/{user.id}/{rerun_id}.png" and f"studio/{rerun_key}" in _keys(app)
    run_worker(app)
    mask = load_task(app, rerun_id)
    assert (mask.status, mask.options["output"]) == ("COMPLETED", "mask")

    assert client.delete(f"/api/v1/tasks/{task_id}", headers=headers).status_code == 204
    assert _keys(app) == [f"studio/inputs/{user.id}/{rerun_id}.png", f"studio/results/{user.id}/{rerun_id}.png",
                          f"studio/thumbnails/{user.id}/{rerun_id}-input.webp",
                          f"studio/thumbnails/{user.id}/{rerun_id}-result.webp"]
