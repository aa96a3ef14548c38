"""What a user reads when processing failed for good: readable, and no internals (those go to the log)."""

from __future__ import annotations

import logging
import re

import pytest
from rq.exceptions import AbandonedJobError
from rq.timeouts import JobTimeoutException

from jobs import process_image as job_module
from tests.support.studio import run_worker

pytestmark = pytest.mark.integration

SECRET = "could not connect to postgresql://studio:hunter2@10.0.0.7/studio (/srv/studio/jobs/x.py)"


def test_an_unexpected_error_shows_a_reference_and_logs_the_details(make_studio, photo, monkeypatch, caplog):
    studio = make_studio(STUDIO_JOB_RETRIES=2)
    calls = []

    def broken_pipeline(*args, **kwargs):
        calls.append(1)
        raise RuntimeError(SECRET)

    monkeypatch.setattr(job_module, "process", broken_pipeline)
    task_id = studio.upload(photo)
    with caplog.at_level(logging.ERROR, logger="jobs.process_image"):
        run_worker(studio.app)

    task = studio.task(task_id)
    assert (task.status, task.attempts, len(calls)) == ("FAILED", 3, 3)
    match = re.fullmatch(r"Processing failed after 3 attempts; the error was logged as (error-[0-9a-f]{8})\.",
                         task.error)
    assert match, task.error
    assert "hunter2" not in task.error and "RuntimeError" not in task.error
    logged = [record for record in caplog.records if match.group(1) in record.getMessage()]
    assert len(logged) == 1
    assert task_id in logged[0].getMessage() and SECRET in logged[0].getMessage()
    assert logged[0].exc_info is not None  # the traceback is in the log


@pytest.mark.parametrize("attempts, exc_type, expected", [
    (1, None, "Processing failed after 1 attempt; the worker processing it stopped unexpectedly."),
    (2, JobTimeoutException, "Processing failed after 2 attempts; it took longer than 30 seconds."),
    (3, AbandonedJobError, "Processing failed after 3 attempts; the worker processing it stopped unexpectedly."),
    (2, job_module.WorkerKilledAgain, "Processing failed after 2 attempts; its worker was killed each time, most "
                                      "likely because the photo needed more memory than a worker has."),
])
def test_known_causes_are_explained_in_plain_words(attempts, exc_type, expected):
    assert job_module.failure_reason(attempts, 30, exc_type, "error-00000000") == expected
