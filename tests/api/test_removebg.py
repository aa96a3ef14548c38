"""POST /v1.0/removebg and GET /v1.0/account: remove.bg's keys, errors, limits and answers, on the real services
(a real worker where a call must finish)."""

from __future__ import annotations

import base64
import io
import zipfile

import numpy
import pytest
from PIL import Image

from studio.auth import service as account_service
from studio.extensions import db
from tests.support.removebg import pixels, studio_result
from tests.support.security import login

pytestmark = pytest.mark.integration

PHOTO = "rifle2.jpeg"


def api_key(app) -> dict[str, str]:
    """Return the X-Api-Key header of a new account's API token."""
    with app.app_context():
        user = account_service.create_user("grace@example.com", "correct horse battery")
        _, token = account_service.create_api_token(user, "tests")
        db.session.commit()
    return {"X-Api-Key": token}


def call(client, key: dict[str, str], photo: bytes, **fields):
    """POST a photo to /v1.0/removebg as a multipart form."""
    return client.post("/v1.0/removebg", headers=key, content_type="multipart/form-data",
                       data={"image_file": (io.BytesIO(photo), "photo.jpg"), **fields})


def history(client, key: dict[str, str]) -> list[dict]:
    """Return the account's tasks through the studio's own API (the same token as a bearer token)."""
    response = client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {key['X-Api-Key']}"})
    assert response.status_code == 200
    return response.get_json()["items"]


def assert_error(response, status: int, starts: str = "") -> dict:
    """Assert remove.bg's error shape and status; return the error."""
    assert response.status_code == status, response.get_data(as_text=True)
    errors = response.get_json()["errors"]
    assert len(errors) == 1 and errors[0]["code"] and errors[0]["title"].startswith(starts)
    return errors[0]


@pytest.mark.parametrize("header", [{}, {"X-Api-Key": "ps_not-a-token"}, {"X-Api-Key": ""},
                                    {"Authorization": "Basic eDp5"}])
def test_a_call_without_a_valid_key_is_403(app, client, photo_bytes, header) -> None:
    assert_error(call(client, header, photo_bytes(PHOTO)), 403, "Send a valid API token")
    refused = client.get("/v1.0/account", headers=header)
    assert_error(refused, 403)
    # remove.bg refuses a key with a bare 403: no authentication challenge to answer.
    assert "WWW-Authenticate" not in refused.headers


def test_a_database_out_of_reach_is_503_in_remove_bg_shape_with_retry_after(make_app) -> None:
    app = make_app(SQLALCHEMY_DATABASE_URI="postgresql+psycopg2://postgres@127.0.0.1:1/none")
    response = app.test_client().get("/v1.0/account", headers={"X-Api-Key": "ps_any-token"})
    assert assert_error(response, 503, "A backing service is unavailable")["code"] == "service_unavailable"
    assert response.headers["Retry-After"] == "10"


def test_a_signed_in_browser_session_is_no_key(app, client, make_user, photo_bytes) -> None:
    make_user("admin@example.com")
    assert login(client, "admin@example.com").status_code == 302

    assert_error(call(client, {}, photo_bytes(PHOTO)), 403)
    assert history(client, api_key(app)) == []


def test_a_bad_field_is_400_naming_it_and_makes_no_task(app, client, photo_bytes) -> None:
    key = api_key(app)
    assert_error(call(client, key, photo_bytes(PHOTO), scale="half"), 400, "scale:")
    assert_error(client.post("/v1.0/removebg", headers=key, json={"image_file_b64": "%%%"}), 400, "image_file_b64:")
    assert_error(client.post("/v1.0/removebg", headers=key, data="[1]", content_type="application/json"), 400)
    assert_error(client.post("/v1.0/removebg", headers=key, data="x", content_type="text/plain"), 400)
    assert_error(call(client, key, b"not an image"), 400)  # the upload service's own refusal, as remove.bg's 400
    assert_error(call(client, key, photo_bytes(PHOTO), image_url="http://127.0.0.1/x.jpg"), 400, "image_url:")
    assert history(client, key) == []


def test_a_plan_limit_is_402(make_app, photo_bytes) -> None:
    app = make_app(STUDIO_PLANS={"none": {"tasks_per_month": 0}}, STUDIO_DEFAULT_PLAN="none")
    client, key = app.test_client(), api_key(app)

    assert_error(call(client, key, photo_bytes(PHOTO)), 402, "Your plan (none) allows 0 tasks")
    account = client.get("/v1.0/account", headers=key).get_json()["data"]["attributes"]
    assert account["credits"]["total"] == 0 and account["api"]["free_calls"] == 0


def test_without_a_waiting_place_the_call_is_503_with_retry_after_and_makes_no_task(make_app, photo_bytes) -> None:
    app = make_app(STUDIO_API_MAX_WAITING=0)
    client, key = app.test_client(), api_key(app)

    response = call(client, key, photo_bytes(PHOTO))

    assert_error(response, 503, "Too many calls are waiting")
    assert int(response.headers["Retry-After"]) > 0
    assert history(client, key) == []


