"""Real-ESRGAN x4plus: our PyTorch port against ncnn running the original files, and against plain resampling.

Prints one table:
- speed: ours and ncnn (the same fp16 weights, on the CPU) upscaling the same 0.1 MP photos 4x in the same process,
  rounds alternating, with 1 and 2 threads: seconds per megapixel of output (wall) and ncnn's time over ours, in
  wall and in CPU time (CPU time is what a busy machine inflates least). Ours runs in one pass, as the service runs
  a photo that fits in one tile, and with 2 threads also as 2 tiles on 2 one-thread workers (the overlap makes
  that 1.4 times the pixels).
- memory: peak RSS of a fresh process upscaling a 2 MP photo 4x with the defaults, stopped after its first tile
  (every tile is about as big and needs the same memory; the whole 8-bit result is allocated before the first),
  and the time the whole photo takes, extrapolated from that tile by the pixels each tile runs on.
- quality: fixture photos shrunk 4x and upscaled back with bicubic, Lanczos and ours: PSNR and SSIM against the
  originals, and sharpness (variance of the Laplacian of the luma; the originals' is given for scale).
- x2: photos shrunk 2x and upscaled back: ours x4 then resized down with Lanczos, bicubic or box, and plain
  bicubic and Lanczos.
- alpha: masks shrunk 4x and upscaled back with bicubic, Lanczos and the network (as a grey image): PSNR, and the
  share of output pixels far from any edge whose alpha is no longer 0 or 255.
- bfloat16: our output with bfloat16 autocast against ncnn on a small tile (the parity bound is 2/255 at most).

    .venv/bin/python bench/upscale.py [--threads 1,2] [--rounds 1] [--skip speed,memory,quality,x2,alpha,bf16]
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageFilter

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ml.models.realesrgan import infer as upscale  # noqa: E402
from ml.models.realesrgan.ncnn import NcnnUpscaler  # noqa: E402
from ml.registry import MODELS  # noqa: E402
from ml.sessions import ModelSession  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures"
SPEED_PHOTOS = ("girl.png",)  # 400x267: 0.107 MP
QUALITY_PHOTOS = ("boat.jpg", "girl.png", "hockey.png", "horse.jpg", "im_01.png", "long.jpg", "rifle2.jpeg",
                  "vangogh.jpeg")
X2_PHOTOS = ("girl.png", "hockey.png", "vangogh.jpeg")
ALPHA_MASKS = ("horse.png", "girl.png", "rifle2.png")
Row = tuple[str, str, str, str]


def load_session(model_dir: Path, bfloat16: bool = False) -> ModelSession:
    """Load our model once; bfloat16 off unless asked (ModelSpec keeps it off)."""
    session = ModelSession(MODELS["realesrgan_x4plus"], model_dir, bfloat16=False)
    session.bfloat16 = bfloat16
    return session


def timed(function, *args) -> tuple[float, float]:
    """Return the wall and CPU seconds of a call (CPU time, all threads: what a busy machine does not inflate)."""
    wall, cpu = time.perf_counter(), time.process_time()
    function(*args)
    return time.perf_counter() - wall, time.process_time() - cpu


def speed_rows(session: ModelSession, model_dir: Path, threads_list: list[int], rounds: int) -> list[Row]:
    """Time ncnn, ours in one pass and ours as the service runs it on the same photos, alternating, per thread count."""
    rows = []
    photos = [Image.open(FIXTURES / "photos" / name).convert("RGB") for name in SPEED_PHOTOS]
    input_mp = sum(photo.width * photo.height for photo in photos) / 1e6
    for threads in threads_list:
        torch.set_num_threads(threads)
        ncnn = NcnnUpscaler(model_dir, threads)
        runs = {"ncnn": lambda photo: ncnn.upscale(photo),
                # The photo fits in one default tile: this is how the service runs it.
                "ours, one pass": lambda photo: upscale.upscale(photo, session, scale=4)}
        if threads > 1:
            runs[f"ours, {threads} tiles on {threads} one-thread workers"] = lambda photo: upscale.upscale(
                photo, session, scale=4, tile=max(photo.size) // threads + upscale.DEFAULT_OVERLAP, workers=threads)
        ncnn.run(np.zeros((16, 16, 3), np.float32))
        upscale.run_network(np.zeros((16, 16, 3), np.uint8), session)
        best = {name: (float("inf"), float("inf")) for name in runs}
        for _ in range(rounds):
            for name, run in runs.items():
                times = [timed(run, photo) for photo in photos]
                best[name] = min(best[name], (sum(wall for wall, _ in times), sum(cpu for _, cpu in times)))
        for name, (wall, cpu) in best.items():
            ratio = "" if name == "ncnn" else (f"; ncnn/ours: wall {best['ncnn'][0] / wall:.2f}, "
                                               f"CPU {best['ncnn'][1] / cpu:.2f}")
            rows.append(("speed", f"{', '.join(SPEED_PHOTOS)} ({input_mp:.3f} MP in) x4, {threads} thread(s)", name,
                         f"{wall / (input_mp * 16):.0f} s per output MP ({wall:.0f} s wall, {cpu:.0f} s CPU){ratio}"))
    return rows


def memory_rows(model_dir: Path, threads: int) -> list[Row]:
    """Upscale a 2 MP photo 4x in a fresh process, stopped after its first tile; report its peak RSS and pace."""
    command = [sys.executable, str(Path(__file__).resolve()), "--memory-child", "--model-dir", str(model_dir),
               "--threads", str(threads)]
    report = json.loads(subprocess.run(command, capture_output=True, text=True, check=True).stdout.splitlines()[-1])
    return [("memory", f"{report['size']} photo (2.0 MP) x4, {threads} threads, defaults", "ours",
             f"peak RSS {report['peak_mib']} MiB after 1 of {report['tiles']} tiles (model and result included); "
             f"the whole photo: about {report['seconds'] / 60:.0f} min (extrapolated)")]


def memory_child(model_dir: Path, threads: int) -> None:
    """Run in the child: the peak RSS and extrapolated time of a 2 MP x4 upscale stopped after one tile."""
    torch.set_num_threads(threads)
    session = load_session(model_dir)
    photo = Image.open(FIXTURES / "photos" / "boat.jpg").convert("RGB").resize((1886, 1061), Image.LANCZOS)
    plan = upscale.tile_plan(*photo.size)
    stamps: list[float] = []

    class Enough(Exception):
        pass

    def progress(percent: int, message: str) -> None:
        stamps.append(time.perf_counter())
        if len(stamps) > 1:
            raise Enough

    try:
        upscale.upscale(photo, session, scale=4, progress=progress)
    except Enough:
        pass
    total = (stamps[1] - stamps[0]) * sum(piece.context_pixels for piece in plan) / plan[0].context_pixels
    print(json.dumps({"size": f"{photo.width}x{photo.height}", "tiles": len(plan), "peak_mib": high_water_mib(),
                      "seconds": total}))


def high_water_mib() -> int:
    """Return this process's peak RSS: VmHWM, since ru_maxrss survives exec and would count the parent's at fork."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


