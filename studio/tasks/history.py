"""The history's rules, for the pages and the API: filters, missing thumbnails, and what is done to several tasks
at once (delete, re-run with options chosen once, download as one ZIP streamed as it is written)."""

from __future__ import annotations

import logging
import zipfile
from contextlib import closing
from pathlib import PurePosixPath
from typing import Any, Iterator, Mapping

from ml.operations import OPERATIONS
from studio.models import Task, TaskStatus, User
from studio.storage import ObjectNotFound, Storage
from studio.tasks import service
from studio.tasks.files import download_filename
from studio.tasks.representation import output_records
from studio.tasks.service import UploadRejected

logger = logging.getLogger(__name__)

STATUSES = tuple(status.value for status in TaskStatus)
# Read from storage and written to the archive this much at a time: the ZIP never holds a whole photo.
CHUNK_BYTES = 256 * 1024


def status_named(value: str | None) -> str | None:
    """Return the status a filter names (any case), None for none; ValueError for an unknown one."""
    if not value:
        return None
    if value.upper() not in STATUSES:
        raise ValueError(f"status must be one of {', '.join(STATUSES)}.")
    return value.upper()


def operation_named(value: str | None) -> str | None:
    """Return the operation a filter names, None for none; ValueError for one this server does not offer."""
    if not value:
        return None
    if value not in OPERATIONS:
        raise ValueError(f"operation must be one of {', '.join(OPERATIONS)}.")
    return value


def page_filters(arguments: Mapping[str, str]) -> dict[str, str | None]:
    """Return the history page's filters from its query; an unknown value shows everything (a stale link)."""
    filters: dict[str, str | None] = {}
    for name, parse in (("status", status_named), ("operation", operation_named)):
        try:
            filters[name] = parse(arguments.get(name))
        except ValueError:
            filters[name] = None
    return filters


def delete_tasks(tasks: list[Task]) -> int:
    """Delete the tasks and their files; return how many went."""
    for task in tasks:
        service.delete_task(task)
    return len(tasks)


def rerun_tasks(tasks: list[Task], submitted: Mapping[str, Any]) -> tuple[list[Task], list[str]]:
    """Process each task's photo again with the same operation and options, as new tasks; return the new tasks
    and a sentence for each photo that was refused (naming it once)."""
    created, errors = [], []
    for task in tasks:
        try:
            created.append(service.rerun_task(task, submitted))
        except UploadRejected as error:
            errors.append(f"{task.original_filename or 'A photo'}: {error.message}")
    return created, errors


def archive_entries(tasks: list[Task]) -> list[tuple[str, str]]:
    """Return (name in the archive, storage key) of each completed task's result; the same file name twice
    becomes "bike.png" and "bike (2).png"."""
    entries, taken = [], set()
    for task in tasks:
        record = output_records(task).get("result")
        if record is None:
            continue
        suffix = PurePosixPath(record["key"]).suffix
        name, number = download_filename(task, suffix), 1
        while name.lower() in taken:
            number += 1
            name = download_filename(task, f" ({number}){suffix}")
        taken.add(name.lower())
        entries.append((name, record["key"]))
    return entries


class _Pipe:
    """A write-only file that keeps what was written until it is taken: zipfile writes the archive into it, the
    response sends it on. zipfile finds no tell() or seek() and writes a streamable archive (data descriptors)."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def write(self, data: bytes) -> int:
        self.buffer += data
        return len(data)

    def flush(self) -> None:
        """Nothing to flush: what was written waits in the buffer to be taken."""

    def take(self) -> bytes:
        """Return what was written since the last call, and forget it."""
        data, self.buffer = bytes(self.buffer), bytearray()
        return data


def stream_zip(storage: Storage, entries: list[tuple[str, str]]) -> Iterator[bytes]:
    """Yield a ZIP archive of the stored objects as it is written, a chunk at a time (photos are stored as is:
    they are compressed already). An object gone meanwhile is left out."""
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_STORED) as archive:
        for name, key in entries:
            try:
                source = storage.open(key)
            except ObjectNotFound:
                logger.info("archive: %s is no longer stored; left out", key)
                continue
            with closing(source), archive.open(name, "w", force_zip64=True) as member:
                for chunk in iter(lambda: source.read(CHUNK_BYTES), b""):
                    member.write(chunk)
                    yield from _written(pipe)
            yield from _written(pipe)
    yield from _written(pipe)


def _written(pipe: _Pipe) -> Iterator[bytes]:
    data = pipe.take()
    if data:
        yield data


def selected(user: User, task_ids: list[str]) -> list[Task]:
    """Return the account's tasks among the ids a form sent (others' and unknown ids are left out)."""
    return service.tasks_by_id(user, task_ids)
