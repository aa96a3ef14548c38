"""What an operation is: one declaration (name, models, options schema, outputs, timeout, the function that runs it)
that drives validation, the upload form, the API and its OpenAPI document, and the CLI.

The options of an operation are one pydantic model. pydantic validates what every entry point receives (form
fields, multipart fields, stored JSON, CLI flags) with the same rules and writes the JSON Schema that the API
publishes and the form and the CLI are generated from, so the shape of an option is written exactly once. Nothing
here imports torch: the web app reads these declarations; only the worker and the CLI run them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Callable, Literal, Mapping

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

MAX_OPTION_LENGTH = 100

# How long a run takes, in broad strokes: "quick" (seconds) or "slow" (minutes). The classes have queues and
# account slots of their own (studio/queue.py), so an account's cutout starts while its upscales run. In the order
# workers serve them: quick first.
CostClass = Literal["quick", "slow"]
COST_CLASSES: tuple[CostClass, ...] = ("quick", "slow")


class InvalidOptions(ValueError):
    """Raised when an option is unknown, malformed or out of range; `field` names it for the 400 message."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


class ModelNotInstalled(InvalidOptions):
    """Raised when no model an operation can use is installed: the server's state, not the request, is at fault."""


def _whole_number(value: Any) -> Any:
    # pydantic reads True as 1 and "1.0" as nothing: a form or JSON boolean is never a number here.
    if isinstance(value, bool):
        raise ValueError("must be a whole number")
    if isinstance(value, str):
        value = value.strip()
        if value.lstrip("+-").isdigit() and len(value) <= 18:
            return int(value)
    return value


