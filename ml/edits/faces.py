"""Face operations on detected faces: a preview with the boxes drawn, anonymising (blur or pixelate) and beautifying.

Every function takes the photo and the faces ml.models.mtcnn.infer.detect_faces found in it and returns a new image
of the same size (the preview in RGB, the others in the photo's mode); anonymize and beautify never touch pixels away
from the faces.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as functional
from PIL import Image, ImageDraw, ImageFilter, ImageFont

from ml.models.mtcnn.infer import Face

ANONYMIZE_METHODS = ("blur", "pixelate")
DEFAULT_MARGIN = 0.25
BOX_COLOUR = (255, 64, 64)
LANDMARK_COLOUR = (64, 255, 96)
# The face size the skin filter works at: finer detail than this is what it removes anyway, and it keeps the cost
# of a large face that of a small one.
_BEAUTIFY_WORK_WIDTH = 160


def draw_faces(image: Image.Image, faces: Sequence[Face]) -> Image.Image:
    """Return an RGB copy of the photo with each face's box, landmarks and number (its index in the list + 1)."""
    preview = image.convert("RGB")
    draw = ImageDraw.Draw(preview)
    line = max(2, round(min(preview.size) / 300))
    font = ImageFont.load_default(size=max(12, line * 8))
    for number, face in enumerate(faces, start=1):
        draw.rectangle(face.box, outline=BOX_COLOUR, width=line)
        dot = line * 1.5
        for x, y in face.landmarks:
            draw.ellipse((x - dot, y - dot, x + dot, y + dot), fill=LANDMARK_COLOUR)
        draw.text((face.box[0] + line, face.box[1] - line), str(number), fill=BOX_COLOUR, font=font, anchor="lb")
    return preview


def anonymized_region(face: Face, size: tuple[int, int], margin: float = DEFAULT_MARGIN) -> tuple[int, int, int, int]:
    """Return the pixel box hidden for a face: its box grown by margin on each side, half as much again on top.

    Detector boxes run from the brows to the chin; the extra on top reaches the hair line.
    """
    width, height = face.width, face.height
    left = math.floor(face.box[0] - margin * width)
    top = math.floor(face.box[1] - 1.5 * margin * height)
    right = math.ceil(face.box[2] + margin * width)
    bottom = math.ceil(face.box[3] + margin * height)
    return max(0, left), max(0, top), min(size[0], right), min(size[1], bottom)


def anonymize(image: Image.Image, faces: Sequence[Face], *, method: str = "blur", strength: int = 60,
              margin: float = DEFAULT_MARGIN) -> Image.Image:
    """Blur or pixelate every face with its margin; strength 0-100 sets how coarse (even 0 hides the features)."""
    if method not in ANONYMIZE_METHODS:
        raise ValueError(f"method must be one of {', '.join(ANONYMIZE_METHODS)}")
    if not 0 <= strength <= 100:
        raise ValueError("strength must be between 0 and 100")
    result = image.copy()
    rgb = image.convert("RGB")
    for face in faces:
        region = anonymized_region(face, image.size, margin)
        if region[2] <= region[0] or region[3] <= region[1]:
            continue
        size = max(face.width, face.height)
        if method == "pixelate":
            patch = _pixelated(rgb.crop(region), cell=max(2.0, size * (0.06 + 0.14 * strength / 100)))
            mask = None
        else:
            patch, mask = _blurred(rgb, region, radius=max(1.0, size * (0.08 + 0.17 * strength / 100)))
        _paste_rgb(result, patch, region, mask)
    return result


def _pixelated(crop: Image.Image, cell: float) -> Image.Image:
    """Average the crop over square cells of about `cell` pixels and blow the cells back up."""
    columns = max(1, round(crop.width / cell))
    rows = max(1, round(crop.height / cell))
    return crop.resize((columns, rows), Image.BOX).resize(crop.size, Image.NEAREST)


def _blurred(rgb: Image.Image, region: tuple[int, int, int, int], radius: float) -> tuple[Image.Image, Image.Image]:
    """Return the region Gaussian-blurred and a mask that fades it in over the region's outer tenth."""
    pad = math.ceil(3 * radius)
    left, top, right, bottom = region
    # Blur with the surroundings in view, so the region's edge is not smeared towards a black border.
    outer = (max(0, left - pad), max(0, top - pad), min(rgb.width, right + pad), min(rgb.height, bottom + pad))
    blurred = rgb.crop(outer).filter(ImageFilter.GaussianBlur(radius))
    patch = blurred.crop((left - outer[0], top - outer[1], right - outer[0], bottom - outer[1]))
    width, height = patch.size
    feather = max(1, round(0.1 * min(width, height)))
    mask = Image.new("L", patch.size, 0)
    ImageDraw.Draw(mask).rectangle((feather, feather, width - 1 - feather, height - 1 - feather), fill=255)
    return patch, mask.filter(ImageFilter.BoxBlur(feather / 2))


