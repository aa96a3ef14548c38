"""A soft drop shadow under a cutout, made from its own alpha (remove.bg's add_shadow, Photoroom's soft shadow).

Sizes are fractions of the subject's height, not pixels, so a shadow looks the same on a 1 MP and a 24 MP photo.
"""

from __future__ import annotations

from PIL import Image, ImageFilter

# Pixels at or below this alpha do not count as subject when measuring it (anti-aliasing noise on the background).
SUBJECT_THRESHOLD = 16


def shadow_alpha(alpha: Image.Image, *, opacity: int, blur: int, offset_x: int, offset_y: int) -> Image.Image:
    """Return the shadow's alpha: the subject's silhouette moved, softened and faded (percentages of its height)."""
    box = alpha.point(lambda value: 255 if value > SUBJECT_THRESHOLD else 0).getbbox()
    if box is None or opacity == 0:
        return Image.new("L", alpha.size, 0)
    height = box[3] - box[1]
    silhouette = alpha.point(lambda value: value * opacity // 100)
    moved = Image.new("L", alpha.size, 0)
    moved.paste(silhouette, (round(offset_x * height / 100), round(offset_y * height / 100)))
    radius = blur * height / 100
    # Pillow's Gaussian blur is box blurs in C: its cost does not grow with the radius.
    return moved.filter(ImageFilter.GaussianBlur(radius)) if radius > 0 else moved


def add_shadow(cutout: Image.Image, *, opacity: int, blur: int, offset_x: int, offset_y: int) -> Image.Image:
    """Return the RGBA cutout with a black shadow of its own shape behind it."""
    cutout = cutout.convert("RGBA")
    shadow = Image.new("RGBA", cutout.size, (0, 0, 0, 0))
    shadow.putalpha(shadow_alpha(cutout.getchannel("A"), opacity=opacity, blur=blur, offset_x=offset_x,
                                 offset_y=offset_y))
    return Image.alpha_composite(shadow, cutout)
