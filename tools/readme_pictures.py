"""Make the README's pictures with the studio's own command line, from the shared fixture photos.

Each picture is what `flask studio process` writes for a fixture photo of an animal or an object, shrunk to at most
480 pixels wide (small derived pictures; the fixtures themselves stay outside the repository). For upscaling, a
small crop of a photo (the horse's head, halved to 120x90) is made 4x larger by Real-ESRGAN and, to compare, by
bicubic resizing:

    .venv/bin/python tools/readme_pictures.py [--fixtures ../shared/fixtures] [--out docs/pictures]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parent.parent
MAX_WIDTH = 480
# (picture, photo, operation and options); the photos are the U-2-Net authors' test photos (Apache-2.0).
PICTURES = (
    ("horse.jpg", "horse.jpg", None),
    ("horse-cutout.png", "horse.jpg", ["--operation", "remove_background", "--model", "u2net"]),
    ("horse-on-blur.jpg", "horse.jpg", ["--operation", "remove_background", "--model", "u2net", "--blur", "12",
                                        "--format", "jpeg"]),
    ("horse-painted-background.jpg", "horse.jpg", ["--operation", "stylize", "--style", "starry-swirls",
                                                   "--apply-to", "background", "--mask-model", "u2net"]),
    ("horse-objects.jpg", "horse.jpg", ["--operation", "detect"]),
    ("horse-banner.jpg", "horse.jpg", ["--operation", "smart_crop", "--aspect", "16:9", "--classes", "horse"]),
    ("rifle-upscaled-cutout.png", "rifle2.jpeg", ["--operation", "upscale", "--scale", "2",
                                                  "--remove-background", "--model", "realesrgan_x4plus"]),
    # Alpha matting (issue 21): the horse's mane on a dark colour, the plain cutout against matting with the subject's
    # colours at the edge; and a product on white with its shadow, centred on a 4:3 canvas.
    ("horse-mane-plain-on-dark.jpg", "horse.jpg", ["--operation", "remove_background", "--model", "u2net",
                                                   "--bg-color", "#1c1f26", "--no-estimate-foreground",
                                                   "--format", "jpeg"]),
    ("horse-mane-matted-on-dark.jpg", "horse.jpg", ["--operation", "remove_background", "--model", "u2net",
                                                    "--bg-color", "#1c1f26", "--alpha-matting", "--format", "jpeg"]),
    ("rifle-product-shadow.jpg", "rifle2.jpeg", ["--operation", "remove_background", "--model", "u2net",
                                                 "--bg-color", "#ffffff", "--add-shadow", "--canvas", "4:3",
                                                 "--position", "center", "--scale", "90", "--padding", "4",
                                                 "--format", "jpeg"]),
    ("girl.jpg", "girl.png", None),
    ("girl-objects.jpg", "girl.png", ["--operation", "segment"]),
    ("girl-keep-horse.png", "girl.png", ["--operation", "remove_background", "--keep", "horse"]),
    ("horse-head-bicubic.png", "horse-head-small.png", "bicubic"),
    ("horse-head-upscaled.png", "horse-head-small.png", ["--operation", "upscale", "--scale", "4"]),
)
# Small inputs cut from a fixture photo: (photo, box, shrink factor).
SMALL_INPUTS = {"horse-head-small.png": ("horse.jpg", (60, 100, 300, 280), 2)}
OUTPUT_SUFFIX = {"horse-objects.jpg": "-preview", "girl-objects.jpg": "-preview"}
# Results shown in part: (left, top, right, bottom) of the result, before shrinking.
OUTPUT_CROPS = {"horse-mane-plain-on-dark.jpg": (40, 95, 400, 365), "horse-mane-matted-on-dark.jpg": (40, 95, 400, 365)}


def make(fixtures: Path, out: Path, only: set[str] | None = None) -> list[Path]:
    """Run the command line for every picture (or only those named) and write the shrunk results into out."""
    out.mkdir(parents=True, exist_ok=True)
    made = []
    environment = {**os.environ, "STUDIO_LOG_LEVEL": "warning"}
    with tempfile.TemporaryDirectory() as scratch:
        for name, (photo, box, factor) in SMALL_INPUTS.items():
            with Image.open(fixtures / "photos" / photo) as image:
                small = image.convert("RGB").crop(box)
            small.resize((small.width // factor, small.height // factor), Image.BICUBIC).save(Path(scratch) / name)
        for picture, photo, arguments in PICTURES:
            if only and picture not in only:
                continue
            source = Path(scratch) / photo if photo in SMALL_INPUTS else fixtures / "photos" / photo
            if arguments is None:
                result = source
            elif arguments == "bicubic":
                result = Path(scratch) / picture
                with Image.open(source) as image:
                    image.resize((image.width * 4, image.height * 4), Image.BICUBIC).save(result)
            else:
                folder = Path(scratch) / picture
                folder.mkdir()
                command = [sys.executable, "-m", "flask", "--app", "wsgi", "studio", "process", *arguments,
                           "--out", str(folder), str(source)]
                subprocess.run(command, cwd=ROOT, env=environment, check=True)
                suffix = OUTPUT_SUFFIX.get(picture, "")
                result = next(path for path in folder.iterdir() if path.stem == source.stem + suffix)
            made.append(shrink(result, out / picture, OUTPUT_CROPS.get(picture)))
    return made


def shrink(source: Path, target: Path, box: tuple[int, int, int, int] | None = None) -> Path:
    """Save the image (or the box of it) at most MAX_WIDTH pixels wide, in the target's format, without metadata."""
    with Image.open(source) as image:
        image.load()
        if box is not None:
            image = image.crop(box)
        if image.width > MAX_WIDTH:
            image = image.resize((MAX_WIDTH, round(image.height * MAX_WIDTH / image.width)), Image.LANCZOS)
        if target.suffix == ".jpg":
            image.convert("RGB").save(target, "JPEG", quality=85, optimize=True)
        else:
            image.save(target, "PNG", optimize=True)
    return target


def main() -> int:
    """Command line."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fixtures", type=Path, default=ROOT.parent / "shared" / "fixtures")
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "pictures")
    parser.add_argument("pictures", nargs="*", help="make only these pictures (file names), not all")
    arguments = parser.parse_args()
    for path in make(arguments.fixtures, arguments.out, set(arguments.pictures) or None):
        print(path.relative_to(ROOT), f"{path.stat().st_size // 1024} KB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
