"""Style transfer: the converted network against onnxruntime, blends, sizes, alpha, regions, strength, progress."""

from __future__ import annotations

import contextlib
from pathlib import Path

import numpy as np
import onnx
import pytest
import torch
from onnx import TensorProto, helper, numpy_helper
from PIL import Image, ImageDraw
from torch.nn import functional

from ml.models.style26 import convert as style_weights, infer as style_transfer, network as style_network
from ml.registry import MODELS
from ml.sessions import ModelSession
from ml.weights import source_files
from tests.support.services import MODEL_DIR, require

SPEC = MODELS["style26"]
PREVIEWS = Path(__file__).resolve().parents[2] / "static" / "img" / "styles"


class UntrainedSession:
    """Quacks like a ModelSession around the network with random style tables (no weights needed)."""

    def __init__(self) -> None:
        torch.manual_seed(0)
        self.model = style_network.multistyle_network().eval()
        with torch.no_grad():
            for name, parameter in self.model.named_parameters():
                if name.endswith(("gamma", "beta")):
                    parameter.normal_(0.5 if name.endswith("gamma") else 0.0, 0.3)
        self.device = torch.device("cpu")

    @contextlib.contextmanager
    def inference(self):
        with torch.inference_mode():
            yield

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        return batch.contiguous(memory_format=torch.channels_last)


@pytest.fixture(scope="module")
def session() -> ModelSession:
    require(SPEC.weights_path(MODEL_DIR).is_file(), f"style26 weights not installed in {MODEL_DIR}")
    return ModelSession(SPEC, MODEL_DIR)


@pytest.fixture(scope="module")
def onnx_session():
    import onnxruntime

    (path,) = source_files(MODEL_DIR, SPEC.source).values()
    require(path.is_file(), "style26 not installed: make install keeps the verified ONNX file under sources/")
    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def horse(photos_dir) -> Image.Image:
    return Image.open(photos_dir / "horse.jpg").convert("RGB")


def pixels(image: Image.Image) -> np.ndarray:
    return np.asarray(image, dtype=np.int16)


def noise(width: int, height: int, channels: int = 3, seed: int = 0) -> Image.Image:
    shape = (height, width, channels)
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8))


@pytest.mark.slow
@pytest.mark.parametrize("weights", [style_transfer.style_weights(0), style_transfer.style_weights(19),
                                     style_transfer.style_weights(7, 13, 50)], ids=["style 0", "style 19", "blend"])
def test_network_matches_onnxruntime_on_a_photo(horse, session, onnx_session, weights):
    batch = style_transfer.to_batch(horse)
    expected = onnx_session.run(None, {"image": batch.numpy(), "style_weights": np.float32(weights)})[0]
    with session.inference():
        network = session.model(session.to_device(batch), torch.tensor(weights)).float().numpy()
    assert np.abs(network - expected).mean() <= 1 / 255
    assert np.abs(network - expected).max() <= 4 / 255
    # The whole path too: the photo at its own size, rounded to 8 bits as the packager's code rounds.
    stylized = style_transfer.stylize(horse, session, weights, working_size=1024)
    reference = (np.clip(expected[0], 0, 1).transpose(1, 2, 0)[:horse.height, :horse.width] * 255 + 0.5)
    difference = np.abs(pixels(stylized) - reference.astype(np.int16))
    assert difference.mean() <= 1 and difference.max() <= 4


@pytest.mark.slow
def test_a_full_blend_is_the_pure_style_and_a_half_blend_lies_between(horse, session):
    small = horse.resize((192, 148))

    def run(weights):
        return pixels(style_transfer.stylize(small, session, weights, working_size=256))

    pure, other = run(style_transfer.style_weights(3)), run(style_transfer.style_weights(11))
    assert np.array_equal(run(style_transfer.style_weights(3, 11, 100)), pure)
    assert np.array_equal(run(style_transfer.style_weights(3, 11, 0)), other)
    half = run(style_transfer.style_weights(3, 11, 50))
    assert np.abs(half - pure).mean() > 5 and np.abs(half - other).mean() > 5
    # An interpolation of the style tables, not a cross-fade of the two pictures.
    assert np.abs(half - (pure + other) / 2).mean() > 5


def test_style_weights_put_the_blend_on_the_two_styles():
    weights = style_transfer.style_weights(2, 5, 70)
    assert len(weights) == 26 and weights[2] == pytest.approx(0.7) and weights[5] == pytest.approx(0.3)
    assert sum(weights) == pytest.approx(1)
    assert style_transfer.style_weights(4, 4, 30) == style_transfer.style_weights(4)
    for bad in ({"style": 26}, {"style": 1, "blend_with": -1}, {"style": 1, "blend_with": 2, "blend": 101}):
        with pytest.raises(ValueError):
            style_transfer.style_weights(**bad)


