"""What an uploaded ZIP of photos must be: hostile until proven otherwise.

The archive is judged from its end record and central directory before any entry is read: how many entries, how
many bytes they say they hold in all, how much each says it expands, where its name points and whether it is a
link. Nothing is extracted to disk. Each entry is then read with a bound: never more bytes than its header
declared (nor than a photo may have), so a header that lies about its size is caught by the bound, not by memory.
Entries that are not photos are listed as skipped, not fatal; a structure that only an attack makes (a bomb, a
path out of the archive, a link, a lying header) refuses the whole archive. Nothing here needs the app.
"""

from __future__ import annotations

import re
import stat
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, BinaryIO, Mapping

from studio.tasks.uploads import UploadRejected

FIELD = "archive"
CHUNK_BYTES = 64 * 1024
# A central directory record is 46 bytes plus the name, extra field and comment; an archive of photos needs far
# less than this per entry, and the bound keeps zipfile from building millions of records from a small upload.
MAX_DIRECTORY_BYTES_PER_ENTRY = 1024
# Only these compress nothing or with zlib, whose output the reads bound; bzip2 and LZMA are refused as unusual.
COMPRESSION_METHODS = {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}
ARCHIVE_SUFFIXES = {".zip", ".rar", ".7z", ".tar", ".gz", ".tgz", ".bz2", ".xz", ".zst", ".jar", ".cbz", ".cbr"}
# The first bytes of archives and compressed files, so a nested archive under a photo's name is caught too.
ARCHIVE_MAGIC = (b"PK\x03\x04", b"PK\x05\x06", b"\x1f\x8b", b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07", b"BZh",
                 b"\xfd7zXZ\x00", b"\x28\xb5\x2f\xfd")
# Small entries may compress well (a text file of spaces) without being a threat: their sizes count in the total.
RATIO_FLOOR_BYTES = 64 * 1024
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may hold: entries, bytes once expanded (declared and read), expansion per entry, and the
    largest photo."""

    max_entries: int
    max_total_bytes: int
    max_ratio: int
    max_photo_bytes: int


def limits_from_config(config: Mapping[str, Any]) -> ArchiveLimits:
    """Return what an archive may hold, from the settings (studio/settings.py)."""
    return ArchiveLimits(max_entries=config["STUDIO_BATCH_MAX_ENTRIES"],
                         max_total_bytes=config["STUDIO_BATCH_MAX_UNCOMPRESSED_BYTES"],
                         max_ratio=config["STUDIO_BATCH_MAX_COMPRESSION_RATIO"],
                         max_photo_bytes=config.get("MAX_CONTENT_LENGTH")
                         or config["STUDIO_BATCH_MAX_UNCOMPRESSED_BYTES"])


@dataclass(frozen=True)
class Skipped:
    """An entry or file of an upload that is not made a task, and why."""

    name: str
    reason: str

    def to_dict(self) -> dict[str, str]:
        """Return it as stored on the batch and shown by the API."""
        return {"name": self.name, "reason": self.reason}


class ArchiveRefused(UploadRejected):
    """The whole archive is refused: its structure is one only an attack (or damage) makes."""


def _refused(message: str, code: str = "unsafe_archive", status: int = 400) -> ArchiveRefused:
    return ArchiveRefused(status, code, f"{FIELD}: {message}")


class PhotoArchive:
    """An uploaded ZIP whose structure passed the checks: its candidate photo entries and what was skipped."""

    def __init__(self, stream: BinaryIO, limits: ArchiveLimits) -> None:
        """Open the archive from a seekable stream and check its whole structure; raise UploadRejected."""
        self.limits = limits
        _check_end_record(stream, limits)
        try:
            self._zip = zipfile.ZipFile(stream)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError):
            raise _refused("the file is not a readable ZIP archive.", "invalid_archive") from None
        infos = self._zip.infolist()
        if len(infos) > limits.max_entries:
            raise _refused(f"the archive holds {len(infos):,} entries; at most {limits.max_entries:,} are "
                           "allowed.", "too_many_entries", 413)
        for info in infos:
            _check_structure(info, limits)
        declared = sum(info.file_size for info in infos)
        if declared > limits.max_total_bytes:
            raise _refused(f"the archive expands to {declared:,} bytes; at most {limits.max_total_bytes:,} are "
                           "allowed.", "archive_too_large", 413)
        self.entries: list[zipfile.ZipInfo] = []
        self.skipped: list[Skipped] = []
        for info in infos:
            if info.is_dir():
                continue
            reason = _entry_refusal(info, limits)
            if reason:
                self.skipped.append(Skipped(info.filename, reason))
            else:
                self.entries.append(info)

    def read(self, info: zipfile.ZipInfo) -> bytes:
        """Return an entry's bytes, never reading past what its header declared; refuse a damaged or lying one."""
        limit = info.file_size
        chunks, size = [], 0
        try:
            with self._zip.open(info) as entry:
                while size <= limit:
                    chunk = entry.read(min(CHUNK_BYTES, limit + 1 - size))
                    if not chunk:
                        break
                    chunks.append(chunk)
                    size += len(chunk)
        except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError, NotImplementedError):
            # zipfile stops at the declared size and then checks the CRC: a header that hides a larger entry
            # ends here, with only the declared bytes ever expanded.
            raise _refused(f"{_label(info.filename)} is damaged, or holds other bytes than its header declares.",
                           "damaged_archive") from None
        if size != limit:
            raise _refused(f"{_label(info.filename)} holds other bytes than its header declares.", "damaged_archive")
        return b"".join(chunks)


