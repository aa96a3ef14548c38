"""Turn a photo and its mask into the requested output: cutout, mask, background colour or blur, crop."""

from __future__ import annotations

from PIL import Image, ImageFilter

from ml.options import ProcessingOptions

# Pixels at or below this alpha do not count as subject when cropping (anti-aliasing noise on the background).
CROP_THRESHOLD = 16


def _cutout(image: Image.Image, mask: Image.Image) -> Image.Image:
    """Return RGBA with the mask as alpha; fully transparent pixels are zeroed so they compress to nothing."""
    if image.mode == "RGBA":
        # A photo that is already partly transparent stays so: the subject mask only takes more away.
        from PIL import ImageChops

        mask = ImageChops.multiply(mask, image.getchannel("A"))
    visible = mask.point(lambda value: 255 if value else 0)
    rgb = Image.composite(image.convert("RGB"), Image.new("RGB", image.size), visible)
    rgb.putalpha(mask)
    return rgb


def _crop_box(mask: Image.Image, margin: int) -> tuple[int, int, int, int] | None:
    """Return the subject's bounding box grown by the margin (it may reach past the photo), or None if empty."""
    box = mask.point(lambda value: 255 if value > CROP_THRESHOLD else 0).getbbox()
    if box is None:
        return None
    left, top, right, bottom = box
    return left - margin, top - margin, right + margin, bottom + margin


def compose(image: Image.Image, mask: Image.Image, options: ProcessingOptions) -> Image.Image:
    """Build the output image (mask, cutout, coloured or blurred background), cropped when asked."""
    if options.output == "mask":
        result = mask
        fill: tuple[int, ...] | int = 0
    else:
        result = _cutout(image, mask)
        fill = (0, 0, 0, 0)
        if options.blur:
            background = image.convert("RGB").filter(ImageFilter.GaussianBlur(options.blur)).convert("RGBA")
            result = Image.alpha_composite(background, result)
            fill = (0, 0, 0, 255)
        if options.background is not None:
            colour = Image.new("RGBA", image.size, options.background)
            result = Image.alpha_composite(colour, result)
            fill = options.background
        if result.mode == "RGBA" and result.getchannel("A").getextrema() == (255, 255):
            result = result.convert("RGB")
            fill = fill[:3] if isinstance(fill, tuple) else fill
    if options.crop:
        box = _crop_box(mask, options.margin)
        if box is not None:
            # Image.crop pads outside the photo with zeros; paste onto the fill instead for a coloured margin.
            canvas = Image.new(result.mode, (box[2] - box[0], box[3] - box[1]), fill)
            canvas.paste(result, (-box[0], -box[1]))
            result = canvas
    return result
