"""Properties of the upload validator and the option parser: whatever comes in, the answer is an accepted photo
or a 4xx refusal with a message, never any other exception."""

from __future__ import annotations

import io
import unicodedata

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from werkzeug.datastructures import FileStorage, MultiDict

from ml.operations import OPERATIONS, InvalidOptions, Operation
from studio.tasks.service import MAX_FILENAME_LENGTH, display_filename
from studio.tasks.uploads import UploadRejected, accept_photo, clean_photo, option_fields, read_upload
from tests.support import samples

MAX_PIXELS = 1_000_000
MODELS = ("u2netp", "u2net")
PROPERTY_SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

VALID_FILES = [
    samples.encoded(samples.picture((24, 16)), "JPEG"),
    samples.encoded(samples.picture((24, 16)), "PNG"),
    samples.encoded(samples.picture((24, 16)), "WEBP"),
    samples.encoded(samples.picture((24, 16)).convert("P"), "PNG", transparency=0),
    samples.png16_grey(samples.picture((24, 16))),
    samples.jpeg_rotated_with_gps(samples.picture((24, 16))),
]


@st.composite
def damaged_files(draw: st.DrawFn) -> bytes:
    """Return a valid photo with random bytes overwritten, cut off or appended (a fuzzer's favourite inputs)."""
    data = bytearray(draw(st.sampled_from(VALID_FILES)))
    for _ in range(draw(st.integers(0, 8))):
        position = draw(st.integers(0, len(data) - 1))
        data[position] = draw(st.integers(0, 255))
    cut = draw(st.integers(1, len(data)))
    return bytes(data[:cut]) + draw(st.binary(max_size=64))


uploaded_bytes = st.one_of(st.binary(max_size=4096), damaged_files(), st.sampled_from(VALID_FILES))


def assert_refusal(error: UploadRejected) -> None:
    """Assert that a refusal is one a client can act on: a 4xx status, a code and a sentence."""
    assert 400 <= error.status < 500
    assert error.code and error.code.replace("_", "").isalpha()
    assert error.message and len(error.message) < 400


@PROPERTY_SETTINGS
@given(uploaded_bytes)
def test_upload_validator_accepts_a_clean_photo_or_refuses_with_a_4xx(data: bytes) -> None:
    try:
        photo = clean_photo(data, MAX_PIXELS)
    except UploadRejected as error:
        assert_refusal(error)
        return
    # Anything accepted is a clean, decodable still image of an allowed type with no metadata.
    with Image.open(io.BytesIO(photo.data)) as image:
        image.load()
        assert image.format in ("JPEG", "PNG", "WEBP") and image.size == (photo.width, photo.height)
        assert len(image.getexif()) == 0
    assert photo.width * photo.height <= MAX_PIXELS


@PROPERTY_SETTINGS
@given(uploaded_bytes)
def test_the_header_check_accepts_a_still_photo_or_refuses_with_a_4xx(data: bytes) -> None:
    # What the web request runs: the header alone, so anything it accepts the job's clean copy decides for good.
    try:
        photo = accept_photo(data, MAX_PIXELS)
    except UploadRejected as error:
        assert_refusal(error)
        return
    assert photo.data == data and photo.width * photo.height <= MAX_PIXELS
    assert photo.media_type in ("image/jpeg", "image/png", "image/webp")


@PROPERTY_SETTINGS
@given(data=st.binary(max_size=512), filename=st.text(max_size=300),
       content_type=st.text(st.characters(exclude_characters="\r\n"), max_size=100),
       limit=st.one_of(st.none(), st.integers(1, 600)))
def test_reading_an_upload_returns_its_bytes_or_refuses_with_a_4xx(data, filename, content_type, limit) -> None:
    upload = FileStorage(io.BytesIO(data), filename=filename, content_type=content_type)
    try:
        read = read_upload(upload, limit)
    except UploadRejected as error:
        assert_refusal(error)
        return
    assert read == data and data and (limit is None or len(data) <= limit) and filename


@PROPERTY_SETTINGS
@given(st.text(max_size=2000))
def test_display_filename_is_one_short_plain_name(filename: str) -> None:
    shown = display_filename(filename)
    assert len(shown) <= MAX_FILENAME_LENGTH
    assert "/" not in shown and "\\" not in shown
    assert not any(unicodedata.category(character).startswith("C") for character in shown)


scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=200),
                    st.sampled_from(["png", "webp", "jpeg", "jpg", "mask", "cutout", "#fff", "#00000080", "true",
                                     "0", "100", "u2netp", "u2net", ""]))
values = st.one_of(scalars, st.lists(scalars, max_size=3), st.dictionaries(st.text(max_size=5), scalars, max_size=2))
OPTION_NAMES = sorted({name for operation in OPERATIONS.values() for name in operation.options.model_fields})
names = st.one_of(st.sampled_from(OPTION_NAMES), st.text(max_size=50))
operations = st.sampled_from(list(OPERATIONS.values()))


def parse(raw, operation: Operation):
    """Parse submitted fields as the service does: the field checks, then the operation's schema."""
    try:
        return operation.parse(option_fields(raw), models=MODELS, default_model="u2netp")
    except InvalidOptions as error:
        raise UploadRejected(400, "invalid_option", str(error)) from None


@PROPERTY_SETTINGS
@given(st.dictionaries(names, values, max_size=8), operations)
def test_every_operations_option_parser_returns_options_or_refuses_with_a_4xx(raw: dict, operation) -> None:
    try:
        options = parse(raw, operation)
    except UploadRejected as error:
        assert_refusal(error)
        return
    if "model" in operation.options.model_fields:
        assert options.model in MODELS
    # What a task stores reads back as the same options.
    assert operation.restore(options.to_dict()) == options


@PROPERTY_SETTINGS
@given(st.lists(st.tuples(names, st.text(max_size=200)), max_size=10), operations)
def test_option_parser_takes_form_fields_repeated_or_not(pairs: list[tuple[str, str]], operation) -> None:
    form = MultiDict(pairs)
    try:
        parse(form, operation)
    except UploadRejected as error:
        assert_refusal(error)
        if any(len(form.getlist(name)) > 1 for name in form):
            assert error.code == "invalid_option"


@pytest.mark.parametrize("data", VALID_FILES, ids=["jpeg", "png", "webp", "palette", "png16", "exif"])
def test_every_valid_sample_is_accepted(data: bytes) -> None:
    assert clean_photo(data, MAX_PIXELS).width == 24
