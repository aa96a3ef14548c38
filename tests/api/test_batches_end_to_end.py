"""A batch from upload to archive on a real worker with the real model: three fixture photos processed, one
failing first, the ZIP checked with its manifest, the failure retried and run again, the full ZIP checked."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from PIL import Image

from jobs import process_image
from ml.runner import OperationFailed, process
from tests.support.batches import BATCHES, post_images
from tests.support.studio import run_worker

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PHOTOS = ("rifle2.jpeg", "long.jpg", "horse.jpg")


def test_three_photos_are_processed_by_a_worker_retried_and_come_back_in_one_archive(
        app, client, headers, model_ready, photo_bytes, monkeypatch):
    # The worker runs in this process: its first run on long.jpg fails as a bad photo does (no retry by RQ).
    unlucky = Image.open(io.BytesIO(photo_bytes("long.jpg"))).size
    failures = []

    def process_or_fail(operation, data, *args, **kwargs):
        if not failures and Image.open(io.BytesIO(data)).size == unlucky:
            failures.append(unlucky)
            raise OperationFailed("The photo could not be processed this time.")
        return process(operation, data, *args, **kwargs)

    monkeypatch.setattr(process_image, "process", process_or_fail)
    body = post_images(client, headers, [(name, photo_bytes(name)) for name in PHOTOS],
                       operation="remove_background").get_json()
    run_worker(app)
    shown = client.get(f"{BATCHES}/{body['id']}", headers=headers).get_json()
    assert [task["status"] for task in shown["tasks"]] == ["COMPLETED", "FAILED", "COMPLETED"]
    assert shown["finished"] and shown["progress"] == 100
    with zipfile.ZipFile(io.BytesIO(client.get(shown["archive_url"], headers=headers).get_data())) as archive:
        assert archive.namelist() == ["rifle2.png", "horse.png", "manifest.json"]
        assert json.loads(archive.read("manifest.json"))["failed"][0]["original"] == "long.jpg"

    assert client.post(f"{BATCHES}/{body['id']}/retry", headers=headers).status_code == 200
    run_worker(app)
    shown = client.get(f"{BATCHES}/{body['id']}", headers=headers).get_json()
    assert shown["counts"]["COMPLETED"] == 3
    answer = client.get(shown["archive_url"], headers=headers)
    assert answer.status_code == 200
    with zipfile.ZipFile(io.BytesIO(answer.get_data())) as archive:
        assert archive.namelist() == ["rifle2.png", "long.png", "horse.png", "manifest.json"]
        for name, original in zip(archive.namelist(), PHOTOS):
            cutout = Image.open(io.BytesIO(archive.read(name)))
            source = Image.open(io.BytesIO(photo_bytes(original)))
            assert (cutout.mode, cutout.size) == ("RGBA", source.size)
            low, high = cutout.getchannel("A").getextrema()
            assert low < 10 and high > 245  # some background removed, some subject kept
        assert json.loads(archive.read("manifest.json"))["failed"] == []