def test_a_call_not_done_in_time_is_503_and_stays_an_ordinary_task(make_app, photo_bytes) -> None:
    app = make_app(STUDIO_REMOVEBG_WAIT_SECONDS=1)  # and no worker: the task stays PENDING
    client, key = app.test_client(), api_key(app)

    response = call(client, key, photo_bytes(PHOTO), size="hd", crop="true", crop_margin="20px")

    error = assert_error(response, 503, "The photo is still being processed")
    assert response.headers["Retry-After"]
    [task] = history(client, key)
    assert task["id"] in error["title"] and task["status"] == "PENDING"
    assert (task["operation"], task["options"]["size"], task["options"]["margin"]) == ("remove_background", "hd", 20)


def test_calls_share_the_accounts_upload_rate_limit_with_remove_bg_headers(make_app, photo_bytes) -> None:
    app = make_app(RATELIMIT_UPLOAD="2 per minute", STUDIO_REMOVEBG_WAIT_SECONDS=1)
    client, key = app.test_client(), api_key(app)

    first = call(client, key, photo_bytes(PHOTO))
    assert first.headers["X-RateLimit-Limit"] == "2" and first.headers["X-RateLimit-Remaining"] == "1"
    assert int(first.headers["X-RateLimit-Reset"]) > 0
    call(client, key, photo_bytes(PHOTO))
    refused = call(client, key, photo_bytes(PHOTO))

    assert_error(refused, 429, "Too many requests")
    assert int(refused.headers["Retry-After"]) > 0 and refused.headers["X-RateLimit-Remaining"] == "0"


def test_the_account_answers_in_remove_bgs_shape(make_app) -> None:
    app = make_app(STUDIO_PLANS={"small": {"tasks_per_month": 50}}, STUDIO_DEFAULT_PLAN="small")
    client, key = app.test_client(), api_key(app)

    attributes = client.get("/v1.0/account", headers=key).get_json()["data"]["attributes"]

    assert attributes["credits"] == {"total": 50, "subscription": 50, "payg": 0, "enterprise": 0}
    assert attributes["api"] == {"free_calls": 50, "sizes": "all"}
    assert attributes["plan"]["name"] == "small"


@pytest.mark.slow
def test_answers_json_zip_and_mask_with_the_foreground_and_failures(stack, photo_bytes) -> None:
    photo, key = photo_bytes(PHOTO), {"X-Api-Key": stack.token}
    client = stack.client
    cutout = studio_result(client, stack.headers, photo, size="preview")
    alpha = pixels(cutout)[..., 3]
    rows, columns = numpy.nonzero(alpha)

    answer = client.post("/v1.0/removebg", headers={**key, "Accept": "application/json"},
                         json={"image_file_b64": base64.b64encode(photo).decode()})
    assert answer.status_code == 200, answer.get_data(as_text=True)
    data = answer.get_json()["data"]
    assert numpy.array_equal(pixels(base64.b64decode(data["result_b64"])), pixels(cutout))
    assert (data["foreground_left"], data["foreground_top"]) == (columns.min(), rows.min())
    assert (data["foreground_width"], data["foreground_height"]) == (columns.max() - columns.min() + 1,
                                                                     rows.max() - rows.min() + 1)
    assert answer.headers["X-Foreground-Width"] == str(data["foreground_width"])
    assert answer.headers["X-Type"] == "other" and answer.headers["X-Credits-Charged"] == "1"

    bundle = call(client, key, photo, format="zip", type="product")
    assert bundle.status_code == 200 and bundle.mimetype == "application/zip"
    assert bundle.headers["X-Type"] == "product"
    with zipfile.ZipFile(io.BytesIO(bundle.data)) as archive:
        assert sorted(archive.namelist()) == ["alpha.png", "color.jpg"]
        assert numpy.array_equal(pixels(archive.read("alpha.png")), alpha)
        with Image.open(io.BytesIO(archive.read("color.jpg"))) as color:
            assert (color.format, color.mode, color.size) == ("JPEG", "RGB", (alpha.shape[1], alpha.shape[0]))

    mask = call(client, key, photo, channels="alpha")
    assert mask.status_code == 200 and mask.mimetype == "image/png"
    assert numpy.array_equal(pixels(mask.data), alpha)
    assert (mask.headers["X-Width"], mask.headers["X-Height"]) == (str(alpha.shape[1]), str(alpha.shape[0]))

    missing = stack.photos.url("/missing.jpg")
    failed = client.post("/v1.0/removebg", headers=key, data={"image_url": missing})
    assert_error(failed, 400, "image_url: the URL answered 404")
    statuses = [task["status"] for task in history(client, key)]
    assert statuses.count("COMPLETED") == 4 and statuses.count("FAILED") == 1
