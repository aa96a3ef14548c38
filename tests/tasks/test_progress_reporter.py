"""A job's progress reports on the task's row: the first at once, the rest at most every interval, the newest never
lost (jobs/progress.py), without a database: the writes are recorded instead."""

from __future__ import annotations

import contextlib
import threading

import pytest

from jobs import progress as progress_module
from jobs.progress import ProgressReporter, TaskStopped

# Long enough that a test's own steps come well inside it: a report after the first is always held back.
LONG_INTERVAL = 30.0
WAIT_SECONDS = 10.0


class FakeEngine:
    """Quacks like an Engine for the reporter's thread: begin() gives a connection-like marker."""

    @contextlib.contextmanager
    def begin(self):
        yield "thread-connection"


class Writes:
    """Records what lifecycle.progressed would write, and from where; answers `moved` (False: task stopped)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, str | None, str]] = []
        self.moved = True
        self.written = threading.Event()

    def __call__(self, task_id: str, percent: int, stage: str | None = None, *, connection=None) -> bool:
        self.rows.append((percent, stage, "thread" if connection else "job"))
        self.written.set()
        return self.moved


@pytest.fixture
def writes(monkeypatch) -> Writes:
    recorder = Writes()
    monkeypatch.setattr(progress_module.lifecycle, "progressed", recorder)
    return recorder


def test_the_first_report_of_a_job_is_written_at_once(writes):
    with ProgressReporter(FakeEngine(), "t1", interval_seconds=LONG_INTERVAL) as report:
        report(0, "cleaning the photo")
        assert writes.rows == [(0, "cleaning the photo", "job")]


def test_a_report_held_back_by_the_interval_is_written_without_another_report(writes):
    with ProgressReporter(FakeEngine(), "t1", interval_seconds=0.2) as report:
        report(5, "photo decoded")
        writes.written.clear()
        report(10, "tile 1 of 1")  # too soon: held back, then minutes of silence (one tile)
        assert writes.rows == [(5, "photo decoded", "job")]
        assert writes.written.wait(WAIT_SECONDS)
    assert writes.rows == [(5, "photo decoded", "job"), (10, "tile 1 of 1", "thread")]


def test_only_the_newest_held_back_report_is_written_and_small_steps_are_skipped(writes):
    with ProgressReporter(FakeEngine(), "t1", interval_seconds=0.2) as report:
        report(0, "reading the photo")
        writes.written.clear()
        report(10, "tile 1 of 4")
        report(12, "tile 1 of 4")  # less than a step on, at the same stage: nothing to say
        report(35, "tile 2 of 4")
        assert writes.written.wait(WAIT_SECONDS)
    assert writes.rows == [(0, "reading the photo", "job"), (35, "tile 2 of 4", "thread")]


def test_reports_after_the_interval_are_written_by_the_job_itself(writes):
    with ProgressReporter(FakeEngine(), "t1", interval_seconds=0.0) as report:
        report(0, "cleaning the photo")
        report(50, "halfway")
    assert writes.rows == [(0, "cleaning the photo", "job"), (50, "halfway", "job")]


def test_a_cancelled_task_stops_the_job_at_its_next_report(writes):
    writes.moved = False
    with ProgressReporter(FakeEngine(), "t1", interval_seconds=LONG_INTERVAL) as report:
        with pytest.raises(TaskStopped):
            report(0, "cleaning the photo")
        with pytest.raises(TaskStopped):
            report(40, "later")
    assert writes.rows == [(0, "cleaning the photo", "job")]


def test_a_cancel_found_by_the_thread_stops_the_job_at_its_next_report(writes):
    with ProgressReporter(FakeEngine(), "t1", interval_seconds=0.2) as report:
        report(0, "cleaning the photo")
        writes.moved, writes.written = False, threading.Event()
        report(10, "tile 1 of 1")
        assert writes.written.wait(WAIT_SECONDS)
        with pytest.raises(TaskStopped):
            report(90, "encoding")


def test_nothing_is_written_after_the_block_ends(writes):
    with ProgressReporter(FakeEngine(), "t1", interval_seconds=LONG_INTERVAL) as report:
        report(0, "cleaning the photo")
        report(95, "encoding")  # held back; the job then finishes, and the lifecycle writes its outcome
    assert writes.rows == [(0, "cleaning the photo", "job")]
