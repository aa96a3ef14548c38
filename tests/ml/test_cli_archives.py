"""The command line reads photos from a ZIP and writes results to a ZIP, with the upload's ZIP checks."""

from __future__ import annotations

import io
import shutil
import zipfile

import pytest
from PIL import Image

from studio import create_app


@pytest.fixture
def invoke(model_dir):
    app = create_app({"STUDIO_MODEL_DIR": str(model_dir), "TESTING": True})

    def run(*arguments: str):
        return app.test_cli_runner().invoke(args=["studio", *arguments])
    return run


def _zip(path, *entries):
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in entries:
            archive.writestr(name, data)
    return path


@pytest.mark.slow
def test_photos_from_a_zip_and_a_folder_come_back_in_one_zip(invoke, photos_dir, tmp_path):
    folder = tmp_path / "more"
    folder.mkdir()
    shutil.copy(photos_dir / "horse.jpg", folder / "horse.jpg")
    photos = _zip(tmp_path / "photos.zip", ("a/rifle2.jpeg", (photos_dir / "rifle2.jpeg").read_bytes()),
                  ("b/rifle2.jpeg", (photos_dir / "rifle2.jpeg").read_bytes()), ("notes.txt", b"hello"),
                  ("inner.zip", b"PK\x03\x04"))
    out = tmp_path / "results.zip"
    result = invoke("remove-bg", "--out", str(out), str(photos), str(folder))
    assert result.exit_code == 0, result.output
    assert "skipped: photos.zip:inner.zip: nested archives are refused" in result.output
    assert "skipped: photos.zip:notes.txt" in result.output
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist() == ["rifle2.png", "rifle2-2.png", "horse.png"]
        cutout = Image.open(io.BytesIO(archive.read("horse.png")))
        assert cutout.mode == "RGBA" and cutout.size == Image.open(photos_dir / "horse.jpg").size
    assert not list(tmp_path.glob("*.partial"))


@pytest.mark.parametrize("entries, message", [
    ((("bomb.png", bytes(8 * 1024 * 1024)),), "more than 100 times"),
    ((("../escape.png", b"x"),), "points outside the archive"),
])
def test_a_hostile_zip_is_a_usage_error_and_nothing_is_written(invoke, tmp_path, entries, message):
    out = tmp_path / "out"
    result = invoke("remove-bg", "--out", str(out), str(_zip(tmp_path / "bad.zip", *entries)))
    assert result.exit_code == 2 and message in result.output
    assert not out.exists()
