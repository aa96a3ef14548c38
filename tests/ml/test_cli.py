"""The `studio remove-bg` and `studio models` commands."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from PIL import Image

from studio import create_app


@pytest.fixture
def invoke(model_dir):
    app = create_app({"STUDIO_MODEL_DIR": str(model_dir), "TESTING": True})

    def run(*arguments: str):
        return app.test_cli_runner().invoke(args=["studio", *arguments])
    return run


@pytest.mark.slow
def test_a_folder_gives_one_output_per_photo_and_bad_files_fail_alone(invoke, photos_dir, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    for name in ("boat.jpg", "girl.png", "rifle2.jpeg"):
        shutil.copy(photos_dir / name, inputs / name)
    (inputs / "notes.png").write_bytes(b"this is not an image")
    result = invoke("remove-bg", "--out", str(tmp_path / "out"), str(inputs))
    assert result.exit_code == 1
    assert "notes.png" in result.output and "not a JPEG, PNG or WebP" in result.output
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["boat.png", "girl.png", "rifle2.png"]
    boat = Image.open(tmp_path / "out" / "boat.png")
    assert boat.mode == "RGBA" and boat.size == Image.open(photos_dir / "boat.jpg").size


@pytest.mark.slow
def test_one_input_to_a_file_with_options(invoke, photos_dir, tmp_path):
    target = tmp_path / "horse-on-white.jpg"
    result = invoke("remove-bg", "--format", "jpeg", "--bg-color", "#ffffff", "--crop", "--margin", "10",
                    "--out", str(target), str(photos_dir / "horse.jpg"))
    assert result.exit_code == 0, result.output
    output = Image.open(target)
    assert output.format == "JPEG" and output.size[0] < Image.open(photos_dir / "horse.jpg").size[0]
    assert output.getpixel((0, 0)) == pytest.approx((255, 255, 255), abs=3)


@pytest.mark.slow
def test_a_size_preset_from_the_command_line(invoke, photos_dir, tmp_path):
    result = invoke("remove-bg", "--size", "preview", "--out", str(tmp_path / "small.png"),
                    str(photos_dir / "Two_dancers.jpg"))
    assert result.exit_code == 0, result.output
    output = Image.open(tmp_path / "small.png")
    assert output.mode == "RGBA" and output.width * output.height <= 250_000
    assert invoke("remove-bg", "--size", "huge", "--out", str(tmp_path), str(photos_dir / "boat.jpg")).exit_code == 2


@pytest.mark.slow
def test_a_background_image_from_the_command_line(invoke, photos_dir, tmp_path):
    background = tmp_path / "green.png"
    Image.new("RGB", (30, 20), (0, 200, 0)).save(background)
    result = invoke("remove-bg", "--bg-image", str(background), "--format", "jpeg", "--out",
                    str(tmp_path / "horse.jpg"), str(photos_dir / "horse.jpg"))
    assert result.exit_code == 0, result.output
    output = Image.open(tmp_path / "horse.jpg")
    assert output.mode == "RGB" and output.getpixel((1, 1)) == pytest.approx((0, 200, 0), abs=8)
    (tmp_path / "bad.png").write_bytes(b"not an image")
    refused = invoke("remove-bg", "--bg-image", str(tmp_path / "bad.png"), "--out", str(tmp_path),
                     str(photos_dir / "horse.jpg"))
    assert refused.exit_code == 2 and "--bg-image" in refused.output


@pytest.mark.slow
def test_a_post_processed_mask_from_the_command_line_is_hard_edged(invoke, photos_dir, tmp_path):
    for flags, name in (([], "soft.png"), (["--post-process"], "hard.png")):
        result = invoke("remove-bg", "--output", "mask", *flags, "--out", str(tmp_path / name),
                        str(photos_dir / "horse.jpg"))
        assert result.exit_code == 0, result.output
    soft, hard = (set(np.unique(np.asarray(Image.open(tmp_path / name))).tolist()) for name in ("soft.png", "hard.png"))
    assert len(soft) > 2 and hard == {0, 255}


def test_bad_options_are_a_usage_error(invoke, photos_dir, tmp_path):
    result = invoke("remove-bg", "--format", "jpeg", "--out", str(tmp_path), str(photos_dir / "boat.jpg"))
    assert result.exit_code == 2 and "JPEG has no transparency" in result.output
    result = invoke("remove-bg", "--model", "nope", "--out", str(tmp_path), str(photos_dir / "boat.jpg"))
    assert result.exit_code == 2 and "model" in result.output


def test_a_missing_file_is_reported(invoke, tmp_path):
    result = invoke("remove-bg", "--out", str(tmp_path), str(tmp_path / "absent.jpg"))
    assert result.exit_code == 1 and "absent.jpg" in result.output


def test_models_lists_every_model_with_its_state(invoke):
    result = invoke("models")
    assert result.exit_code == 0
    assert "u2netp " in result.output and "available" in result.output
    assert "u2net_human_seg" in result.output and "missing" in result.output


@pytest.mark.slow
def test_process_runs_any_operation_with_its_own_flags_and_writes_every_output(invoke, photos_dir, tmp_path):
    result = invoke("process", "--operation", "mask_stats", "--threshold", "200", "--out", str(tmp_path),
                    str(photos_dir / "horse.jpg"), str(photos_dir / "boat.jpg"))
    assert result.exit_code == 0, result.output
    assert sorted(path.name for path in tmp_path.iterdir()) == ["boat-preview.jpg", "boat.json",
                                                                "horse-preview.jpg", "horse.json"]
    stats = __import__("json").loads((tmp_path / "horse.json").read_text())
    assert stats["width"] == Image.open(photos_dir / "horse.jpg").width and stats["subject"]["found"]
    assert Image.open(tmp_path / "horse-preview.jpg").format == "JPEG"


def test_process_shows_and_checks_the_flags_of_the_operation_it_is_given(invoke, photos_dir, tmp_path):
    help_text = invoke("process", "--operation", "mask_stats", "--help").output
    assert "--threshold" in help_text and "--bg-color" not in help_text
    assert "--bg-color" in invoke("remove-bg", "--help").output
    refused = invoke("process", "--operation", "mask_stats", "--threshold", "999", "--out", str(tmp_path),
                     str(photos_dir / "horse.jpg"))
    assert refused.exit_code == 2 and "threshold: must be from 1 to 254, got 999" in refused.output
    unknown = invoke("process", "--operation", "sharpen", "--out", str(tmp_path), str(photos_dir / "horse.jpg"))
    assert unknown.exit_code == 2 and "'sharpen' is not an operation" in unknown.output
    assert invoke("process", "--out", str(tmp_path), str(photos_dir / "horse.jpg")).exit_code == 2


def test_operations_lists_every_operation_with_its_flags(invoke):
    result = invoke("operations")
    assert result.exit_code == 0
    assert "remove_background" in result.output and "--bg-color" in result.output
    assert "mask_stats" in result.output and "--threshold" in result.output
