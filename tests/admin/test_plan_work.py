"""A plan's monthly megapixels count the work a task will do, not only the photo sent: an upscale counts the 4x
image its network makes, while it waits and once it has finished."""

from __future__ import annotations

import io

import pytest
from PIL import Image
from sqlalchemy import func, select

from studio.extensions import db
from studio.models import DailyUsage, Task
from tests.support.studio import load_task, run_worker, upload

pytestmark = pytest.mark.integration


def flat_jpeg(width: int, height: int) -> bytes:
    """Return a small JPEG of one colour."""
    buffer = io.BytesIO()
    Image.new("RGB", (width, height), (90, 120, 150)).save(buffer, "JPEG", quality=80)
    return buffer.getvalue()


def test_a_plans_megapixels_count_the_work_of_an_upscale(make_app, make_user, make_token, fake_run):
    app = make_app(STUDIO_PLANS={"small": {"megapixels_per_month": 21}})
    bearer = make_token(make_user("member@example.com"))
    client = app.test_client()
    photo = flat_jpeg(1200, 1000)  # 1.2 MP: its upscale's network makes 19.2 MP
    assert upload(client, bearer, photo, operation="upscale").status_code == 202
    refused = upload(client, bearer, photo, operation="upscale")
    assert refused.status_code == 429, refused.get_json()
    assert refused.get_json()["error"]["plan_limit"]["limit"] == "megapixels_per_month"
    # The same photo cut out is its own 1.2 MP: with the waiting upscale's 19.2, 20.4 of 21.
    assert upload(client, bearer, photo, operation="remove_background").status_code == 202


def _upscaled_then_cut_out(app, fake_run, finish: bool) -> None:
    """Upscale a 1.2 MP photo (19.2 MP of work) on a 20 MP plan, finished or still waiting; then check that a
    1.2 MP cut-out no longer fits while a 0.2 MP one does (their photos alone come to far less)."""
    bearer = app.config["TEST_BEARER"]
    client = app.test_client()
    task_id = upload(client, bearer, flat_jpeg(1200, 1000), operation="upscale").get_json()["id"]
    assert load_task(app, task_id).work_pixels == 19_200_000
    if finish:
        run_worker(app)
        assert load_task(app, task_id).status == "COMPLETED" and fake_run == ["upscale"]
    refused = upload(client, bearer, flat_jpeg(1200, 1000), operation="remove_background")
    assert refused.status_code == 429, refused.get_json()
    assert refused.get_json()["error"]["plan_limit"] | {"resets_at": None} == {
        "plan": "small", "limit": "megapixels_per_month", "allowed": 20, "used": 19.2, "resets_at": None}
    assert upload(client, bearer, flat_jpeg(500, 400), operation="remove_background").status_code == 202


@pytest.fixture
def small_plan(make_app, make_user, make_token):
    """Return an app whose default plan allows 20 megapixels a month, with a member's bearer in its config."""
    app = make_app(STUDIO_PLANS={"small": {"megapixels_per_month": 20}})
    app.config["TEST_BEARER"] = make_token(make_user("member@example.com"))
    return app


def test_finished_upscales_count_their_work_against_the_month(small_plan, fake_run):
    _upscaled_then_cut_out(small_plan, fake_run, finish=True)
    with small_plan.app_context():
        row = db.session.scalars(select(DailyUsage).where(DailyUsage.operation == "upscale")).one()
        assert (row.pixels_in, row.work_pixels) == (1_200_000, 19_200_000)  # pixels in stay the photo's
    # The usage API's plan says what the limit counts: the upscale's work, not its photo.
    answer = small_plan.test_client().get("/api/v1/usage", headers=small_plan.config["TEST_BEARER"])
    assert answer.get_json()["plan"]["megapixels_this_month"] == pytest.approx(19.2)


def test_waiting_upscales_count_their_work_against_the_month(small_plan, fake_run):
    _upscaled_then_cut_out(small_plan, fake_run, finish=False)
    with small_plan.app_context():
        assert fake_run == [] and db.session.scalar(select(func.count()).select_from(DailyUsage)) == 0
        assert db.session.scalar(select(func.sum(Task.work_pixels))) == 19_400_000