def looks_like_archive(data: bytes) -> bool:
    """Return True when bytes begin as an archive or a compressed file does."""
    return data.startswith(ARCHIVE_MAGIC)


def _label(name: str) -> str:
    return repr(name[:80])


def _check_end_record(stream: BinaryIO, limits: ArchiveLimits) -> None:
    """Refuse an archive whose end record announces more entries or a larger directory than allowed, before
    zipfile reads the directory into memory."""
    try:
        # zipfile's own end-record reader (private, unchanged since Python 2.7): it knows ZIP64 and comments.
        end = zipfile._EndRecData(stream)  # type: ignore[attr-defined]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile):
        end = None
    if not end:
        raise _refused("the file is not a readable ZIP archive.", "invalid_archive")
    entries, directory_size = end[zipfile._ECD_ENTRIES_TOTAL], end[zipfile._ECD_SIZE]  # type: ignore[attr-defined]
    if entries > limits.max_entries:
        raise _refused(f"the archive holds {entries:,} entries; at most {limits.max_entries:,} are allowed.",
                       "too_many_entries", 413)
    if directory_size > max(limits.max_entries, 1) * MAX_DIRECTORY_BYTES_PER_ENTRY:
        raise _refused("the archive's directory is larger than its entries can need.", "too_many_entries", 413)
    stream.seek(0)


def _check_structure(info: zipfile.ZipInfo, limits: ArchiveLimits) -> None:
    """Refuse the whole archive for an entry only an attack makes: a path out of it, a link, a bomb."""
    name = info.filename
    path = name.replace("\\", "/")
    if path.startswith("/") or _DRIVE.match(path) or ".." in path.split("/") or "\x00" in name:
        raise _refused(f"{_label(name)} points outside the archive.")
    if stat.S_ISLNK(info.external_attr >> 16):
        raise _refused(f"{_label(name)} is a symbolic link; links are not allowed.")
    if info.file_size > RATIO_FLOOR_BYTES and info.file_size > max(info.compress_size, 1) * limits.max_ratio:
        raise _refused(f"{_label(name)} expands {info.file_size:,} bytes from {info.compress_size:,}, more than "
                       f"{limits.max_ratio} times: a photo does not compress like that.", "archive_bomb")


def _entry_refusal(info: zipfile.ZipInfo, limits: ArchiveLimits) -> str | None:
    """Return why an entry cannot be a photo of the batch (it is listed, not fatal), or None."""
    if info.flag_bits & 0x1:
        return "encrypted entries are refused"
    if PurePosixPath(info.filename.replace("\\", "/")).suffix.lower() in ARCHIVE_SUFFIXES:
        return "nested archives are refused"
    if info.compress_type not in COMPRESSION_METHODS:
        return "compressed with a method other than deflate; save the archive again as an ordinary ZIP"
    if info.file_size > limits.max_photo_bytes:
        return f"larger than the limit of {limits.max_photo_bytes:,} bytes for a photo"
    if info.file_size == 0:
        return "the file is empty"
    return None
