"""What a process imports and loads at start: only what the operation it runs needs.

Each check runs in a fresh interpreter and reads its sys.modules and session cache, so a module imported too
early, anywhere on the path, fails it.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from pydantic import Field

from ml.batch import process_files
from ml.operations import DECLARATIONS, OPERATIONS, Limits, Operation, Options, Output
from ml.operations.base import Result
from tests.support.services import MODEL_DIR

ROOT = Path(__file__).resolve().parents[2]
# Runs `python -m studio ARGUMENTS` (its __main__, as a user runs it), then prints what the process holds.
ENTRY_POINT = """
import json, runpy, sys
sys.argv = ["studio", *json.loads(sys.argv[1])]
code = None
try:
    runpy.run_module("studio", run_name="__main__", alter_sys=True)
except SystemExit as end:
    code = end.code
sessions = sys.modules.get("ml.sessions")
print(json.dumps({"exit": code or 0, "modules": sorted(sys.modules),
                  "models": sessions.cache.names() if sessions else []}))
"""
WEB_APP = ("flask", "sqlalchemy", "studio.extensions", "studio.auth", "studio.tasks.views")


def run_entry_point(*arguments: str, model_dir: Path = MODEL_DIR) -> dict:
    """Run the CLI's entry point in a fresh interpreter; return its exit code, modules and loaded models."""
    environment = {**os.environ, "STUDIO_MODEL_DIR": str(model_dir), "STUDIO_LOG_LEVEL": "error"}
    result = subprocess.run([sys.executable, "-c", ENTRY_POINT, json.dumps(arguments)], cwd=ROOT, env=environment,
                            capture_output=True, text=True, check=True)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    report["stdout"], report["stderr"] = result.stdout, result.stderr
    return report


def modules_of_other_operations(name: str) -> set[str]:
    """Return the declaration and run modules of every operation but this one (minus those it shares)."""
    def modules(operation: str) -> set[str]:
        return {DECLARATIONS[operation].partition(":")[0], OPERATIONS[operation].run.partition(":")[0]}

    others = set().union(*(modules(other) for other in DECLARATIONS if other != name))
    return others - modules(name)


@pytest.mark.slow
def test_one_photo_through_the_cli_imports_and_loads_only_what_its_operation_needs(
        model_dir, photos_dir, tmp_path):
    target = tmp_path / "boat.png"
    report = run_entry_point("remove-bg", "--out", str(target), str(photos_dir / "boat.jpg"), model_dir=model_dir)
    assert report["exit"] == 0, report["stderr"]
    assert Image.open(target).mode == "RGBA"
    assert report["models"] == ["u2netp"]
    loaded = set(report["modules"])
    assert sorted(loaded & modules_of_other_operations("remove_background")) == []
    assert [module for module in WEB_APP if module in loaded] == []


def test_an_operations_flags_import_its_declaration_alone_and_neither_torch_nor_the_web_app():
    report = run_entry_point("process", "--operation", "mask_stats", "--help")
    assert report["exit"] == 0 and "--threshold" in report["stdout"]
    loaded = set(report["modules"])
    declarations = {path.partition(":")[0] for path in DECLARATIONS.values()}
    assert loaded & declarations == {"ml.operations.mask_stats"}
    assert [module for module in ("torch", "ml.sessions", *WEB_APP) if module in loaded] == []


def test_the_entry_point_offers_every_command_and_imports_the_web_app_only_for_those_that_need_it():
    listing = run_entry_point("--help")
    assert listing["exit"] == 0
    for command in ("create-user", "install-models", "models", "operations", "process", "remove-bg"):
        assert command in listing["stdout"]
    create_user = run_entry_point("create-user", "--help")
    assert create_user["exit"] == 0 and "--password-stdin" in create_user["stdout"]
    assert "studio.auth" in create_user["modules"]


def test_importing_the_package_builds_nothing():
    code = "import sys, studio, studio.cli; print(json.dumps(sorted(sys.modules)))"
    output = subprocess.run([sys.executable, "-c", "import json; " + code], cwd=ROOT, capture_output=True, text=True,
                            check=True).stdout
    loaded = set(json.loads(output))
    assert [module for module in ("torch", "ml.sessions", *WEB_APP) if module in loaded] == []


class ProbeOptions(Options):
    """No options but a label."""

    label: str = Field("probe")


def probe(inputs, options, context) -> Result:
    """Return the photo's size."""
    return Result({"size": list(inputs.photo.size)})


PROBE = Operation(name="probe", title="Probe", description="Return each photo's size.", options=ProbeOptions,
                  run=f"{__name__}:probe", outputs=(Output("result", "json", "the size"),))


@pytest.mark.parametrize("count", [1, 3])
def test_fewer_photos_than_cores_share_the_cores_out(photos_dir, tmp_path, count, monkeypatch):
    monkeypatch.setattr(torch, "get_num_threads", lambda: 2)  # two cores, whatever this machine has
    threads: list[int] = []
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    sources = [photos_dir / "rifle2.jpeg"] * count
    targets = [tmp_path / f"{index}.json" for index in range(count)]
    results = list(process_files(PROBE, sources, targets, PROBE.parse({}), model_dir=MODEL_DIR,
                                 limits=Limits(10_000_000, 10_000_000)))
    assert [result.error for result in results] == [None] * count
    # One photo computes on both cores; three run one per core, each on one thread.
    assert threads[0] == (2 if count == 1 else 1)


def test_the_web_process_imports_neither_torch_nor_any_operations_run_code(tmp_path):
    code = "import json, sys, wsgi; print(json.dumps(sorted(sys.modules)))"  # what gunicorn imports (wsgi:app)
    environment = {**os.environ, "STUDIO_LOG_LEVEL": "error", "DATABASE_URL": f"sqlite:///{tmp_path / 'web.db'}"}
    output = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=environment, capture_output=True, text=True,
                            check=True).stdout
    loaded = set(json.loads(output.strip().splitlines()[-1]))
    runs = sorted({operation.run.partition(":")[0] for operation in OPERATIONS.values()})
    assert "studio.tasks.views" in loaded
    assert [module for module in ("torch", "ml.sessions", "ml.batch", *runs) if module in loaded] == []