def _paste_rgb(result: Image.Image, patch: Image.Image, region: tuple[int, int, int, int],
               mask: Image.Image | None) -> None:
    """Paste RGB pixels into the result in place, leaving an alpha channel as it was."""
    if result.mode == "RGBA":
        alpha = result.getchannel("A").crop(region)
        patch = patch.convert("RGBA")
        patch.putalpha(alpha)
    result.paste(patch.convert(result.mode), region[:2], mask)


def beautify(image: Image.Image, faces: Sequence[Face], *, strength: int = 50) -> Image.Image:
    """Smooth the skin of every face, keeping eyes, brows and lips sharp; strength 0-100 (0 changes nothing)."""
    if not 0 <= strength <= 100:
        raise ValueError("strength must be between 0 and 100")
    result = image.copy()
    if strength == 0:
        return result
    for face in faces:
        region = beautified_region(face, image.size)
        if region[2] - region[0] < 4 or region[3] - region[1] < 4:
            continue
        crop = np.asarray(result.convert("RGB").crop(region), dtype=np.float32) / 255
        patch = Image.fromarray(_beautified(crop, face, region, strength / 100), "RGB")
        _paste_rgb(result, patch, region, None)
    return result


def beautified_region(face: Face, size: tuple[int, int]) -> tuple[int, int, int, int]:
    """Return the pixel box beautify may change for a face: the box widened a little, with the forehead above."""
    width, height = face.width, face.height
    left = math.floor(face.box[0] - 0.15 * width)
    top = math.floor(face.box[1] - 0.45 * height)
    right = math.ceil(face.box[2] + 0.15 * width)
    bottom = math.ceil(face.box[3] + 0.15 * height)
    return max(0, left), max(0, top), min(size[0], right), min(size[1], bottom)


def _beautified(crop: np.ndarray, face: Face, region: tuple[int, int, int, int], amount: float) -> np.ndarray:
    """Return the region's new 8-bit pixels: the skin filtered, blended in by the skin weight times the amount."""
    height, width = crop.shape[:2]
    image = torch.from_numpy(crop).permute(2, 0, 1).unsqueeze(0)
    # Masks and filter coefficients are worked out at a fixed face size, then applied at the photo's.
    factor = min(1.0, _BEAUTIFY_WORK_WIDTH / max(face.width, 1.0))
    small = functional.interpolate(image, scale_factor=factor, mode="area") if factor < 1 else image
    gain, bias = _guided_coefficients(small, radius=max(1, round(face.width * factor / 40)),
                                      eps=(0.015 + 0.045 * amount) ** 2)
    points = (np.asarray(face.landmarks, dtype=np.float64) - region[:2]) * factor
    weight = torch.from_numpy(_skin_weight(small[0].permute(1, 2, 0).numpy(), points, face.width * factor))
    layers = torch.cat([gain, bias, weight[None, None]], dim=1)
    if factor < 1:
        layers = functional.interpolate(layers, size=(height, width), mode="bilinear", align_corners=False)
    gain, bias, weight = layers[:, :3], layers[:, 3:6], layers[:, 6:] * amount
    blended = image + weight * (gain * image + bias - image)
    return (blended[0].permute(1, 2, 0).numpy() * 255).round().clip(0, 255).astype(np.uint8)