def luma(image: np.ndarray) -> np.ndarray:
    return image.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def psnr(ours: np.ndarray, reference: np.ndarray) -> float:
    error = np.mean((ours.astype(np.float64) - reference.astype(np.float64)) ** 2)
    return float(10 * np.log10(255 ** 2 / max(error, 1e-10)))


def ssim(ours: np.ndarray, reference: np.ndarray) -> float:
    """Return the mean SSIM of the lumas (Gaussian window, sigma 1.5, the usual constants)."""
    offsets = torch.arange(-5, 6, dtype=torch.float64)
    kernel = torch.exp(-offsets ** 2 / (2 * 1.5 ** 2))
    kernel /= kernel.sum()

    def blur(values: np.ndarray) -> np.ndarray:
        planes = torch.from_numpy(values)[None, None]
        planes = torch.nn.functional.conv2d(planes, kernel.view(1, 1, 1, -1))
        return torch.nn.functional.conv2d(planes, kernel.view(1, 1, -1, 1))[0, 0].numpy()

    x, y = luma(ours), luma(reference)
    mean_x, mean_y = blur(x), blur(y)
    var_x, var_y = blur(x * x) - mean_x ** 2, blur(y * y) - mean_y ** 2
    covariance = blur(x * y) - mean_x * mean_y
    c1, c2 = (0.01 * 255) ** 2, (0.03 * 255) ** 2
    numerator = (2 * mean_x * mean_y + c1) * (2 * covariance + c2)
    return float((numerator / ((mean_x ** 2 + mean_y ** 2 + c1) * (var_x + var_y + c2))).mean())


