"""Every operation that cuts out takes alpha_matting and changes its result with it, run as the worker runs it."""

from __future__ import annotations

import io
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image, ImageFilter

from ml.operations import Limits, get_operation
from ml.operations.base import Inputs
from ml.registry import MODELS
from ml.runner import process

pytestmark = pytest.mark.slow

LIMITS = Limits(50_000_000, 64_000_000)


def result(name: str, photo: bytes, model_dir, **options) -> np.ndarray:
    operation = get_operation(name)
    outputs = process(operation, photo, operation.parse(options, models=tuple(MODELS)), model_dir=model_dir,
                      limits=LIMITS)
    return np.asarray(Image.open(io.BytesIO(outputs[0].data)), dtype=np.int16)


def small(photos_dir, name: str, width: int) -> bytes:
    with Image.open(photos_dir / name) as image:
        image = image.convert("RGB")
        image = image.resize((width, round(image.height * width / image.width)), Image.LANCZOS)
    buffer = io.BytesIO()
    image.save(buffer, "PNG")
    return buffer.getvalue()


@pytest.mark.parametrize("name, photo, width, options", [
    ("remove_background", "horse.jpg", 400, {"bg_color": "#202020"}),
    ("stylize", "horse.jpg", 400, {"apply_to": "background", "working_size": "256", "feather": "0",
                                   "format": "png"}),
    # A thin rifle 96 pixels wide: a smaller erosion leaves it a sure inside.
    ("upscale", "rifle2.jpeg", 96, {"remove_background": "true", "scale": "2", "alpha_matting_erode_size": "2"}),
])
def test_alpha_matting_changes_the_edge_of_every_cutout(model_dir, photos_dir, name, photo, width, options):
    data = small(photos_dir, photo, width)
    plain = result(name, data, model_dir, **options)
    matted = result(name, data, model_dir, alpha_matting="true", **options)
    assert plain.shape == matted.shape
    if plain.shape[-1] == 4:
        # A transparent cutout: what matting changes is its alpha (colours under alpha 0 do not count).
        plain, matted = plain[..., 3:], matted[..., 3:]
    changed = (np.abs(plain - matted).max(axis=-1) > 8).mean()
    # Some of the edge changes, not the whole photo (the thin rifle at 96 pixels is mostly edge).
    assert 0.002 < changed < 0.6, changed


def test_foreground_colours_change_a_cutout_on_a_colour_and_can_be_turned_off(model_dir, photos_dir):
    data = small(photos_dir, "horse.jpg", 400)
    on = result("remove_background", data, model_dir, bg_color="#202020")
    off = result("remove_background", data, model_dir, bg_color="#202020", estimate_foreground="false")
    assert (np.abs(on - off).max(axis=-1) > 8).mean() > 0.002


def test_id_photo_lays_out_the_matted_and_recoloured_person(monkeypatch):
    # No fixture photo has one face large enough for a print: the run's parts around the cutout are stood in for.
    import ml.runs.id_photo as id_photo_run

    photo = Image.new("RGB", (64, 64), (40, 200, 60))
    photo.paste((150, 90, 60), (16, 8, 48, 64))
    mask = Image.new("L", (64, 64), 0)
    mask.paste(255, (16, 8, 48, 64))
    mask = mask.filter(ImageFilter.GaussianBlur(3))
    laid_out = {}

    def lay_out(person: Image.Image, face: object, alpha: Image.Image, **options: object) -> Image.Image:
        laid_out.update(person=person, alpha=alpha)
        return person

    monkeypatch.setattr(id_photo_run, "detected_faces", lambda *arguments, **keywords: ["face"])
    monkeypatch.setattr(id_photo_run, "choose_single_face", lambda faces: faces[0])
    monkeypatch.setattr(id_photo_run, "predict_mask", lambda image, session: mask)
    monkeypatch.setattr(id_photo_run, "lay_out", lay_out)
    context = SimpleNamespace(progress=lambda *arguments: None, session=lambda name: None)
    operation = get_operation("id_photo")
    id_photo_run.run(Inputs(photo), operation.parse({"alpha_matting": "true", "alpha_matting_erode_size": "2"}),
                     context)
    assert (np.asarray(laid_out["alpha"], dtype=int) != np.asarray(mask, dtype=int)).mean() > 0.01
    id_photo_run.run(Inputs(photo), operation.parse({}), context)
    alpha, person = np.asarray(laid_out["alpha"], dtype=int), np.asarray(laid_out["person"], dtype=int)
    edge = (alpha > 0) & (alpha < 255)
    # The old background's green is taken out of the person's edge (the person goes on a plain colour).
    assert person[edge][:, 1].mean() < np.asarray(photo, dtype=int)[edge][:, 1].mean() - 20