def test_styles_are_26_named_with_unique_slugs_and_a_preview_each():
    slugs = [slug for slug, _ in style_transfer.STYLES]
    assert len(slugs) == 26 == len(set(slugs))
    for slug in slugs:
        with Image.open(PREVIEWS / f"{slug}.webp") as preview:
            assert preview.width <= 480


@pytest.mark.parametrize("size", [(37, 23), (101, 66), (8, 8), (5, 3), (1, 1), (300, 7)])
def test_the_output_has_the_input_size_whatever_the_padding(size):
    stylized = style_transfer.stylize(noise(*size), UntrainedSession(), style_transfer.style_weights(1),
                                      working_size=256)
    assert stylized.size == size and stylized.mode == "RGB"


def test_a_photo_larger_than_the_working_size_is_stylized_smaller_and_returned_at_its_size():
    seen = []
    session = UntrainedSession()
    forward = session.model.forward
    session.model.forward = lambda batch, *args, **kwargs: seen.append(batch.shape) or forward(batch, *args, **kwargs)
    stylized = style_transfer.stylize(noise(1001, 403), session, style_transfer.style_weights(0), working_size=256)
    assert stylized.size == (1001, 403)
    assert seen == [(1, 3, 104, 256)]  # 256x103, padded to a multiple of 4


def test_rgba_keeps_its_alpha():
    image = noise(64, 48, channels=4, seed=3)
    stylized = style_transfer.stylize(image, UntrainedSession(), style_transfer.style_weights(2), working_size=256)
    assert stylized.mode == "RGBA"
    assert np.array_equal(np.asarray(stylized.getchannel("A")), np.asarray(image.getchannel("A")))


def test_working_sizes_outside_the_bounds_are_refused():
    for size in (style_transfer.MIN_WORKING_SIZE - 1, style_transfer.MAX_WORKING_SIZE + 1):
        with pytest.raises(ValueError, match="working size"):
            style_transfer.stylize(noise(20, 20), UntrainedSession(), style_transfer.style_weights(0),
                                   working_size=size)


def test_progress_is_reported_and_a_raising_callback_stops_the_work_and_leaves_the_model_usable():
    session = UntrainedSession()
    image, weights = noise(40, 32), style_transfer.style_weights(4)
    before = pixels(style_transfer.stylize(image, session, weights, working_size=256))
    reports = []
    style_transfer.stylize(image, session, weights, working_size=256,
                           progress=lambda percent, message: reports.append(percent))
    assert reports[0] == 0 and reports[-1] == 100 and reports == sorted(reports) and len(reports) > 10

    def cancel(percent: int, message: str) -> None:
        if "step 5" in message:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        style_transfer.stylize(image, session, weights, working_size=256, progress=cancel)
    assert np.array_equal(pixels(style_transfer.stylize(image, session, weights, working_size=256)), before)


