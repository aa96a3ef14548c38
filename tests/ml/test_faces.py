"""Face operations on the fixture photos of people: anonymize, beautify, ID photos and their refusals."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image, ImageDraw, ImageFilter

from ml.edits import faces, id_photo
from ml.models.mtcnn.infer import Face, detect_faces
from ml.models.u2net import infer as saliency
from ml.registry import MODELS
from ml.sessions import get_session
from tests.support.services import require

PEOPLE = ("Two_dancers.jpg", "Athlete-Intake.jpg", "lionel-messi-athletes-fashion.jpg",
          "track-runners-hurdles-1280.jpg")
# One person out of a fixture photo, enlarged four times (Lanczos) so the head can fill a 300-dpi ID photo.
PORTRAIT_CROP, PORTRAIT_ENLARGEMENT = (180, 0, 350, 280), 4


def synthetic_face(x: float, y: float, size: float) -> Face:
    """Return a face box with plausible landmarks at a position and size."""
    return Face((x, y, x + size, y + size * 1.2),
                ((x + 0.3 * size, y + 0.4 * size), (x + 0.7 * size, y + 0.4 * size), (x + 0.5 * size, y + 0.65 * size),
                 (x + 0.35 * size, y + 0.9 * size), (x + 0.65 * size, y + 0.9 * size)), 0.99)


def noise_photo(mode: str = "RGB") -> Image.Image:
    pixels = np.random.default_rng(5).integers(0, 256, (120, 160, len(mode)), dtype=np.uint8)
    return Image.fromarray(pixels, mode)


def high_frequency(pixels: np.ndarray) -> float:
    """Return the mean squared Laplacian of the grey levels: the energy of fine detail."""
    grey = pixels.astype(np.float64).mean(axis=2)
    laplacian = 4 * grey[1:-1, 1:-1] - grey[:-2, 1:-1] - grey[2:, 1:-1] - grey[1:-1, :-2] - grey[1:-1, 2:]
    return float((laplacian ** 2).mean())


def patch(pixels: np.ndarray, centre, reach: int) -> np.ndarray:
    x, y = int(round(centre[0])), int(round(centre[1]))
    return pixels[y - reach:y + reach + 1, x - reach:x + reach + 1].astype(np.float64)


def outside(size: tuple[int, int], regions) -> np.ndarray:
    """Return a boolean map of the pixels in none of the regions."""
    free = np.ones((size[1], size[0]), dtype=bool)
    for left, top, right, bottom in regions:
        free[top:bottom, left:right] = False
    return free


@pytest.mark.parametrize("method", faces.ANONYMIZE_METHODS)
def test_anonymize_touches_only_the_face_regions(method):
    photo = noise_photo("RGBA")
    face = synthetic_face(40, 30, 40)
    result = faces.anonymize(photo, [face], method=method, strength=0)
    region = faces.anonymized_region(face, photo.size)
    before, after = np.asarray(photo), np.asarray(result)
    assert result.mode == "RGBA" and result.size == photo.size
    assert np.array_equal(before[outside(photo.size, [region])], after[outside(photo.size, [region])])
    assert np.array_equal(before[..., 3], after[..., 3])
    left, top, right, bottom = (round(value) for value in face.box)
    assert high_frequency(after[top:bottom, left:right, :3]) < 0.2 * high_frequency(before[top:bottom, left:right, :3])


def test_anonymized_region_reaches_past_the_box():
    face = synthetic_face(40, 30, 40)
    left, top, right, bottom = faces.anonymized_region(face, (200, 200), margin=0.25)
    assert (left, right) == (30, 90) and top == 30 - 18 and bottom == 78 + 12
    assert faces.anonymized_region(face, (60, 60))[2:] == (60, 60)


def test_options_are_checked():
    with pytest.raises(ValueError):
        faces.anonymize(noise_photo(), [], method="swirl")
    with pytest.raises(ValueError):
        faces.beautify(noise_photo(), [], strength=101)


def test_beautify_at_zero_strength_changes_nothing():
    photo = noise_photo()
    assert np.array_equal(np.asarray(faces.beautify(photo, [synthetic_face(40, 30, 40)], strength=0)),
                          np.asarray(photo))


def test_draw_faces_marks_boxes_and_landmarks():
    photo = Image.new("RGB", (160, 120), (0, 0, 0))
    face = synthetic_face(40, 30, 40)
    preview = np.asarray(faces.draw_faces(photo, [face]))
    assert tuple(preview[30, 60]) == faces.BOX_COLOUR
    eye = face.landmarks[0]
    assert tuple(preview[round(eye[1]), round(eye[0])]) == faces.LANDMARK_COLOUR


@pytest.fixture(scope="module")
def mtcnn_session(model_dir):
    require(MODELS["mtcnn"].weights_path(model_dir).is_file(), f"MTCNN weights not installed in {model_dir}")
    return get_session("mtcnn", model_dir)


@pytest.fixture(scope="module")
def people(photos_dir, mtcnn_session):
    """Return each people photo with the faces found in it."""
    found = []
    for name in PEOPLE:
        photo = Image.open(photos_dir / name).convert("RGB")
        found.append((photo, detect_faces(photo, mtcnn_session)))
    assert all(detected for _, detected in found)
    return found


@pytest.mark.slow
@pytest.mark.parametrize("method", faces.ANONYMIZE_METHODS)
def test_anonymize_hides_every_face_and_nothing_else(people, method):
    for photo, detected in people:
        result = faces.anonymize(photo, detected, method=method, strength=60)
        before, after = np.asarray(photo), np.asarray(result)
        free = outside(photo.size, [faces.anonymized_region(face, photo.size) for face in detected])
        assert np.array_equal(before[free], after[free])
        for face in detected:
            left, top, right, bottom = (round(value) for value in face.box)
            inside_before = before[top:bottom, left:right]
            inside_after = after[top:bottom, left:right]
            assert np.abs(inside_after.astype(float) - inside_before).mean() > 4
            if method == "blur":
                assert high_frequency(inside_after) < 0.15 * high_frequency(inside_before)
            else:
                # Flat cells: few colours where the face had hundreds.
                colours = len(np.unique(inside_after.reshape(-1, 3), axis=0))
                assert colours < 0.05 * inside_after.shape[0] * inside_after.shape[1]


@pytest.mark.slow
def test_beautify_smooths_cheeks_and_keeps_eyes_and_lips(people):
    ratios = []
    for photo, detected in people:
        result = faces.beautify(photo, detected, strength=100)
        before, after = np.asarray(photo), np.asarray(result)
        free = outside(photo.size, [faces.beautified_region(face, photo.size) for face in detected])
        assert np.array_equal(before[free], after[free])
        for face in detected:
            points = np.asarray(face.landmarks)
            eye_distance = float(np.hypot(*(points[1] - points[0])))
            reach = max(2, round(0.12 * eye_distance))
            for feature in (points[0], points[1], (points[3] + points[4]) / 2):
                assert np.abs(patch(after, feature, reach) - patch(before, feature, reach)).mean() < 1.0
            for eye, mouth in ((points[0], points[3]), (points[1], points[4])):
                cheek = (eye + mouth) / 2
                ratios.append(high_frequency(patch(after, cheek, reach)) /
                              max(high_frequency(patch(before, cheek, reach)), 1e-9))
    assert max(ratios) <= 1.0
    assert float(np.median(ratios)) < 0.7, ratios


@pytest.fixture(scope="module")
def portrait(photos_dir, mtcnn_session, model_dir):
    """Return one person cropped out of a fixture photo and enlarged, with its face and U2NetP subject mask."""
    source = Image.open(photos_dir / "lionel-messi-athletes-fashion.jpg").convert("RGB").crop(PORTRAIT_CROP)
    photo = source.resize((source.width * PORTRAIT_ENLARGEMENT, source.height * PORTRAIT_ENLARGEMENT), Image.LANCZOS)
    face = id_photo.choose_single_face(detect_faces(photo, mtcnn_session))
    mask = saliency.predict_mask(photo, get_session("u2netp", model_dir))
    return photo, face, mask


MARKERS = {"eyes": (255, 0, 255), "crown": (0, 255, 255), "chin": (255, 255, 0)}


def marked(photo: Image.Image, face: Face, mask: Image.Image) -> Image.Image:
    """Paint dots of pure colours on the eyes and on the estimated crown and chin, inside the subject."""
    head = id_photo.measure_head(face, mask)
    angle = math.radians(head.angle_degrees)
    down = np.array([-math.sin(angle), math.cos(angle)])
    eyes = np.asarray(head.eyes)
    spots = {"eyes": [face.landmarks[0], face.landmarks[1]], "crown": [eyes - head.crown_above_eyes * down],
             "chin": [eyes + head.chin_below_eyes * down]}
    painted = photo.copy()
    draw = ImageDraw.Draw(painted)
    for name, points in spots.items():
        for x, y in points:
            assert mask.getpixel((round(x), round(y))) > 200, f"{name} marker outside the subject"
            draw.ellipse((x - 5, y - 5, x + 5, y + 5), fill=MARKERS[name])
    return painted


def marker_centres(result: Image.Image, colour) -> list[np.ndarray]:
    """Return the centroids of the pixels near a marker colour, split into left and right halves when two."""
    pixels = np.asarray(result, dtype=np.float64)
    rows, columns = np.nonzero(np.abs(pixels - colour).sum(axis=2) < 90)
    assert rows.size, f"marker {colour} not found"
    points = np.stack([columns, rows], axis=1)
    if colour != MARKERS["eyes"]:
        return [points.mean(axis=0)]
    middle = result.width / 2
    return [points[points[:, 0] < middle].mean(axis=0), points[points[:, 0] >= middle].mean(axis=0)]


@pytest.mark.slow
@pytest.mark.parametrize("preset", list(id_photo.ID_PRESETS))
def test_id_photo_geometry(portrait, preset):
    photo, face, mask = portrait
    standard = id_photo.ID_PRESETS[preset]
    dpi = 300
    background = id_photo.BACKGROUNDS["light_blue"]
    result = id_photo.id_photo(photo, face, mask, preset=preset, dpi=dpi, background=background)
    assert result.size == standard.pixels(dpi) and result.mode == "RGB" and result.info["dpi"] == (dpi, dpi)
    millimetre = dpi / id_photo.MM_PER_INCH

    geometry = id_photo.id_photo(marked(photo, face, mask), face, mask, preset=preset, dpi=dpi,
                                 background=(255, 255, 255))
    left_eye, right_eye = marker_centres(geometry, MARKERS["eyes"])
    (crown,), (chin,) = marker_centres(geometry, MARKERS["crown"]), marker_centres(geometry, MARKERS["chin"])
    assert abs(math.degrees(math.atan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0]))) < 1.0
    head = float(np.hypot(*(chin - crown))) / millimetre
    assert standard.head_mm[0] <= head <= standard.head_mm[1]
    eyes = (left_eye + right_eye) / 2
    assert abs(eyes[0] - result.width / 2) < millimetre
    if standard.eyes_from_bottom_mm:
        low, high = standard.eyes_from_bottom_mm
        assert low <= (result.height - eyes[1]) / millimetre <= high
    else:
        low, high = standard.crown_margin_mm
        assert low <= crown[1] / millimetre <= high

    # A white photo on black shows where the moved mask lets the subject through: elsewhere is the background.
    white = Image.new("RGB", photo.size, (255, 255, 255))
    moved_mask = id_photo.id_photo(white, face, mask, preset=preset, dpi=dpi, background=(0, 0, 0))
    empty = np.asarray(moved_mask.convert("L").filter(ImageFilter.MaxFilter(3))) == 0
    assert empty.mean() > 0.1
    assert np.all(np.asarray(result)[empty] == background)


@pytest.mark.slow
@pytest.mark.parametrize("image_format", ["jpeg", "png"])
def test_id_photo_keeps_its_resolution_when_encoded(portrait, image_format):
    photo, face, mask = portrait
    result = id_photo.id_photo(photo, face, mask, preset="us_passport", dpi=300)
    with Image.open(io.BytesIO(id_photo.encode_id_photo(result, image_format))) as saved:
        assert saved.format == image_format.upper() and saved.size == (600, 600)
        assert tuple(round(value) for value in saved.info["dpi"]) == (300, 300)
        assert "exif" not in saved.info


@pytest.mark.slow
def test_print_sheet_holds_copies_at_the_same_resolution(portrait):
    photo, face, mask = portrait
    result = id_photo.id_photo(photo, face, mask, dpi=300, background=id_photo.BACKGROUNDS["light_blue"])
    sheet = id_photo.print_sheet(result)
    assert sheet.size == (1772, 1181) and sheet.info["dpi"] == (300, 300)
    # 35x45 mm with 2 mm gaps on 150x100 mm: four across, two down.
    copies = np.asarray(sheet)[:, :, 0] != 255
    assert abs(copies.mean() - 8 * result.width * result.height / (1772 * 1181)) < 0.02


@pytest.mark.slow
def test_id_photo_refuses_a_face_too_small_for_the_resolution(portrait, photos_dir, mtcnn_session):
    photo, face, mask = portrait
    with pytest.raises(id_photo.IdPhotoError, match="too small for a 600-dpi print"):
        id_photo.id_photo(photo, face, mask, dpi=600)
    original = Image.open(photos_dir / "lionel-messi-athletes-fashion.jpg").convert("RGB")
    small_face = id_photo.choose_single_face(detect_faces(original, mtcnn_session))
    with pytest.raises(id_photo.IdPhotoError, match="too small for a 300-dpi print"):
        id_photo.id_photo(original, small_face, Image.new("L", original.size, 255), dpi=300)


@pytest.mark.slow
@pytest.mark.parametrize("name, message", [("long.jpg", "no face"), ("Athlete-Intake.jpg", "2 faces")])
def test_id_photo_refuses_no_face_or_several(photos_dir, mtcnn_session, name, message):
    photo = Image.open(photos_dir / name).convert("RGB")
    with pytest.raises(id_photo.IdPhotoError, match=message):
        id_photo.choose_single_face(detect_faces(photo, mtcnn_session))


def test_unknown_preset_is_refused():
    face = synthetic_face(40, 30, 40)
    with pytest.raises(id_photo.IdPhotoError, match="unknown preset"):
        id_photo.id_photo(noise_photo(), face, Image.new("L", (160, 120), 255), preset="mars")