def _guided_coefficients(image: torch.Tensor, radius: int, eps: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Return a self-guided filter's per-pixel gain and bias (He et al.): output = gain * image + bias.

    eps is the variance below which detail counts as skin texture and is flattened; the edges of eyes, nostrils
    and lips vary more and keep their contrast.
    """
    mean = _box_mean(image, radius)
    variance = (_box_mean(image * image, radius) - mean * mean).clamp(min=0)
    gain = variance / (variance + eps)
    bias = mean - gain * mean
    return _box_mean(gain, radius), _box_mean(bias, radius)


def _box_mean(values: torch.Tensor, radius: int) -> torch.Tensor:
    """Average over a (2r+1)-square window, counting only the pixels inside the image at its edges."""
    size = 2 * radius + 1
    return functional.avg_pool2d(values, size, stride=1, padding=radius, count_include_pad=False)


def _skin_weight(crop: np.ndarray, points: np.ndarray, face_width: float) -> np.ndarray:
    """Return how much to smooth each pixel (0-1): the face's oval, less eyes, brows and lips, skin-coloured only."""
    height, width = crop.shape[:2]
    left_eye, right_eye, nose, mouth_left, mouth_right = points
    across = right_eye - left_eye
    eye_distance = max(float(np.hypot(*across)), 1.0)
    angle = math.atan2(across[1], across[0])
    rows, columns = np.mgrid[0:height, 0:width].astype(np.float32)

    def ellipse(centre: np.ndarray, half_width: float, half_height: float) -> np.ndarray:
        # Ellipses follow the tilt of the eye line, so a tilted head is covered the same way.
        dx, dy = columns - centre[0], rows - centre[1]
        along = dx * math.cos(angle) + dy * math.sin(angle)
        normal = -dx * math.sin(angle) + dy * math.cos(angle)
        return (along / half_width) ** 2 + (normal / half_height) ** 2 <= 1

    up = np.array([math.sin(angle), -math.cos(angle)])
    eyes, mouth = (left_eye + right_eye) / 2, (mouth_left + mouth_right) / 2
    # The oval spans the detector box: from the chin up over the forehead, a little wider than the cheeks.
    centre = (eyes + mouth) / 2 + 0.35 * float(np.hypot(*(mouth - eyes))) * up
    oval = ellipse(centre, 0.58 * face_width, 0.95 * face_width).astype(np.float32)
    keep = np.zeros_like(oval, dtype=bool)
    for eye in (left_eye, right_eye):
        # One ellipse per eye reaching up over the brow.
        keep |= ellipse(eye + 0.15 * eye_distance * up, 0.42 * eye_distance, 0.42 * eye_distance)
    mouth_width = float(np.hypot(*(mouth_right - mouth_left)))
    keep |= ellipse(mouth, 0.5 * mouth_width + 0.2 * eye_distance, 0.3 * eye_distance)
    feather = max(1.0, 0.08 * eye_distance)
    weight = _feathered(oval * _skin_likelihood(crop, points), feather)
    # The kept features fade in around their edges but stay exactly as they were inside.
    protect = np.maximum(keep, _feathered(keep.astype(np.float32), feather))
    return (weight * (1 - protect)).astype(np.float32)


def _feathered(weight: np.ndarray, radius: float) -> np.ndarray:
    """Return a 0-1 map with its edges softened by a Gaussian of the given radius."""
    blurred = Image.fromarray(np.rint(weight * 255).astype(np.uint8), "L").filter(ImageFilter.GaussianBlur(radius))
    return np.asarray(blurred, dtype=np.float32) / 255


def _skin_likelihood(crop: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Return 0-1 per pixel: how close its chroma is to the cheeks' (so hair and background inside the oval stay)."""
    chroma = _chroma(crop)
    height, width = crop.shape[:2]
    samples = []
    for eye, mouth in ((points[0], points[3]), (points[1], points[4])):
        x, y = np.rint((eye + mouth) / 2).astype(int)
        reach = max(1, round(0.1 * float(np.hypot(*(mouth - eye)))))
        patch = chroma[max(0, y - reach):min(height, y + reach + 1), max(0, x - reach):min(width, x + reach + 1)]
        samples.append(patch.reshape(-1, 2))
    samples = np.concatenate(samples)
    if samples.size == 0:
        return np.ones((height, width), np.float32)
    tone = np.median(samples, axis=0)
    distance = np.hypot(*(chroma - tone).transpose(2, 0, 1))
    # Within about 8 units (of 255) of the cheeks' chroma counts as skin, fading out by about 20.
    return np.clip((20 - distance) / 12, 0, 1).astype(np.float32)


def _chroma(crop: np.ndarray) -> np.ndarray:
    """Return the Cb and Cr channels (ITU-R BT.601, 0-255 scale) of an RGB array in 0-1."""
    red, green, blue = crop[..., 0] * 255, crop[..., 1] * 255, crop[..., 2] * 255
    blue_difference = -0.168736 * red - 0.331264 * green + 0.5 * blue
    red_difference = 0.5 * red - 0.418688 * green - 0.081312 * blue
    return np.stack([blue_difference, red_difference], axis=-1)
