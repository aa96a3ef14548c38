"""Super-resolution: the ncnn conversion, the tiling, the sizes, the alpha, progress and cancellation."""

from __future__ import annotations

import contextlib
import importlib.util
import struct

import numpy as np
import pytest
import torch
from PIL import Image, ImageDraw, ImageFilter
from torch import nn
from torch.nn import functional

from ml.models.realesrgan import convert as realesrgan_weights, infer as upscale, network as rrdbnet
from ml.registry import MODELS
from ml.sessions import ModelSession
from tests.support.services import MODEL_DIR, require


BLOCKS = 4


class BlurThenNearest(nn.Module):
    """A stand-in network that mixes each pixel with its neighbours (so tiling errors show), then upsamples 4x."""

    def __init__(self) -> None:
        super().__init__()
        self.calls = 0

    def trunk(self, batch: torch.Tensor, progress=None) -> torch.Tensor:
        self.calls += 1
        for block in range(1, BLOCKS + 1):  # reports as the real trunk does, after each of its blocks
            if progress is not None:
                progress(block / BLOCKS)
        return functional.avg_pool2d(batch, 3, stride=1, padding=1, count_include_pad=True)

    def upsample(self, features: torch.Tensor) -> torch.Tensor:
        return functional.interpolate(features, scale_factor=4, mode="nearest")


