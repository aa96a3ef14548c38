"""Weights checked once per file: a record of each verified weights file, so a later load skips the hashing.

Hashing a state dict's tensors takes as long as loading them (176 MB for U²-Net), on every start of every process.
A file that passed its checksum is recorded under the user's cache folder with what identifies that very file on
disk: its device, inode, size, modification and change times. The change time (ctime) cannot be set back by a
program, so any write to the file, a rename over it or a copy in its place makes the record stale and the next load
hashes again. The check guards against damaged, truncated or wrong files; whoever can write this user's cache
folder can already run code as the service, so the record is trusted as the process itself is.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

FOLDER = Path("photo-studio") / "verified-weights"


def records_dir() -> Path | None:
    """Return the records' folder in $XDG_CACHE_HOME or ~/.cache; None without a home (every load then hashes)."""
    base = os.environ.get("XDG_CACHE_HOME")
    if not base:
        try:
            base = Path.home() / ".cache"
        except (RuntimeError, KeyError):
            return None
    return Path(base) / FOLDER


def _record_path(path: Path) -> Path | None:
    folder = records_dir()
    name = hashlib.sha256(str(Path(path).resolve()).encode()).hexdigest()
    return None if folder is None else folder / f"{name}.json"


def file_identity(path: Path) -> list[int]:
    """Return what tells this file from any other or a changed one: device, inode, size, mtime and ctime."""
    status = Path(path).stat()
    return [status.st_dev, status.st_ino, status.st_size, status.st_mtime_ns, status.st_ctime_ns]


def _record(path: Path, checksum: str, identity: list[int]) -> dict:
    return {"path": str(Path(path).resolve()), "file": identity, "checksum": checksum}


def already_verified(path: Path, checksum: str, identity: list[int]) -> bool:
    """Return True when the file, with this identity, was verified against this checksum."""
    record_path = _record_path(path)
    if record_path is None:
        return False
    try:
        return json.loads(record_path.read_text()) == _record(path, checksum, identity)
    except (OSError, ValueError):
        return False


def remember_verified(path: Path, checksum: str, identity: list[int]) -> None:
    """Record that the file, as it was when read (its identity then), passed its checksum.

    A cache folder that cannot be written (a read-only home in a container) only costs the next load its hash.
    """
    record_path = _record_path(path)
    if record_path is None:
        return
    try:
        record_path.parent.mkdir(parents=True, exist_ok=True)
        partial = record_path.with_name(f"{record_path.name}.{os.getpid()}.partial")
        partial.write_text(json.dumps(_record(path, checksum, identity)))
        os.replace(partial, record_path)
    except OSError as error:
        logger.debug("cannot record verified weights %s: %s", path, error)
