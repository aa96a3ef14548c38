"""ZIPs on the command line: photos read from a ZIP given as an input, results written to a ZIP given as --out.

An input ZIP passes the same checks as an upload (studio/batches/zip_upload.py: entries, total, ratio, paths,
links; bounded reads) before its photos are written, under their own base names, into a temporary folder of the
command's; nothing is extracted where the archive's paths point. Needs no app and no torch.
"""

from __future__ import annotations

import os
import zipfile
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from tempfile import TemporaryDirectory
from typing import Iterable, Iterator

from studio.batches.zip_upload import ArchiveLimits, PhotoArchive, Skipped

STORED_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp"}


@contextmanager
def unzipped(paths: list[Path], limits: ArchiveLimits, photo_suffixes: Iterable[str]) -> \
        Iterator[tuple[list[Path], list[Skipped]]]:
    """Yield the inputs with each ZIP replaced by its photos (in a temporary folder, deleted after), and the
    entries skipped; raise UploadRejected for a hostile or damaged archive."""
    suffixes = set(photo_suffixes)
    with TemporaryDirectory(prefix="studio-zip-") as folder:
        inputs: list[Path] = []
        skipped: list[Skipped] = []
        for path in paths:
            if path.suffix.lower() != ".zip" or path.is_dir():
                inputs.append(path)
                continue
            with path.open("rb") as stream:
                archive = PhotoArchive(stream, limits)
                skipped += [Skipped(f"{path.name}:{item.name}", item.reason) for item in archive.skipped]
                for info in archive.entries:
                    name = PurePosixPath(info.filename.replace("\\", "/")).name
                    if PurePosixPath(name).suffix.lower() not in suffixes:
                        skipped.append(Skipped(f"{path.name}:{info.filename}", "not a photo, by its name"))
                        continue
                    # A folder per entry: photos of the same name in different folders keep their names.
                    target = Path(folder) / f"{len(inputs):05d}" / name
                    target.parent.mkdir()
                    target.write_bytes(archive.read(info))
                    inputs.append(target)
        yield inputs, skipped


def write_zip(out: Path, folder: Path, files: Iterable[Path]) -> None:
    """Write the files (under folder) into the ZIP out, named as in folder; replace out only once complete."""
    partial = out.with_name(out.name + ".partial")
    out.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(partial, "w") as archive:
        for path in files:
            # Images are compressed already; JSON is not.
            method = zipfile.ZIP_STORED if path.suffix.lower() in STORED_SUFFIXES else zipfile.ZIP_DEFLATED
            archive.write(path, path.relative_to(folder).as_posix(), compress_type=method)
    os.replace(partial, out)
