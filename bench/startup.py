"""One photo from a cold start, ours against rembg 2.0.86: each command line run as a user runs it, side by side.

Each round starts every side once as a fresh process, in turn, so machine noise hits all alike: our documented
entry point (`python -m studio remove-bg`), the same command through `flask --app wsgi studio`, which builds the
web app first, and `rembg i`. A side's figure is its median round, wall clock, with the CPU seconds its process
used beside it; the ratio is rembg's median over the side's (above 1: faster than rembg). All cut out the same photo
with the same model (U2NetP, ours by default; rembg's own default is U2Net: --model u2net compares that), after one
untimed run each that fills the file cache.

    .venv/bin/python bench/startup.py [--photo PATH] [--model u2netp] [--rounds 7]

rembg runs from bench/.rembg-venv (bench/throughput.py creates it; its command line's extras are added here on
first use), with our verified ONNX files as its models (U2NET_HOME), so it downloads nothing.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.throughput import DEFAULT_FIXTURES, REMBG_REQUIREMENTS, rembg_home, rembg_python  # noqa: E402

REMBG_CLI = REMBG_REQUIREMENTS[0].replace("rembg==", "rembg[cli]==")
FIXTURES = Path(os.environ.get("STUDIO_FIXTURES_DIR") or DEFAULT_FIXTURES)


@dataclass
class Side:
    """One command line and the rounds it ran: wall and CPU seconds."""

    label: str
    command: list[str]
    environment: dict[str, str]
    wall: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)

    def run(self) -> tuple[float, float]:
        """Run the command once; return its wall and CPU seconds (user and system, the process and its children)."""
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        result = subprocess.run(self.command, env=self.environment, cwd=ROOT, capture_output=True, text=True)
        wall = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        if result.returncode != 0:
            raise RuntimeError(f"{self.label} failed ({result.returncode}): {result.stderr[-2000:]}")
        return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def rembg_cli_python() -> Path:
    """Return the python of rembg's virtual environment, with its command line's extras installed."""
    python = rembg_python()
    if subprocess.run([str(python), "-c", "import rembg.commands"], capture_output=True).returncode != 0:
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", REMBG_CLI], check=True)
    return python


def sides(photo: Path, model: str, model_dir: Path, work: Path) -> list[Side]:
    """Return our documented entry point, our flask command and rembg's, each writing its own cutout."""
    ours = {**os.environ, "STUDIO_MODEL_DIR": str(model_dir), "STUDIO_DEFAULT_MODEL": model}
    rembg = {**os.environ, "U2NET_HOME": str(rembg_home(model_dir, work))}
    rembg_command = str(rembg_cli_python().parent / "rembg")
    return [
        Side("ours: python -m studio remove-bg",
             [sys.executable, "-m", "studio", "remove-bg", "--out", str(work / "ours.png"), str(photo)], ours),
        Side("ours: flask --app wsgi studio remove-bg",
             [sys.executable, "-m", "flask", "--app", "wsgi", "studio", "remove-bg", "--out",
              str(work / "flask.png"), str(photo)], ours),
        Side("rembg 2.0.86: rembg i", [rembg_command, "i", "-m", model, str(photo), str(work / "rembg.png")], rembg),
    ]


def table(measured: list[Side]) -> list[str]:
    """Return each side's median wall and CPU seconds, its ratio to rembg, and its rounds."""
    rembg = statistics.median(measured[-1].wall)
    lines = ["| command (one photo, a fresh process) | median s | CPU s | rembg's median / this | rounds (s) |",
             "|---|---|---|---|---|"]
    for side in measured:
        median = statistics.median(side.wall)
        rounds = ", ".join(f"{seconds:.2f}" for seconds in side.wall)
        lines.append(f"| {side.label} | {median:.2f} | {statistics.median(side.cpu):.2f} | {rembg / median:.2f} "
                     f"| {rounds} |")
    return lines


def main() -> int:
    """Run the benchmark and print its table (Markdown)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photo", type=Path, default=FIXTURES / "photos" / "boat.jpg")
    parser.add_argument("--model", default="u2netp", choices=("u2netp", "u2net"))
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--model-dir", type=Path, help="default: the app's STUDIO_MODEL_DIR")
    arguments = parser.parse_args()
    if arguments.model_dir is None:
        from studio.settings import from_environment

        arguments.model_dir = Path(from_environment()["STUDIO_MODEL_DIR"])
    work = Path(tempfile.mkdtemp(prefix="studio-bench-"))
    try:
        measured = sides(arguments.photo.resolve(), arguments.model, arguments.model_dir.resolve(), work)
        for side in measured:
            side.run()  # untimed: the file cache, and rembg's first compilations
        for _ in range(arguments.rounds):
            for side in measured:
                wall, cpu = side.run()
                side.wall.append(wall)
                side.cpu.append(cpu)
        print(f"{arguments.photo.name}, {arguments.model}, {arguments.rounds} alternating rounds, "
              f"{os.cpu_count()} cores\n")
        print("\n".join(table(measured)))
    finally:
        shutil.rmtree(work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