def _choice(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


WholeNumber = Annotated[int, BeforeValidator(_whole_number)]


def choice(*values: str, aliases: Mapping[str, str] | None = None) -> Any:
    """Return an option type that takes one of the values, in any case, with spaces around it or by an alias."""
    aliases = dict(aliases or {})

    def normalise(value: Any) -> Any:
        value = _choice(value)
        return aliases.get(value, value) if isinstance(value, str) else value

    schema: dict[str, Any] = {"x-aliases": aliases} if aliases else {}
    if len(values) == 1:
        # pydantic writes a one-value Literal as "const"; an enum of one keeps every choice listed the same way.
        schema["enum"] = list(values)
    extra = Field(json_schema_extra=schema) if schema else Field()
    return Annotated[Literal[values], BeforeValidator(normalise), extra]  # type: ignore[valid-type]


ImageFormat = choice("png", "webp", "jpeg", aliases={"jpg": "jpeg"})
IMAGE_FORMAT_LABELS = {"png": "PNG (transparency)", "webp": "WebP (transparency, smaller)",
                       "jpeg": "JPEG (no transparency)"}


class Options(BaseModel):
    """Base of every operation's options: unknown names refused, values frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    def to_dict(self) -> dict[str, Any]:
        """Return the options as plain JSON-ready data (what a task stores)."""
        return self.model_dump(mode="json")


@dataclass(frozen=True)
class Output:
    """One thing an operation returns: an image (encoded as `image_format` says) or JSON data."""

    name: str
    kind: Literal["image", "json"]
    description: str
    # For images: "options" (the `format` option), or a fixed "png", "jpeg" or "webp".
    image_format: str = "options"


@dataclass(frozen=True)
class Attachment:
    """An extra picture an operation takes besides the photo (a background, a style), sent as its own file."""

    name: str
    title: str
    description: str
    required: bool = False


@dataclass
class Inputs:
    """What a run gets: the decoded photo (upright, RGB or RGBA) and the decoded attachments by name."""

    photo: Any  # PIL.Image.Image
    attachments: dict[str, Any] = field(default_factory=dict)


@dataclass
class Result:
    """What a run returns: the main output (an image or JSON-ready data) and the extras by output name."""

    main: Any
    extras: dict[str, Any] = field(default_factory=dict)


# The longest side each encoder can write (libjpeg's 65,500, WebP's 14-bit size fields); PNG has no practical limit.
MAX_SIDES = {"jpeg": 65_500, "webp": 16_383, "png": 2**31 - 1}


@dataclass(frozen=True)
class Limits:
    """Operator settings an operation may check options against before anything runs."""

    max_pixels: int
    max_output_pixels: int
    # STUDIO_OPERATION_MAX_PIXELS: the largest photo, in pixels, an operation takes where the operator raised (or
    # lowered) its default, by operation name.
    operation_max_pixels: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> "Limits":
        """Return the limits the operator's settings say."""
        return cls(config["STUDIO_MAX_PIXELS"], config["STUDIO_MAX_OUTPUT_PIXELS"],
                   dict(config.get("STUDIO_OPERATION_MAX_PIXELS") or {}))


def _photo_size(options: Any, width: int, height: int) -> tuple[int, int]:
    return width, height


def _photo_pixels(options: Any, width: int, height: int) -> int:
    return width * height


@dataclass(frozen=True)
class Operation:
    """A processing type: one declaration, from which every entry point is generated."""

    name: str
    title: str
    description: str
    options: type[Options]
    run: str  # dotted path of run(inputs, options, context) -> Result; imported only where it runs
    outputs: tuple[Output, ...]
    # Models the `model` option chooses among (the first is the default); empty when the operation has no choice.
    models: tuple[str, ...] = ()
    # Models it always needs besides the chosen one, given the options (the subject mask behind a painted
    # background, say).
    helper_models: Callable[[Options], tuple[str, ...]] = field(default=lambda options: ())
    attachments: tuple[Attachment, ...] = ()
    # Seconds one attempt may take for a photo of this many pixels; None: the operator's STUDIO_JOB_TIMEOUT.
    timeout: Callable[[Options, int], int] | None = None
    # Refuses options that cannot work for a photo of this size (raise InvalidOptions), before anything runs.
    check: Callable[[Options, int, int, Limits], None] | None = None
    # The size of the largest image a run makes from a photo of this size (margins, canvases, scales, sheets
    # included): checked against STUDIO_MAX_OUTPUT_PIXELS and the encoders' longest side before anything runs.
    output_size: Callable[[Options, int, int], tuple[int, int]] = _photo_size
    # The option that made the output larger than the photo, for the 400's field; None: the first of fill, margin,
    # scale and sheet the options have.
    grown_by: Callable[[Options], str] | None = None
    # Pixels of work a run does on a photo of this size: what the plan's megapixel budget counts.
    work: Callable[[Options, int, int], int] = _photo_pixels
    # The largest photo, in pixels, taken by default (STUDIO_OPERATION_MAX_PIXELS changes it); None: only
    # STUDIO_MAX_PIXELS applies.
    max_input_pixels: int | None = None
    # Seconds a run takes per megapixel of work (work_pixels) on a worker: the estimate of a task's time until
    # this server has measured its own (studio/tasks/estimates.py).
    seconds_per_megapixel: float = 3.0
    # The CLI runs one photo per core (single-threaded operators) when True, one at a time on every core when not.
    photo_parallel: bool = True
    # "slow" for an operation whose runs take minutes (COST_CLASSES): its jobs queue apart from the quick ones.
    cost_class: CostClass = "quick"

    def work_pixels(self, options: Options, width: int, height: int) -> int:
        """Return the pixels of work a run does on a photo of this size (what a plan's megapixels count)."""
        return max(width * height, int(self.work(options, width, height)))

    def input_limit(self, limits: Limits) -> int:
        """Return the largest photo, in pixels, this operation takes under these limits."""
        limit = limits.operation_max_pixels.get(self.name, self.max_input_pixels)
        return limits.max_pixels if limit is None else min(limit, limits.max_pixels)

    def check_photo(self, options: Options, width: int, height: int, limits: Limits) -> None:
        """Refuse (InvalidOptions) a photo too large for this operation, or options making a result too large."""
        limit = self.input_limit(limits)
        if width * height > limit:
            raise InvalidOptions("photo", f"{self.name} takes photos of up to {limit / 1e6:g} MP on this server; "
                                          f"this one is {width}x{height} ({width * height / 1e6:.1f} MP): send a "
                                          "smaller one")
        self._check_output(options, width, height, limits)
        if self.check is not None:
            self.check(options, width, height, limits)

    def _check_output(self, options: Options, width: int, height: int, limits: Limits) -> None:
        """Refuse a result above STUDIO_MAX_OUTPUT_PIXELS or longer than its format can be written."""
        out_width, out_height = self.output_size(options, width, height)
        if out_width * out_height > limits.max_output_pixels:
            grown = out_width * out_height > width * height
            raise InvalidOptions(self._grown_by(options) if grown else "photo",
                                 f"the result could be up to {out_width}x{out_height} "
                                 f"({out_width * out_height / 1e6:.1f} MP), above this server's limit of "
                                 f"{limits.max_output_pixels / 1e6:g} MP: use a smaller photo or option")
        for output in self.outputs:
            if output.kind != "image":
                continue
            chosen = output.image_format == "options"
            image_format = getattr(options, "format", "png") if chosen else output.image_format
            if max(out_width, out_height) > MAX_SIDES[image_format]:
                raise InvalidOptions("format" if chosen else "photo",
                                     f"{image_format.upper()} images can be at most {MAX_SIDES[image_format]:,} "
                                     f"pixels on a side and the {output.name} would be {out_width}x{out_height}"
                                     + (": choose png" if chosen else ": send a photo less long and thin"))

    def _grown_by(self, options: Options) -> str:
        """Return the option that can make the output larger than the photo, for the error's field."""
        if self.grown_by is not None:
            return self.grown_by(options)
        grown = ("fill", "margin", "scale", "sheet")
        return next((name for name in grown if name in self.options.model_fields), "options")

    @property
    def result(self) -> Output:
        """Return the main output."""
        return self.outputs[0]

    def extras(self) -> tuple[Output, ...]:
        """Return the outputs besides the main one."""
        return self.outputs[1:]

    def models_for(self, options: Options) -> tuple[str, ...]:
        """Return every model a run with these options loads: the chosen one and its helpers."""
        chosen = (getattr(options, "model"),) if self.models and hasattr(options, "model") else ()
        return tuple(dict.fromkeys(chosen + tuple(self.helper_models(options))))

    def option_schema(self) -> dict[str, Any]:
        """Return the options' JSON Schema (draft 2020-12, what OpenAPI 3.1 embeds)."""
        schema = self.options.model_json_schema()
        schema["title"] = f"{self.title} options"
        return schema

    def parse(self, data: Mapping[str, Any], *, models: tuple[str, ...] | None = None,
              default_model: str | None = None, attachments: frozenset[str] = frozenset()) -> Options:
        """Validate user input (form fields, JSON, CLI flags) into options; raise InvalidOptions naming the field.

        models are the installed models this operation may use (None: any it declares); default_model is the
        operator's choice when the request names none. An attachment's presence is the option of its name, when
        the schema has one, and cannot be typed in.
        """
        values = {name: value for name, value in data.items() if value is not None and value != ""}
        for attachment in self.attachments:
            if attachment.name in self.options.model_fields:
                values[attachment.name] = attachment.name in attachments
        if self.models and "model" in self.options.model_fields:
            values["model"] = self._model(values.get("model"), models, default_model)
        try:
            options = self.options.model_validate(values, context={"attachments": attachments})
        except ValidationError as error:
            raise _invalid(self.options, error) from None
        if models is not None:
            self._check_helpers(options, models)
        return options

    def _check_helpers(self, options: Options, installed: tuple[str, ...]) -> None:
        """Refuse a helper model (the subject mask's, say) that is not installed, naming the option that chose it."""
        for name in self.helper_models(options):
            if name not in installed:
                field = next((key for key, value in options.model_dump().items() if value == name), "model")
                raise InvalidOptions(field, f"{name!r} is not installed on this server; installed: "
                                            f"{', '.join(installed) or 'none'}")

    def restore(self, stored: Mapping[str, Any]) -> Options:
        """Validate options as a task stored them (attachment flags included); raise InvalidOptions."""
        try:
            return self.options.model_validate(dict(stored))
        except ValidationError as error:
            raise _invalid(self.options, error) from None

    def _model(self, value: Any, installed: tuple[str, ...] | None, default_model: str | None) -> Any:
        usable = [name for name in self.models if installed is None or name in installed]
        if value is None:
            if default_model in usable:
                return default_model
            if not usable:
                raise ModelNotInstalled("model", f"no model for {self.name} is installed on the server")
            return usable[0]
        if isinstance(value, str) and value.strip().lower() in self.models and value.strip().lower() not in usable:
            raise InvalidOptions("model", f"{value.strip()[:40]!r} is not installed on this server; installed: "
                                          f"{', '.join(usable) or 'none'}")
        return value.strip().lower() if isinstance(value, str) else value


def _invalid(options: type[Options], error: ValidationError) -> InvalidOptions:
    """Turn pydantic's first error into InvalidOptions with a message people can act on."""
    first = error.errors()[0]
    location = [str(part) for part in first.get("loc", ()) if part != "__root__"]
    name = location[0] if location else "options"
    kind, value = first.get("type", ""), first.get("input")
    prop = options.model_json_schema().get("properties", {}).get(name, {})
    low, high = prop.get("minimum"), prop.get("maximum")
    if kind == "extra_forbidden":
        return InvalidOptions(name[:40], "is not a known option")
    if kind == "literal_error":
        choices = ", ".join(str(option) for option in prop.get("enum", []))
        shown = f"{str(value)[:40]!r}" if isinstance(value, str) else "that value"
        return InvalidOptions(name, f"{shown} is not one of {choices}")
    if kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        return InvalidOptions(name, f"must be from {low} to {high}, got {value}")
    if kind.startswith("int_") or (kind == "value_error" and "whole number" in first.get("msg", "")):
        return InvalidOptions(name, f"must be a whole number from {low} to {high}")
    if kind.startswith("bool_"):
        return InvalidOptions(name, "must be true or false")
    if kind == "string_type" or kind == "string_too_long":
        return InvalidOptions(name, "must be a short piece of text")
    message = first.get("msg", "is not valid").removeprefix("Value error, ").removeprefix("Assertion failed, ")
    if not location:
        # A rule across options (a model validator) says which one it is about: "bg_image: choose one ...".
        field_name, _, rest = message.partition(": ")
        if rest and field_name.isidentifier():
            return InvalidOptions(field_name, rest)
        return InvalidOptions("options", message)
    return InvalidOptions(name, message[:1].lower() + message[1:])
