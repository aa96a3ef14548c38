"""The smaller holes the outside probe found: a trusted Host only, bounded JSON bodies, polling counted against the
read tier, and nothing user-controlled rendered raw on rq-dashboard's job page."""

from __future__ import annotations

import uuid

import pytest
from redis import Redis
from rq import Queue, SimpleWorker

from studio.extensions import db
from studio.models import User
from tests.support.security import login, png_bytes
from tests.support.studio import upload

pytestmark = pytest.mark.integration


def test_a_forged_host_header_is_refused_and_links_use_the_trusted_name(app, make_user, make_token):
    headers = make_token(make_user())
    client = app.test_client()
    answer = upload(client, headers, png_bytes())
    assert answer.status_code == 202
    assert answer.headers["Location"].startswith("http://studio.test/api/v1/tasks/")

    for host in ("evil.example", "studio.test.evil.example", "127.0.0.2"):
        forged = client.get("/api/v1/tasks", headers={**headers, "Host": host})
        assert forged.status_code == 400, host
        assert "evil" not in forged.get_data(as_text=True)
    forged_upload = upload(client, {**headers, "Host": "evil.example"}, png_bytes())
    assert forged_upload.status_code == 400 and "Location" not in forged_upload.headers
    assert app.test_client().get("/login", headers={"Host": "evil.example"}).status_code == 400
    # Probes and scrapes call a pod by its address: those paths build no links and answer under any name.
    for path in ("/livez", "/healthz"):
        assert app.test_client().get(path, headers={"Host": "10.1.2.3:8000"}).status_code != 400


@pytest.mark.parametrize("body", [
    "[" * 100_000 + "]" * 100_000,
    '{"email": ' + '{"a": ' * 5000 + "1" + "}" * 5000 + "}",
    '{"email": "ada@example.com", "password": "' + "x" * 200_000 + '"}',
])
def test_deep_or_huge_json_bodies_are_a_400_not_a_500(app, make_user, body):
    make_user("ada@example.com")
    response = app.test_client().post("/api/v1/tokens", data=body, content_type="application/json")
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "bad_request"


def test_nesting_inside_strings_is_not_counted():
    from studio.json_bodies import check_depth

    check_depth('{"text": "' + "[" * 1000 + '\\" {{{{"}')
    with pytest.raises(ValueError, match="deeper than 32"):
        check_depth("[" * 33 + "]" * 33)


def test_polling_random_task_ids_counts_against_the_read_allowance(security_app, make_user):
    app = security_app(RATELIMIT_ENABLED=True, RATELIMIT_STORAGE_URI="memory://", RATELIMIT_READ="5 per minute")
    user = make_user()
    client = app.test_client()
    assert login(client, user.email).status_code == 302
    statuses = [client.get(f"/tasks/{uuid.uuid4()}/status").status_code for _ in range(8)]
    assert 429 in statuses and statuses[0] == 404
    # The allowance is the account's, whatever the task: another id does not start a fresh one.
    assert client.get(f"/tasks/{uuid.uuid4()}/status").status_code == 429


def test_rq_dashboard_shows_job_details_escaped(app, make_user):
    admin = make_user(is_admin=True)
    redis = Redis.from_url(app.config["REDIS_URL"])
    queue = Queue("studio-test-markup", connection=redis)
    markup = "<img src=x onerror=alert(document.domain)>"
    job = queue.enqueue("builtins.str", markup, job_id=f"markup-{uuid.uuid4().hex[:8]}",
                        meta={"note": markup}, description=markup)
    job.meta["note"] = markup
    job.save_meta()
    # A job whose exception message carries markup, as a hostile file name or host name once could.
    failing = queue.enqueue("studio.json_bodies.check_depth", "[" * 40, job_id=f"fails-{uuid.uuid4().hex[:8]}",
                            description=markup)
    SimpleWorker([queue], connection=redis).work(burst=True)

    client = app.test_client()
    assert login(client, admin.email).status_code == 302
    for job_id in (job.id, failing.id):
        details = client.get(f"/admin/rq/0/data/job/{job_id}.json")
        assert details.status_code == 200
        text = details.get_data(as_text=True)
        assert "<img" not in text and "&lt;img" in text, text[:500]
    with app.app_context():
        assert db.session.get(User, admin.id).is_admin
