"""One account cannot take the workers: every photo counts against the upload allowance, and an account's
unfinished tasks are capped. (The queue's fairness with real workers: tests/workers/test_fairness.py.)"""

from __future__ import annotations

import io

import pytest

from studio.extensions import db
from studio.models import Task
from tests.support.security import csrf_token, login, png_bytes
from tests.support.studio import upload

pytestmark = pytest.mark.integration


def _photos(count: int) -> list[tuple[io.BytesIO, str]]:
    return [(io.BytesIO(png_bytes((16, 12))), f"photo-{number}.png") for number in range(count)]


def _post_page(client, count: int):
    return client.post("/tasks", data={"photo": _photos(count), "csrf_token": csrf_token(client, "/")},
                       content_type="multipart/form-data")


def test_every_photo_of_a_page_upload_counts_against_the_upload_allowance(security_app, make_user):
    app = security_app(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://", RATELIMIT_UPLOAD="10 per minute")
    user = make_user()
    client = app.test_client()
    assert login(client, user.email).status_code == 302

    first = _post_page(client, 4)
    assert first.status_code == 302
    assert first.headers["X-RateLimit-Remaining"] == "6"
    # Seven more photos than the six left: refused as a whole, nothing stored.
    assert _post_page(client, 7).status_code == 429
    with app.app_context():
        assert db.session.query(Task).count() == 4


def test_an_account_may_have_only_so_many_unfinished_tasks(security_app, make_user, make_token):
    app = security_app(STUDIO_MAX_UNFINISHED_TASKS=3)
    user = make_user()
    headers = make_token(user)
    client = app.test_client()
    for _ in range(3):
        assert upload(client, headers, png_bytes((16, 12))).status_code == 202

    refused = upload(client, headers, png_bytes((16, 12)))
    assert refused.status_code == 429
    error = refused.get_json()["error"]
    assert error["code"] == "too_many_unfinished_tasks"
    assert "3 photos waiting or processing" in error["message"]
    assert refused.headers["Retry-After"]

    page = app.test_client()
    assert login(page, user.email).status_code == 302
    answer = _post_page(page, 1)
    assert answer.status_code == 429 and "waiting or processing" in answer.get_data(as_text=True)
    # Another account is not affected.
    assert upload(client, make_token(make_user()), png_bytes((16, 12))).status_code == 202
    with app.app_context():
        assert db.session.query(Task).filter_by(user_id=user.id).count() == 3
        # Finished tasks do not count.
        db.session.query(Task).filter_by(user_id=user.id).update({"status": "COMPLETED"})
        db.session.commit()
    assert upload(client, headers, png_bytes((16, 12))).status_code == 202