def half_mask(size: tuple[int, int]) -> Image.Image:
    """A subject mask: the left half of the picture is the subject."""
    mask = Image.new("L", size, 0)
    ImageDraw.Draw(mask).rectangle((0, 0, size[0] // 2 - 1, size[1]), fill=255)
    return mask


@pytest.mark.parametrize("apply_to,painted", [("subject", slice(0, 40)), ("background", slice(40, 80))])
def test_a_region_paints_only_its_side_and_keeps_the_other_pixels_exactly(apply_to, painted):
    original, stylized = noise(80, 30, seed=1), noise(80, 30, seed=2)
    kept = slice(40, 80) if painted.start == 0 else slice(0, 40)
    sharp = pixels(style_transfer.apply(original, stylized, strength=100, mask=half_mask(original.size),
                                        apply_to=apply_to, feather=0))
    assert np.array_equal(sharp[:, kept], pixels(original)[:, kept])
    assert np.array_equal(sharp[:, painted], pixels(stylized)[:, painted])
    # Feathered: the edge is a gradient, and far from it both sides stay exact.
    soft = pixels(style_transfer.apply(original, stylized, strength=100, mask=half_mask(original.size),
                                       apply_to=apply_to, feather=3))
    far_kept = slice(kept.start + 15, kept.stop) if kept.start else slice(0, kept.stop - 15)
    assert np.array_equal(soft[:, far_kept], pixels(original)[:, far_kept])
    assert not np.array_equal(soft, sharp)


def test_strength_zero_returns_the_photo_and_full_strength_the_stylized_image():
    original, stylized = noise(50, 40, seed=4), noise(50, 40, seed=5)
    for apply_to in style_transfer.APPLY_TO:
        none = style_transfer.apply(original, stylized, strength=0, mask=half_mask(original.size),
                                    apply_to=apply_to, feather=4)
        assert np.array_equal(pixels(none), pixels(original))
    full = style_transfer.apply(original, stylized, strength=100, mask=None, apply_to="all", feather=0)
    assert np.array_equal(pixels(full), pixels(stylized))
    half = pixels(style_transfer.apply(original, stylized, strength=50, mask=None, apply_to="all", feather=0))
    assert np.abs(half - (pixels(original) + pixels(stylized)) / 2).max() <= 1


def test_apply_keeps_an_rgba_photos_alpha_and_refuses_a_missing_mask():
    original = noise(30, 20, channels=4, seed=6)
    result = style_transfer.apply(original, noise(30, 20), strength=60, mask=None, apply_to="all", feather=0)
    assert result.mode == "RGBA"
    assert np.array_equal(np.asarray(result.getchannel("A")), np.asarray(original.getchannel("A")))
    with pytest.raises(ValueError, match="mask"):
        style_transfer.apply(original, noise(30, 20), strength=60, mask=None, apply_to="subject", feather=0)


@pytest.mark.parametrize("channels,kernel,stride,height,width", [
    (3, 9, 1, 8, 12), (4, 9, 1, 20, 16), (32, 3, 2, 16, 12), (8, 3, 1, 2, 6), (5, 3, 2, 9, 7)])
def test_reflect_conv2d_equals_reflect_padding_then_convolution(channels, kernel, stride, height, width,
                                                                monkeypatch):
    monkeypatch.setattr(style_network, "STRIP_THRESHOLD", 0)  # the strips, which large photos take
    generator = torch.Generator().manual_seed(1)
    image = torch.randn(1, channels, height, width, generator=generator).contiguous(memory_format=torch.channels_last)
    weight = torch.randn(6, channels, kernel, kernel, generator=generator)
    expected = functional.conv2d(functional.pad(image, (kernel // 2,) * 4, mode="reflect"), weight, stride=stride)
    with torch.no_grad():
        actual = style_network.reflect_conv2d(image, weight, stride)
    assert actual.shape == expected.shape
    assert torch.allclose(actual, expected, atol=1e-4)


@pytest.mark.parametrize("strip_threshold", [0, style_network.STRIP_THRESHOLD], ids=["strips", "padded copy"])
def test_the_in_place_inference_path_equals_the_plain_one(strip_threshold, monkeypatch):
    monkeypatch.setattr(style_network, "STRIP_THRESHOLD", strip_threshold)
    network = UntrainedSession().model
    batch = torch.rand(1, 3, 32, 44, generator=torch.Generator().manual_seed(2))
    weights = torch.tensor(style_transfer.style_weights(5, 6, 40))
    with torch.inference_mode():
        fast = network(batch.contiguous(memory_format=torch.channels_last), weights)
    with torch.enable_grad():
        plain = network(batch, weights).detach()
    assert torch.allclose(fast, plain, atol=1e-5)


def quantized_graph_value(graph: onnx.GraphProto, name: str) -> np.ndarray:
    """Return what onnxruntime computes for a graph's output."""
    import onnxruntime

    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([name], {})[0]


def test_quantized_weights_are_dequantized_as_onnxruntime_does():
    kernel = np.random.default_rng(3).standard_normal((4, 3, 3, 3)).astype(np.float32)
    scale = np.float32([0.02, 0.05, 0.01, 0.03])
    zero = np.int8([0, 3, -2, 1])
    initializers = [numpy_helper.from_array(kernel, "kernel"), numpy_helper.from_array(scale, "scale"),
                    numpy_helper.from_array(zero, "zero")]
    nodes = [helper.make_node("QuantizeLinear", ["kernel", "scale", "zero"], ["quantized"], axis=0),
             helper.make_node("DequantizeLinear", ["quantized", "scale", "zero"], ["weights"], axis=0)]
    output = helper.make_tensor_value_info("weights", TensorProto.FLOAT, [4, 3, 3, 3])
    graph = helper.make_graph(nodes, "fake-quantized", [], [output], initializers)
    folded = style_weights.ConstantFolder(graph).value("weights")
    assert np.array_equal(folded, quantized_graph_value(graph, "weights"))
    assert not np.array_equal(folded, kernel)  # the round trip really lost precision, as the graph computes


def test_the_converted_weights_carry_the_pinned_checksum(tmp_path):
    from ml.weights import state_dict_digest

    (path,) = source_files(MODEL_DIR, SPEC.source).values()
    require(path.is_file(), "style26 not installed: make install keeps the verified ONNX file under sources/")
    assert state_dict_digest(style_weights.from_onnx({"multistyle26.onnx": path}, SPEC)) == SPEC.checksum
