"""One ZIP of a batch's results, streamed: written as it is sent, one chunk of one stored object at a time.

zipfile writes to a sink without seek (each entry then carries its sizes in a data descriptor after its bytes),
which the response drains after every chunk, so memory holds a chunk and never the archive or a whole result.
Entries are stored, not deflated: the results are compressed images already. Each result is named after its
original (horse.jpg -> horse.png, extras beside it as horse-preview.jpg; the same name twice becomes horse-2.png),
and manifest.json says which file came from which photo, which photos failed and why, and what the upload skipped.
"""

from __future__ import annotations

import json
import time
import zipfile
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Iterator

from werkzeug.utils import secure_filename
from werkzeug.wrappers import Response

from studio.models import Batch, Task, TaskStatus
from studio.storage import ObjectNotFound, Storage, content_disposition
from studio.tasks.uploads import UploadRejected

CHUNK_BYTES = 256 * 1024
MANIFEST = "manifest.json"
# Above this a result needs ZIP64 sizes (a little under 4 GiB, as zipfile reckons with 5% to spare).
ZIP64_ABOVE = int(zipfile.ZIP64_LIMIT / 1.05)


@dataclass(frozen=True)
class Entry:
    """One stored output to put in the archive under a name."""

    name: str
    key: str
    size: int
    task_id: str
    original: str
    output: str


class _Sink:
    """Where zipfile writes; the generator hands on and forgets what accumulated after each chunk."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def write(self, data: bytes) -> int:
        self._chunks.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: the generator drains the sink."""

    def drain(self) -> bytes:
        data = b"".join(self._chunks)
        self._chunks.clear()
        return data


def entries(tasks: list[Task]) -> list[Entry]:
    """Return every output of the completed tasks with its name in the archive, each name once."""
    taken = {MANIFEST}
    found = []
    for task in tasks:
        if task.status != TaskStatus.COMPLETED.value:
            continue
        stem = PurePosixPath(task.original_filename or "photo").stem or "photo"
        stem = _free_stem(stem, task, taken)
        for name, (output, record) in zip(_names(stem, task), (task.outputs or {}).items()):
            taken.add(name)
            found.append(Entry(name, record["key"], int(record["size"]), task.id, task.original_filename, output))
    return found


def _free_stem(stem: str, task: Task, taken: set[str]) -> str:
    """Return the stem, or stem-2, stem-3...: the first whose output names are all still free."""
    candidate, counter = stem, 2
    while any(name in taken for name in _names(candidate, task)):
        candidate, counter = f"{stem}-{counter}", counter + 1
    return candidate


def _names(stem: str, task: Task) -> list[str]:
    return [f"{stem}{PurePosixPath(record['key']).suffix}" if output == "result"
            else f"{stem}-{output}{PurePosixPath(record['key']).suffix}"
            for output, record in (task.outputs or {}).items()]


def manifest(batch: Batch, tasks: list[Task], files: list[Entry]) -> dict[str, Any]:
    """Return what manifest.json says: the files, the photos that failed (and why), what the upload skipped."""
    return {
        "batch": batch.id,
        "operation": batch.operation,
        "options": dict(batch.options or {}),
        "files": [{"name": entry.name, "original": entry.original, "task": entry.task_id, "output": entry.output}
                  for entry in files],
        "failed": [{"original": task.original_filename, "task": task.id, "status": task.status,
                    "reason": task.error or "Processing failed."}
                   for task in tasks if task.status != TaskStatus.COMPLETED.value],
        "skipped": list(batch.skipped or []),
    }


def stream(batch: Batch, tasks: list[Task], storage: Storage) -> Iterator[bytes]:
    """Return the archive's chunks: every result, then the manifest, then ZIP's directory.

    What the archive holds is read now, not as it streams: the response is sent after the request's database
    session has closed.
    """
    files = entries(tasks)
    return _chunks(manifest(batch, tasks, files), files, storage)


def _chunks(document: dict[str, Any], files: list[Entry], storage: Storage) -> Iterator[bytes]:
    sink = _Sink()
    with zipfile.ZipFile(sink, "w", compression=zipfile.ZIP_STORED) as archive:  # type: ignore[arg-type]
        for entry in files:
            try:
                source = storage.open(entry.key)
            except ObjectNotFound:
                _missing(document, entry)  # deleted since the list was made: said in the manifest
                continue
            info = zipfile.ZipInfo(entry.name, date_time=time.localtime()[:6])
            info.file_size = entry.size
            with source, archive.open(info, "w", force_zip64=entry.size > ZIP64_ABOVE) as target:
                while chunk := source.read(CHUNK_BYTES):
                    target.write(chunk)
                    yield sink.drain()
            yield sink.drain()
        archive.writestr(MANIFEST, json.dumps(document, indent=2, ensure_ascii=False) + "\n")
    yield sink.drain()


def _missing(document: dict[str, Any], entry: Entry) -> None:
    document["files"] = [item for item in document["files"] if item["name"] != entry.name]
    document["failed"].append({"original": entry.original, "task": entry.task_id, "status": "MISSING",
                               "reason": f"its {entry.output} is no longer stored"})


def download_name(batch: Batch) -> str:
    """Return the archive's file name: after the uploaded ZIP when there was one."""
    stem = secure_filename(PurePosixPath(batch.archive_name).stem) if batch.archive_name else ""
    return f"{stem or 'batch-' + batch.id[:8]}-results.zip"


def response(batch: Batch, tasks: list[Task], storage: Storage) -> Response:
    """Answer with the archive, streamed; refuse (409) while a task of the batch is still waiting or running."""
    if any(not task.task_status.finished for task in tasks):
        unfinished = sum(1 for task in tasks if not task.task_status.finished)
        raise UploadRejected(409, "batch_unfinished", f"{unfinished:,} of the batch's {len(tasks):,} photos are "
                             "still waiting or processing; download the archive once they are finished.")
    # X-Accel-Buffering: nginx passes the chunks on as they come instead of gathering the archive on its disk.
    return Response(stream(batch, tasks, storage), mimetype="application/zip", direct_passthrough=True,
                    headers={"Content-Disposition": content_disposition(download_name(batch), download=True),
                             "X-Accel-Buffering": "no", "Cache-Control": "private, no-store"})
