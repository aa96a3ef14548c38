"""Turn a photo and its mask into the requested output: cutout, mask, background colour or blur, crop; the edge
matted and recoloured, the subject placed on a canvas and shadowed, as the options say.

A new kind of output is one function here, one line in OUTPUT_TYPES and its name in the `output` option.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Callable

from PIL import Image, ImageChops, ImageFilter, ImageOps

from ml.edits.matting import matte, refine
from ml.edits.placement import parse_canvas, parse_position, place
from ml.edits.shadow import add_shadow

if TYPE_CHECKING:
    from ml.operations.remove_background import RemoveBackgroundOptions

# Pixels at or below this alpha do not count as subject when cropping (anti-aliasing noise on the background).
CROP_THRESHOLD = 16


def transparent_cutout(image: Image.Image, mask: Image.Image) -> Image.Image:
    """Return the subject on transparency (RGBA), fully transparent pixels zeroed."""
    if image.mode == "RGBA":
        # A photo that is already partly transparent stays so: the subject mask only takes more away.
        mask = ImageChops.multiply(mask, image.getchannel("A"))
    # Straight (not premultiplied) colours keep edges from darkening; fully transparent pixels are zeroed, in place,
    # so that they compress to almost nothing. One full-size RGBA copy of the photo, no more.
    result = image.convert("RGBA") if image.mode != "RGBA" else image.copy()
    result.putalpha(mask)
    result.paste((0, 0, 0, 0), mask=mask.point(lambda value: 255 if value == 0 else 0))
    return result


def cutout(image: Image.Image, mask: Image.Image, options: RemoveBackgroundOptions) -> Image.Image:
    """Return the subject on a transparent, coloured or blurred background, placed and shadowed as asked."""
    result = transparent_cutout(image, mask)
    if options.placed:
        canvas = parse_canvas(options.canvas).size(*image.size) if options.canvas else image.size
        result, _ = place(result, result.getchannel("A"), canvas, position=parse_position(options.position),
                          scale=options.scale, padding=options.padding)
    if options.add_shadow:
        result = add_shadow(result, opacity=options.shadow_opacity, blur=options.shadow_blur,
                            offset_x=options.shadow_offset_x, offset_y=options.shadow_offset_y)
    if options.blur:
        background = image.convert("RGB").filter(ImageFilter.GaussianBlur(options.blur))
        if background.size != result.size:
            background = ImageOps.fit(background, result.size, Image.LANCZOS)
        result = Image.alpha_composite(background.convert("RGBA"), result)
    if options.background is not None:
        result = Image.alpha_composite(Image.new("RGBA", result.size, options.background), result)
    opaque_colour = options.background is not None and options.background[3] == 255
    return result.convert("RGB") if options.blur or opaque_colour else result


def mask_only(image: Image.Image, mask: Image.Image, options: RemoveBackgroundOptions) -> Image.Image:
    """Return the mask itself: white subject on black, at the photo's size (or placed on the canvas)."""
    if options.placed:
        canvas = parse_canvas(options.canvas).size(*image.size) if options.canvas else image.size
        mask, _ = place(mask, mask, canvas, position=parse_position(options.position), scale=options.scale,
                        padding=options.padding)
    return mask


OUTPUT_TYPES: dict[str, Callable[[Image.Image, Image.Image, "RemoveBackgroundOptions"], Image.Image]] = {
    "cutout": cutout,
    "mask": mask_only,
}


def _fill(result: Image.Image, options: RemoveBackgroundOptions) -> tuple[int, ...] | int:
    """Return what a crop margin reaching past the photo is filled with."""
    if result.mode == "L":
        return 0
    if options.background is not None:
        return options.background[: len(result.mode)]
    return (0, 0, 0, 0) if result.mode == "RGBA" else (0, 0, 0)


def crop_to_subject(result: Image.Image, mask: Image.Image, options: RemoveBackgroundOptions) -> Image.Image:
    """Crop to the subject's bounding box grown by the margin; the margin may reach past the photo."""
    box = mask.point(lambda value: 255 if value > CROP_THRESHOLD else 0).getbbox()
    if box is None:
        return result
    left, top, right, bottom = (box[0] - options.margin, box[1] - options.margin,
                                box[2] + options.margin, box[3] + options.margin)
    canvas = Image.new(result.mode, (right - left, bottom - top), _fill(result, options))
    canvas.paste(result, (-left, -top))
    return canvas


def fit_to_size(result: Image.Image, max_pixels: int | None) -> Image.Image:
    """Scale the output down, keeping its proportions, to at most max_pixels pixels (None: leave it as it is)."""
    width, height = result.size
    if max_pixels is None or width * height <= max_pixels:
        return result
    scale = (max_pixels / (width * height)) ** 0.5
    size = (max(1, int(width * scale)), max(1, int(height * scale)))
    # Pillow resizes RGBA premultiplied, so no dark fringe comes from the transparent pixels.
    return result.resize(size, Image.LANCZOS, reducing_gap=3.0)


def over_background(result: Image.Image, background: Image.Image) -> Image.Image:
    """Put a cutout on a background image scaled and centre-cropped to cover it exactly (opaque RGB out)."""
    canvas = ImageOps.fit(background.convert("RGB"), result.size, Image.LANCZOS).convert("RGBA")
    return Image.alpha_composite(canvas, result.convert("RGBA")).convert("RGB")


def post_process_mask(mask: Image.Image) -> Image.Image:
    """Clean a mask as rembg's post_process_mask does: a 3x3 opening drops specks, a Gaussian blur (sigma 2)
    rounds the outline, and a threshold at 127 makes it hard-edged (0 or 255)."""
    opened = mask.filter(ImageFilter.MinFilter(3)).filter(ImageFilter.MaxFilter(3))
    return opened.filter(ImageFilter.GaussianBlur(2)).point(lambda value: 255 if value >= 127 else 0)


def compose(image: Image.Image, mask: Image.Image, options: RemoveBackgroundOptions,
            background: Image.Image | None = None) -> Image.Image:
    """Build the output image for the requested output type, cropped when asked, within the size preset.

    background is the image behind a cutout when options.bg_image is set; it covers the cropped frame, margin
    included. A mask ignores it, as it ignores bg_color and blur.
    """
    if options.post_process:
        mask = post_process_mask(mask)
    if options.output == "cutout":
        image, mask = refine(image, mask, options, placed=options.on_background)
    elif options.alpha_matting:
        mask = matte(image, mask, options.alpha_matting_foreground_threshold,
                     options.alpha_matting_background_threshold, options.alpha_matting_erode_size)
    result = OUTPUT_TYPES[options.output](image, mask, options)
    if options.crop:
        result = crop_to_subject(result, mask, options)
    if options.uses_background_image:
        if background is None:
            raise ValueError("options.bg_image is set but no background image was given")
        result = over_background(result, background)
    return fit_to_size(result, options.max_output_pixels)