class FakeSession:
    """Quacks like a ModelSession around a stand-in network."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    @contextlib.contextmanager
    def inference(self):
        with torch.inference_mode():
            yield

    def to_device(self, batch: torch.Tensor) -> torch.Tensor:
        return batch


@pytest.fixture
def fake_session() -> FakeSession:
    return FakeSession(BlurThenNearest())


def photo(width: int = 150, height: int = 100, seed: int = 0) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8))


# Sizes, limits and the tile plan.

@pytest.mark.parametrize("scale", [2, 4])
def test_output_has_the_scaled_size(fake_session, scale):
    assert upscale.output_size(150, 100, scale) == (150 * scale, 100 * scale)
    result = upscale.upscale(photo(), fake_session, scale=scale, tile=64, overlap=4)
    assert result.size == (150 * scale, 100 * scale) and result.mode == "RGB"


def test_other_scales_are_refused():
    with pytest.raises(upscale.UpscaleError, match="scale"):
        upscale.output_size(10, 10, 3)


def test_a_result_above_the_limit_is_refused_before_any_work(fake_session):
    with pytest.raises(upscale.UpscaleError, match="above the limit"):
        upscale.upscale(photo(), fake_session, scale=4, max_output_pixels=600 * 400 - 1)
    assert fake_session.model.calls == 0
    assert upscale.upscale(photo(), fake_session, scale=4, max_output_pixels=600 * 400).size == (600, 400)


@pytest.mark.parametrize("width, height, tiles", [(300, 200, 3 * 2), (128, 100, 1), (1000, 129, 11 * 2)])
def test_tiles_cover_the_photo_once_and_see_their_context(width, height, tiles):
    plan = upscale.tile_plan(width, height, tile=128, overlap=16)
    assert len(plan) == tiles and [piece.index for piece in plan] == list(range(tiles))
    covered = np.zeros((height, width), dtype=int)
    for piece in plan:
        left, top, right, bottom = piece.core
        covered[top:bottom, left:right] += 1
        c_left, c_top, c_right, c_bottom = piece.context
        assert (c_left, c_top) == (max(0, left - 16), max(0, top - 16))
        assert (c_right, c_bottom) == (min(width, right + 16), min(height, bottom + 16))
        assert c_right - c_left <= 128 and c_bottom - c_top <= 128
    assert (covered == 1).all()


def test_a_tile_must_leave_room_inside_its_overlap():
    with pytest.raises(upscale.UpscaleError, match="twice the overlap"):
        upscale.tile_plan(300, 200, tile=39, overlap=16)


def test_the_time_estimate_counts_the_overlap():
    one_tile = upscale.estimated_seconds(500, 400, threads=2)
    assert one_tile == pytest.approx(upscale.CPU_SECONDS_PER_MEGAPIXEL * 0.2 / 2)
    sixteen_times_larger = upscale.estimated_seconds(2000, 1600, threads=2)
    assert sixteen_times_larger > one_tile * 16 * 1.5
    assert upscale.timeout_seconds(2000, 1600, threads=2) == pytest.approx(
        sixteen_times_larger * upscale.TIMEOUT_MARGIN)


# Tiling: with overlap past the stand-in's reach (1 pixel) and Lanczos' (1.5), the tiles leave no trace.

@pytest.mark.parametrize("scale, workers", [(2, 1), (4, 1), (4, 2)])
def test_tiled_equals_untiled_with_the_stand_in(fake_session, scale, workers):
    image = photo(150, 100)
    untiled = np.asarray(upscale.run_network(np.asarray(image), fake_session))
    if scale == 2:
        untiled = np.asarray(Image.fromarray(untiled).resize((300, 200), Image.LANCZOS))
    tiled = np.asarray(upscale.upscale(image, fake_session, scale=scale, tile=40, overlap=4, workers=workers))
    assert np.array_equal(tiled, untiled)


# Progress and cancellation.

@pytest.mark.parametrize("workers", [1, 2])
def test_progress_names_each_tile_in_turn(fake_session, workers):
    reports = []
    upscale.upscale(photo(150, 100), fake_session, scale=4, tile=50, overlap=4, workers=workers,
                    progress=lambda percent, message: reports.append((percent, message)))
    count = len(upscale.tile_plan(150, 100, tile=50, overlap=4))
    assert count > 4
    messages = [message for index, (_, message) in enumerate(reports) if index == 0 or message != reports[index - 1][1]]
    assert messages == [f"tile {index} of {count}" for index in range(1, count + 1)]
    percents = [percent for percent, _ in reports]
    assert percents == sorted(percents) and 0 <= percents[0] and percents[-1] < 100


def test_a_photo_that_fits_one_tile_moves_its_progress_while_the_network_runs(fake_session):
    reports = []
    upscale.upscale(photo(40, 30), fake_session, scale=4, progress=lambda percent, message: reports.append(
        (percent, message)))
    assert len(upscale.tile_plan(40, 30)) == 1
    assert {message for _, message in reports} == {"tile 1 of 1"}
    percents = [percent for percent, _ in reports]
    # The tile's start, then once per block of the trunk: up to the trunk's share of the pass.
    assert percents == sorted(percents) and percents[0] == 0 and len(set(percents)) == BLOCKS + 1
    assert percents[-1] == int(100 * upscale.TRUNK_SHARE)


def test_the_real_trunk_reports_after_each_block():
    network = rrdbnet.RRDBNet(features=8, blocks=3, growth=4)
    shares = []
    with torch.inference_mode():
        network.trunk(torch.rand(1, 3, 8, 8), progress=shares.append)
    assert shares == [1 / 3, 2 / 3, 1.0]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_progress_callback_that_raises_stops_the_work(fake_session, workers):
    class Cancelled(Exception):
        pass

    def cancel_at_second_tile(percent: int, message: str) -> None:
        if message.startswith("tile 2 "):
            raise Cancelled

    threads = torch.get_num_threads()
    with pytest.raises(Cancelled):
        upscale.upscale(photo(150, 100), fake_session, scale=4, tile=50, overlap=4, workers=workers,
                        progress=cancel_at_second_tile)
    assert fake_session.model.calls == 1
    assert torch.get_num_threads() == threads


# Transparency.

def cutout(size: int = 64) -> Image.Image:
    """Return a red disc with a soft edge on transparent black, as our background removal writes cutouts."""
    alpha = Image.new("L", (size, size), 0)
    ImageDraw.Draw(alpha).ellipse((size // 4, size // 4, 3 * size // 4, 3 * size // 4), fill=255)
    alpha = alpha.filter(ImageFilter.GaussianBlur(1))
    rgba = Image.new("RGBA", (size, size), (200, 30, 40, 255))
    rgba.putalpha(alpha)
    rgba.paste((0, 0, 0, 0), mask=alpha.point(lambda value: 255 if value == 0 else 0))
    return rgba


def far_from_edges(alpha: Image.Image, scale: int) -> tuple[np.ndarray, np.ndarray]:
    """Return the output pixels two source pixels away from any visible, and from any transparent, pixel."""
    far_out = np.asarray(alpha.filter(ImageFilter.MaxFilter(5))) == 0
    far_in = np.asarray(alpha.filter(ImageFilter.MinFilter(5))) == 255
    assert far_out.any() and far_in.any()
    return tuple(np.kron(mask, np.ones((scale, scale), dtype=bool)) for mask in (far_out, far_in))


def check_alpha(source: Image.Image, result: Image.Image, scale: int) -> None:
    """Transparent stays transparent and zeroed, opaque stays opaque, and edge colours are the subject's."""
    assert result.mode == "RGBA" and result.size == (source.width * scale, source.height * scale)
    alpha = np.asarray(source.getchannel("A"))
    big = np.asarray(result)
    far_out, far_in = far_from_edges(source.getchannel("A"), scale)
    assert (big[far_out] == 0).all()
    assert (big[..., 3][far_in] == 255).all()
    assert (big[big[..., 3] == 0][:, :3] == 0).all()
    # Without colour bleeding the black under transparent pixels darkens the edge.
    edge = (big[..., 3] > 0) & (big[..., 3] < 255)
    assert edge.any() and (alpha == 0).any()
    assert np.abs(big[edge][:, :3].astype(int) - (200, 30, 40)).mean() < 20


