"""Make the style previews the stylize form shows: one small WebP per style, from one fixture photo.

    .venv/bin/python tools/style_previews.py [--photo ../shared/fixtures/photos/horse.jpg] [--width 160]
        [--out static/img/styles] [--sheet /tmp/styles.png] [--examples docs/style-transfer]

The photo is stylized at a small working size (so the brush strokes read at thumbnail size, as they do on a
full-size result) and scaled to the thumbnail width. `--sheet` also writes every style on one labelled page, to
name and compare them; `--examples` writes the before/after pictures of docs/style-transfer.md (480 pixels wide,
stylized at the default working size). Needs the style26 and u2netp weights installed (`make install`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ml.models.style26.infer import (DEFAULT_WORKING_SIZE, MODEL_NAME, STYLES, apply, style_weights,  # noqa: E402
                                     stylize)
from ml.models.u2net.infer import predict_mask  # noqa: E402
from ml.sessions import get_session  # noqa: E402
from studio.settings import from_environment  # noqa: E402

DEFAULT_PHOTO = ROOT.parent / "shared" / "fixtures" / "photos" / "horse.jpg"
DEFAULT_OUT = ROOT / "static" / "img" / "styles"
PREVIEW_WORKING_SIZE = 480
EXAMPLE_WIDTH = 480
# (file name, style, blended with, blend percent, apply_to) of the documentation's examples.
EXAMPLES = (("starry-swirls", 19, None, 100, "all"), ("colour-blocks", 7, None, 100, "all"),
            ("blend-starry-swirls-autumn-dabs", 19, 5, 50, "all"), ("background-autumn-dabs", 5, None, 100,
                                                                    "background"))


def previews(photo: Path, width: int, model_dir: Path) -> list[Image.Image]:
    """Return the photo in every style, `width` pixels wide, in the network's order."""
    session = get_session(MODEL_NAME, model_dir)
    image = Image.open(photo).convert("RGB")
    results = []
    for index in range(len(STYLES)):
        styled = stylize(image, session, style_weights(index), working_size=PREVIEW_WORKING_SIZE)
        results.append(styled.resize((width, round(styled.height * width / styled.width)), Image.LANCZOS))
    return results


def contact_sheet(images: list[Image.Image], columns: int = 6) -> Image.Image:
    """Lay the previews out in a grid, each labelled with its index and slug."""
    tile_width, tile_height = images[0].size
    label = 14
    rows = -(-len(images) // columns)
    sheet = Image.new("RGB", (columns * tile_width, rows * (tile_height + label)), "white")
    draw = ImageDraw.Draw(sheet)
    for index, (image, (slug, _)) in enumerate(zip(images, STYLES)):
        left, top = index % columns * tile_width, index // columns * (tile_height + label)
        sheet.paste(image, (left, top + label))
        draw.text((left + 2, top + 1), f"{index} {slug}", fill="black")
    return sheet


def write_examples(photo: Path, folder: Path, model_dir: Path) -> None:
    """Write the photo and its stylized versions (one on the background only) for the documentation."""
    image = Image.open(photo).convert("RGB")
    session = get_session(MODEL_NAME, model_dir)
    mask = predict_mask(image, get_session("u2netp", model_dir))
    folder.mkdir(parents=True, exist_ok=True)

    def save(picture: Image.Image, name: str) -> None:
        small = picture.resize((EXAMPLE_WIDTH, round(picture.height * EXAMPLE_WIDTH / picture.width)), Image.LANCZOS)
        small.save(folder / f"{photo.stem}-{name}.webp", "WEBP", quality=82, method=6)

    save(image, "photo")
    for name, style, blend_with, blend, apply_to in EXAMPLES:
        stylized = stylize(image, session, style_weights(style, blend_with, blend), working_size=DEFAULT_WORKING_SIZE)
        save(apply(image, stylized, strength=100, mask=mask, apply_to=apply_to, feather=4), name)


def main() -> int:
    """Write one WebP per style (and optionally a contact sheet)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=DEFAULT_PHOTO)
    parser.add_argument("--width", type=int, default=160)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--sheet", type=Path, help="also write all styles on one labelled page here")
    parser.add_argument("--examples", type=Path, help="also write the documentation's before/after pictures here")
    arguments = parser.parse_args()
    model_dir = Path(from_environment()["STUDIO_MODEL_DIR"])
    if arguments.examples:
        write_examples(arguments.photo, arguments.examples, model_dir)
    images = previews(arguments.photo, arguments.width, model_dir)
    arguments.out.mkdir(parents=True, exist_ok=True)
    for image, (slug, _) in zip(images, STYLES):
        image.save(arguments.out / f"{slug}.webp", "WEBP", quality=80, method=6)
    if arguments.sheet:
        contact_sheet(images).save(arguments.sheet)
    print(f"wrote {len(images)} previews to {arguments.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