def sharpness(image: np.ndarray) -> float:
    """Return the variance of the Laplacian of the luma (higher: more fine detail, or more noise)."""
    y = luma(image)
    laplacian = 4 * y[1:-1, 1:-1] - y[:-2, 1:-1] - y[2:, 1:-1] - y[1:-1, :-2] - y[1:-1, 2:]
    return float(laplacian.var())


def round_trip_rows(section: str, session: ModelSession, names: tuple[str, ...], factor: int,
                    methods: dict) -> list[Row]:
    """Shrink photos by `factor`, bring them back with each method, and score the results against the originals."""
    scores: dict[str, list[tuple[float, float, float]]] = {name: [] for name in ("original", *methods)}
    for name in names:
        original = Image.open(FIXTURES / "photos" / name).convert("RGB")
        size = (original.width // (4 * factor) * 4 * factor, original.height // (4 * factor) * 4 * factor)
        original = original.crop((0, 0, *size))
        small = original.resize((size[0] // factor, size[1] // factor), Image.BICUBIC)
        reference = np.asarray(original)
        scores["original"].append((float("inf"), 1.0, sharpness(reference)))
        for method, run in methods.items():
            result = np.asarray(run(small, session))
            scores[method].append((psnr(result, reference), ssim(result, reference), sharpness(result)))
    rows = []
    for method, values in scores.items():
        mean_psnr, mean_ssim, mean_sharpness = (float(np.mean(column)) for column in zip(*values))
        quality = "" if method == "original" else f"PSNR {mean_psnr:.2f} dB, SSIM {mean_ssim:.3f}, "
        rows.append((section, f"{len(names)} fixture photos shrunk {factor}x, back {factor}x", method,
                     f"{quality}sharpness {mean_sharpness:.0f}"))
    return rows


_X4_CACHE: dict[bytes, Image.Image] = {}


def ours_x4(small: Image.Image, session: ModelSession) -> Image.Image:
    """Return ours x4 of a photo, computed once per photo for all the x2 methods built on it."""
    key = small.tobytes()
    if key not in _X4_CACHE:
        _X4_CACHE.clear()
        _X4_CACHE[key] = upscale.upscale(small, session, scale=4)
    return _X4_CACHE[key]


def ours_x4_then(filter_: int):
    """Return a method: ours x4 of the whole photo, resized down to x2 with the given filter."""
    def run(small: Image.Image, session: ModelSession) -> Image.Image:
        return ours_x4(small, session).resize((small.width * 2, small.height * 2), filter_)
    return run


QUALITY_METHODS = {
    "bicubic": lambda small, session: small.resize((small.width * 4, small.height * 4), Image.BICUBIC),
    "Lanczos": lambda small, session: small.resize((small.width * 4, small.height * 4), Image.LANCZOS),
    "ours (Real-ESRGAN x4plus)": lambda small, session: upscale.upscale(small, session, scale=4),
}
# upscale(scale=2) gives exactly "x4, Lanczos down" (tests/ml/test_upscale.py); here it is computed from one x4 pass.
X2_METHODS = {
    "bicubic": lambda small, session: small.resize((small.width * 2, small.height * 2), Image.BICUBIC),
    "Lanczos": lambda small, session: small.resize((small.width * 2, small.height * 2), Image.LANCZOS),
    "ours x4, Lanczos down (ours x2)": ours_x4_then(Image.LANCZOS),
    "ours x4, bicubic down": ours_x4_then(Image.BICUBIC),
    "ours x4, box down": ours_x4_then(Image.BOX),
}


def network_alpha(alpha: Image.Image, session: ModelSession) -> Image.Image:
    """Upscale an alpha channel through the network as a grey image (the costly way)."""
    grey = upscale.upscale(alpha.convert("RGB"), session, scale=4)
    return grey.convert("L")


def alpha_rows(session: ModelSession) -> list[Row]:
    """Shrink masks 4x, bring them back with each way, score PSNR and stray alpha far from the edges."""
    ways = {"bicubic (ours)": lambda alpha, session: upscale.upscale_alpha(alpha, (alpha.width * 4, alpha.height * 4)),
            "Lanczos": lambda alpha, session: alpha.resize((alpha.width * 4, alpha.height * 4), Image.LANCZOS),
            "network as grey": network_alpha}
    scores: dict[str, list[tuple[float, float]]] = {way: [] for way in ways}
    for name in ALPHA_MASKS:
        mask = Image.open(FIXTURES / "u2netp_reference" / name).convert("L")
        mask = mask.point(lambda value: 0 if value < 8 else 255 if value > 247 else value)
        mask = mask.crop((0, 0, mask.width // 16 * 16, mask.height // 16 * 16))
        small = mask.resize((mask.width // 4, mask.height // 4), Image.BICUBIC)
        far_out = np.kron(np.asarray(small.filter(ImageFilter.MaxFilter(5))) == 0, np.ones((4, 4), bool))
        far_in = np.kron(np.asarray(small.filter(ImageFilter.MinFilter(5))) == 255, np.ones((4, 4), bool))
        for way, run in ways.items():
            result = np.asarray(run(small, session))
            stray = (result[far_out] != 0).sum() + (result[far_in] != 255).sum()
            scores[way].append((psnr(result, np.asarray(mask)), float(stray / (far_out.sum() + far_in.sum()))))
    return [("alpha", f"{len(ALPHA_MASKS)} masks shrunk 4x, back 4x", way,
             f"PSNR {np.mean([v[0] for v in values]):.2f} dB, stray alpha far from edges "
             f"{100 * np.mean([v[1] for v in values]):.3f}% of pixels") for way, values in scores.items()]


def network_output(rgb: np.ndarray, session: ModelSession) -> np.ndarray:
    """Return the network's own float output (0-255 scale, clipped) for an 8-bit crop, as ncnn's is compared."""
    batch = torch.from_numpy(rgb.transpose(2, 0, 1).copy()).unsqueeze(0).float() / 255
    with session.inference():
        result = session.model(session.to_device(batch))[0].float().clamp(0, 1) * 255
    return result.permute(1, 2, 0).numpy().astype(np.float64)


def bfloat16_rows(model_dir: Path) -> list[Row]:
    """Compare ours with bfloat16 autocast and in float32 against ncnn on a small tile, before rounding."""
    rgb = np.asarray(Image.open(FIXTURES / "photos" / "horse.jpg").convert("RGB").crop((300, 200, 364, 248)))
    theirs = np.clip(NcnnUpscaler(model_dir, torch.get_num_threads()).run(rgb.astype(np.float32) / 255), 0, 1) * 255
    rows = []
    for label, bfloat16 in (("float32", False), ("bfloat16 autocast", True)):
        difference = np.abs(network_output(rgb, load_session(model_dir, bfloat16)) - theirs)
        rows.append(("bfloat16", "64x48 tile vs ncnn, before rounding (bound: 2/255 max, 0.5/255 mean)", label,
                     f"max {difference.max():.4f}/255, mean {difference.mean():.4f}/255"))
    return rows


def print_rows(rows: list[Row]) -> None:
    """Print rows of the one table as soon as they are measured (a long run shows its progress)."""
    for row in rows:
        print("| " + " | ".join(row) + " |", flush=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model-dir", type=Path)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--skip", default="", help="comma-separated sections to leave out")
    parser.add_argument("--memory-child", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.model_dir is None:
        from studio.settings import from_environment

        arguments.model_dir = Path(from_environment()["STUDIO_MODEL_DIR"])
    threads_list = [int(value) for value in arguments.threads.split(",")]
    if arguments.memory_child:
        memory_child(arguments.model_dir, threads_list[-1])
        return 0
    skip = set(arguments.skip.split(","))
    session = load_session(arguments.model_dir)
    print("| what | case | method | result |\n| --- | --- | --- | --- |", flush=True)
    if "speed" not in skip:
        print_rows(speed_rows(session, arguments.model_dir, threads_list, arguments.rounds))
    torch.set_num_threads(max(threads_list))
    sections = {"memory": lambda: memory_rows(arguments.model_dir, max(threads_list)),
                "quality": lambda: round_trip_rows("quality", session, QUALITY_PHOTOS, 4, QUALITY_METHODS),
                "x2": lambda: round_trip_rows("x2", session, X2_PHOTOS, 2, X2_METHODS),
                "alpha": lambda: alpha_rows(session),
                "bf16": lambda: bfloat16_rows(arguments.model_dir)}
    for name, section in sections.items():
        if name not in skip:
            print_rows(section())
    return 0


if __name__ == "__main__":
    sys.exit(main())