@pytest.mark.parametrize("scale", [2, 4])
def test_alpha_is_upscaled_cleanly(fake_session, scale):
    source = cutout()
    check_alpha(source, upscale.upscale(source, fake_session, scale=scale, tile=40, overlap=4), scale)


def test_colour_bleeding_fills_only_transparent_pixels():
    source = cutout()
    rgb, alpha = np.asarray(source.convert("RGB")), np.asarray(source.getchannel("A"))
    filled = upscale.bleed_colours(rgb, alpha)
    assert np.array_equal(filled[alpha > 0], rgb[alpha > 0])
    assert np.abs(filled[alpha == 0].astype(int) - (200, 30, 40)).max() <= 1


# The ncnn converter, on a small network written in ncnn's format here.

def ncnn_files(model: rrdbnet.RRDBNet, tmp_path, fp16: bool = True):
    """Write a model's convolutions as an ncnn .param/.bin pair (only what the converter reads)."""
    lines, blobs = [], []
    for name, conv in model.named_modules():
        if not isinstance(conv, nn.Conv2d):
            continue
        kernel = conv.weight.detach().numpy().reshape(-1)
        leaky = " 9=2 -23310=1,2.000000e-01" if realesrgan_weights._is_followed_by_leaky_relu(name) else ""
        lines.append(f"Convolution {name} 1 1 in out 0={conv.out_channels} 1=3 4=1 5=1 6={kernel.size}{leaky}")
        if fp16:
            data = kernel.astype("<f2").tobytes()
            blobs.append(struct.pack("<I", realesrgan_weights.FP16_TAG) + data + b"\0" * (-len(data) % 4))
        else:
            blobs.append(struct.pack("<I", 0) + kernel.astype("<f4").tobytes())
        blobs.append(conv.bias.detach().numpy().astype("<f4").tobytes())
    param = tmp_path / "net.param"
    param.write_text(f"7767517\n{len(lines) + 1} {len(lines) + 1}\nInput data 0 1 data\n" + "\n".join(lines) + "\n")
    weights = tmp_path / "net.bin"
    weights.write_bytes(b"".join(blobs))
    return param, weights


def small_network() -> rrdbnet.RRDBNet:
    torch.manual_seed(0)
    return rrdbnet.RRDBNet(features=8, blocks=2, growth=4)


@pytest.mark.parametrize("fp16", [True, False])
def test_converter_reads_back_what_was_written(tmp_path, fp16):
    model = small_network()
    param, weights = ncnn_files(model, tmp_path, fp16)
    state = realesrgan_weights.to_state_dict(small_network(), realesrgan_weights.parse_param(param.read_text()),
                                             weights.read_bytes())
    for name, tensor in model.state_dict().items():
        expected = tensor.half().float() if fp16 and name.endswith("weight") else tensor
        assert torch.equal(state[name], expected), name


def test_converter_refuses_a_mismatch(tmp_path):
    param, weights = ncnn_files(small_network(), tmp_path)
    layers = realesrgan_weights.parse_param(param.read_text())
    with pytest.raises(realesrgan_weights.ConversionError, match="more than the graph reads"):
        realesrgan_weights.to_state_dict(small_network(), layers, weights.read_bytes() + b"\0" * 4)
    with pytest.raises(realesrgan_weights.ConversionError):
        realesrgan_weights.to_state_dict(rrdbnet.RRDBNet(features=8, blocks=2, growth=8), layers,
                                         weights.read_bytes())
    with pytest.raises(realesrgan_weights.ConversionError, match="quantized"):
        realesrgan_weights.to_state_dict(small_network(), layers, struct.pack("<I", 0x000D4B38) + b"\0" * 64)


