"""Slow work does not hold up quick work with real workers: an account's cutout starts while its upscales wait or run.
(Which operations are slow, and the queues and slots of each class: tests/workers/test_cost_classes.py.)"""

from __future__ import annotations

import pytest
from PIL import Image

from tests.support.images import encoded

pytestmark = pytest.mark.integration

# Small enough for Real-ESRGAN to take seconds on one thread, not minutes.
UPSCALE_SIZE = (64, 40)


def _small_photo() -> bytes:
    return encoded(Image.new("RGB", UPSCALE_SIZE, (120, 90, 60)), "JPEG")


def test_one_worker_takes_the_accounts_cutout_before_the_upscales_sent_before_it(make_studio, photo):
    # All three wait before the worker starts: with one queue it would take them in upload order.
    studio = make_studio(STUDIO_ACCOUNT_CONCURRENCY=2)
    upscales = [studio.upload(_small_photo(), filename=f"up-{number}.jpeg", operation="upscale")
                for number in range(2)]
    cutout = studio.upload(photo)
    studio.start_worker()

    for task_id in [*upscales, cutout]:
        studio.wait_for_status(task_id, "COMPLETED", timeout=300)
    finished = {task_id: studio.task(task_id).finished_at for task_id in [*upscales, cutout]}
    order = sorted(finished, key=finished.get)
    assert order[0] == cutout, ["cutout" if task_id == cutout else "upscale" for task_id in order]


def test_an_accounts_cutout_finishes_while_its_upscales_hold_every_slow_slot(make_studio, photo):
    # One slot per class and two workers: the first upscale holds a worker (and the account's slow slot) for long,
    # the second waits for that slot. The cutout takes the other worker at once, instead of waiting behind both.
    studio = make_studio(STUDIO_ACCOUNT_CONCURRENCY=1)
    for _ in range(2):
        studio.start_worker(STUDIO_FAULT_INJECTION="sleep=600@up-0.jpeg")
    upscales = [studio.upload(_small_photo(), filename=f"up-{number}.jpeg", operation="upscale")
                for number in range(2)]
    studio.wait_for_status(upscales[0], "PROCESSING")
    cutout = studio.upload(photo)

    studio.wait_for_status(cutout, "COMPLETED", timeout=120)
    assert [studio.status(task_id) for task_id in upscales] == ["PROCESSING", "PENDING"]


def test_a_quick_only_worker_runs_the_cutout_and_leaves_the_upscale_to_the_others(make_studio, photo):
    studio = make_studio()
    studio.start_worker("--quick-only")
    upscale = studio.upload(_small_photo(), filename="up-0.jpeg", operation="upscale")
    cutout = studio.upload(photo)

    studio.wait_for_status(cutout, "COMPLETED")
    assert studio.status(upscale) == "PENDING"
    assert studio.queued_ids() == [upscale]
