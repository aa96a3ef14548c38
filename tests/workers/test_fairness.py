"""Fairness between accounts with real workers: one account's backlog does not stand in front of another's photo."""

from __future__ import annotations

import uuid

import pytest

from studio.auth import service as account_service
from tests.support.studio import upload

pytestmark = pytest.mark.integration

BACKLOG = 6


def test_another_accounts_photo_starts_before_the_backlog_of_the_first(make_studio, photo):
    # Each of A's photos takes a second or more, so its backlog is real when B uploads.
    studio = make_studio(STUDIO_ACCOUNT_CONCURRENCY=2)
    with studio.app.app_context():
        other = account_service.create_user(f"b-{uuid.uuid4().hex[:6]}@example.com", "correct horse battery")
        _, token = account_service.create_api_token(other, "tests")
    backlog = [studio.upload(photo, filename="a.jpeg") for _ in range(BACKLOG)]
    response = upload(studio.client, {"Authorization": f"Bearer {token}"}, photo, filename="b.jpeg")
    assert response.status_code == 202
    single = response.get_json()["id"]

    for _ in range(2):
        studio.start_worker(STUDIO_FAULT_INJECTION="sleep=1@a.jpeg")
    for task_id in [*backlog, single]:
        studio.wait_for_status(task_id, "COMPLETED", timeout=180)

    started = {task_id: studio.task(task_id).started_at for task_id in [*backlog, single]}
    order = sorted(started, key=started.get)
    # Two of A's photos hold its two slots; B's photo is next, ahead of every one of A's waiting photos.
    assert order.index(single) == 2, ["B" if task_id == single else "A" for task_id in order]


def test_an_accounts_photos_start_in_the_order_they_were_uploaded(make_studio, photo):
    # One slot: every photo but the first waits in RQ's concurrency registry, which scores them by the whole second
    # they came in. Uploaded within a second or two, they must still start in upload order, not by chance.
    studio = make_studio(STUDIO_ACCOUNT_CONCURRENCY=1)
    uploaded = [studio.upload(photo, filename=f"{number}.jpeg") for number in range(BACKLOG)]
    studio.start_worker()
    for task_id in uploaded:
        studio.wait_for_status(task_id, "COMPLETED", timeout=180)

    started = {task_id: studio.task(task_id).started_at for task_id in uploaded}
    assert sorted(uploaded, key=started.get) == uploaded