def test_x4plus_has_the_papers_size():
    with torch.device("meta"):
        model = rrdbnet.rrdbnet_x4plus()
    assert sum(parameter.numel() for parameter in model.parameters()) == 16_697_987
    assert "body.22.rdb3.conv5.weight" in model.state_dict()
    with torch.inference_mode():
        assert small_network().eval()(torch.rand(1, 3, 5, 7)).shape == (1, 3, 20, 28)


def test_upsampling_in_bands_equals_one_pass():
    model = small_network().eval()
    rgb = np.asarray(photo(20, 23))
    batch = torch.from_numpy(rgb.transpose(2, 0, 1).copy()).unsqueeze(0).float() / 255
    with torch.inference_mode():
        one_pass = (model(batch)[0].clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    banded = upscale.run_network(rgb, FakeSession(model), band_rows=3)
    assert np.abs(banded.astype(int) - one_pass).max() <= 1
    assert (banded == one_pass).mean() > 0.999


# The real network (installed weights, fixture photos).

@pytest.fixture(scope="module")
def session() -> ModelSession:
    spec = MODELS["realesrgan_x4plus"]
    require(spec.weights_path(MODEL_DIR).is_file(), f"Real-ESRGAN weights not installed in {MODEL_DIR}")
    return ModelSession(spec, MODEL_DIR)


def fixture_crop(photos_dir, name: str, box: tuple[int, int, int, int]) -> np.ndarray:
    return np.asarray(Image.open(photos_dir / name).convert("RGB").crop(box))


@pytest.mark.slow
def test_conversion_matches_ncnn_itself(session, photos_dir):
    require(importlib.util.find_spec("ncnn") is not None, "ncnn is not installed (requirements-dev.txt)")
    from ml.models.realesrgan.ncnn import NcnnUpscaler, original_files

    require(all(path.is_file() for path in original_files(MODEL_DIR)), "the original ncnn files are not installed")
    rgb = fixture_crop(photos_dir, "horse.jpg", (300, 200, 364, 248))
    theirs = NcnnUpscaler(MODEL_DIR, threads=torch.get_num_threads()).run(rgb.astype(np.float32) / 255)
    batch = torch.from_numpy(rgb.transpose(2, 0, 1).copy()).unsqueeze(0).float() / 255
    with session.inference():
        ours = session.model(session.to_device(batch))[0].float().permute(1, 2, 0).numpy()
    # Before rounding to 8 bits, which alone would differ by up to 0.5/255.
    difference = np.abs(np.clip(ours, 0, 1) - np.clip(theirs, 0, 1)) * 255
    assert difference.max() <= 2 and difference.mean() <= 0.5, (difference.max(), difference.mean())


@pytest.mark.slow
def test_tiles_leave_no_seams(session, photos_dir):
    rgb = fixture_crop(photos_dir, "boat.jpg", (480, 230, 736, 486))
    untiled = upscale.run_network(rgb, session).astype(int)
    # Four tiles with the default overlap: a vertical seam, a horizontal one and where they cross.
    tile = 128 + upscale.DEFAULT_OVERLAP
    assert [piece.core for piece in upscale.tile_plan(256, 256, tile)] == [
        (0, 0, 128, 128), (128, 0, 256, 128), (0, 128, 128, 256), (128, 128, 256, 256)]
    tiled = np.asarray(upscale.upscale_rgb(rgb, session, scale=4, tile=tile)).astype(int)
    assert np.abs(tiled - untiled).max() <= 1


@pytest.mark.slow
def test_a_real_cutout_keeps_its_alpha_clean(session, fixtures_dir):
    box = (384, 336, 432, 384)
    # The authors' horse mask, its faint background noise and near-white interior snapped as a cutout's would be.
    mask = Image.open(fixtures_dir / "u2netp_reference" / "horse.png").convert("L").crop(box)
    alpha = mask.point(lambda value: 0 if value < 8 else 255 if value > 247 else value)
    source = Image.open(fixtures_dir / "photos" / "horse.jpg").convert("RGBA").crop(box)
    source.putalpha(alpha)
    source.paste((0, 0, 0, 0), mask=alpha.point(lambda value: 255 if value == 0 else 0))
    result = upscale.upscale(source, session, scale=4)
    far_out, far_in = far_from_edges(source.getchannel("A"), 4)
    big = np.asarray(result)
    assert (big[far_out] == 0).all() and (big[..., 3][far_in] == 255).all()
