"""The pages and the API spell each concept the same way: the download flag, an unknown operation, a missing model.

Only the photo's field differs, for a reason: the form's `photo` takes several files, the API's `image` one."""

from __future__ import annotations

import pytest

from tests.support import samples
from tests.support.uploads import sign_in
from tests.support.studio import run_worker

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("value, attachment", [("1", True), ("true", True), ("0", False), ("false", False),
                                               (None, False)])
def test_the_download_flag_takes_the_same_values_on_the_pages_and_in_the_api(
        app, user, headers, uploader, value, attachment):
    task_id = uploader.task_id(uploader.send(samples.png((32, 24)), "small.png", operation="mask_stats"))
    run_worker(app)
    browser = app.test_client()
    sign_in(browser, user.email)
    query = "" if value is None else f"?download={value}"
    for client, path, extra in ((browser, f"/tasks/{task_id}/result", {}),
                                (app.test_client(), f"/api/v1/tasks/{task_id}/result", headers)):
        response = client.get(path + query, headers=extra)
        assert response.status_code == 200, response.get_data(as_text=True)
        assert response.headers.get("Content-Disposition", "").startswith("attachment") is attachment, path


def test_an_unknown_operation_is_refused_alike_on_both_routes(uploader, nothing_kept):
    answer = uploader.send(samples.png((32, 24)), "small.png", operation="no_such_operation")
    assert answer.status == 400 and "is not an operation" in answer.text
    if uploader.route == "api":
        assert answer.code == "invalid_operation"
    nothing_kept()


def test_no_installed_model_is_a_503_on_both_routes(uploader, nothing_kept, app, tmp_path):
    app.config["STUDIO_MODEL_DIR"] = str(tmp_path / "no-models")
    answer = uploader.send(samples.png((32, 24)), "small.png")
    assert answer.status == 503 and "No model for this operation is installed" in answer.text
    if uploader.route == "api":
        assert answer.code == "no_models"
    nothing_kept()
