"""Logs: one JSON object a line from every process, the server's request id from the request to the job, the
id the request came with apart, no line forged by a client, and no secrets."""

from __future__ import annotations

import json
import logging
import re
from urllib.parse import quote

import boto3
from botocore.config import Config
import pytest
from flask import request
from rq import Queue

from studio import logs
from tests.support.deploy import make_app
from tests.support.servers import Gunicorn, run_burst_worker, studio_environment

logger = logging.getLogger("tests.deploy.test_logging")


def json_lines(text: str) -> list[dict]:
    """Parse every line as a JSON object (failing on one that is not)."""
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.fixture
def app_logging_to_stderr(tmp_path, capsys):
    """Return an app whose log lines (JSON, INFO) go to the captured standard error."""
    app = make_app(tmp_path, STUDIO_LOG_FORMAT="json", STUDIO_LOG_LEVEL="INFO")

    @app.get("/_test/log")
    def log_something():
        logger.warning("inside the request")
        return "ok"

    capsys.readouterr()
    yield app
    logs.configure("INFO", "json")


def test_a_request_has_the_servers_own_id_and_keeps_the_one_it_came_with_apart(app_logging_to_stderr, capsys):
    response = app_logging_to_stderr.test_client().get("/_test/log", headers={"X-Request-ID": "9f2c-nginx-id"})

    request_id = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    lines = json_lines(capsys.readouterr().err)
    inside = next(line for line in lines if line["message"] == "inside the request")
    summary = next(line for line in lines if line["logger"] == "studio.logs")
    assert inside["request_id"] == summary["request_id"] == request_id
    assert inside["client_request_id"] == summary["client_request_id"] == "9f2c-nginx-id"
    assert inside["level"] == "WARNING" and inside["logger"] == "tests.deploy.test_logging"
    assert summary["message"] == "GET /_test/log 200"
    assert {summary["status"], summary["method"], summary["path"]} == {200, "GET", "/_test/log"}
    assert "time" in summary and "duration_ms" in summary


def test_a_client_cannot_give_its_request_the_id_of_another(app_logging_to_stderr, capsys) -> None:
    client = app_logging_to_stderr.test_client()
    first = client.get("/_test/log").headers["X-Request-ID"]

    second = client.get("/_test/log", headers={"X-Request-ID": first}).headers["X-Request-ID"]

    assert second != first
    lines = json_lines(capsys.readouterr().err)
    assert {line["request_id"] for line in lines} == {first, second}
    assert {line.get("client_request_id") for line in lines if line["request_id"] == second} == {first}


@pytest.mark.parametrize("sent", [None, "", "has spaces in it", "x" * 65, "x" * 200, "quote\"injection",
                                  "tab\tbed", "caf\u00e9", "semi;colon", "[request_id=x]"])
def test_a_request_id_that_is_not_short_and_plain_is_dropped(app_logging_to_stderr, capsys, sent) -> None:
    headers = {"X-Request-ID": sent} if sent is not None else {}

    response = app_logging_to_stderr.test_client().get("/_test/log", headers=headers)

    request_id = response.headers["X-Request-ID"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    lines = json_lines(capsys.readouterr().err)
    assert {line["request_id"] for line in lines} == {request_id}
    assert not [line for line in lines if "client_request_id" in line]


# Everything that ends a line somewhere (Python's str.splitlines, terminals, editors, JavaScript), or moves the
# cursor, or reverses the text that follows it.
LINE_BREAKERS = ["\n", "\r", "\r\n", "\x0b", "\x0c", "\x1c", "\x1d", "\x1e", "\x85", "\u2028", "\u2029",
                 "\x1b[2K\r", "\x1b]8;;http://evil.example\x07", "\x00", "\x7f", "\x9b", "\u202e", "\u2066"]
FORGED = "2026-01-01 00:00:00,000 1 INFO studio.logs: POST /admin/users/1/role 302 [request_id=forged]"


@pytest.mark.parametrize("breaker", LINE_BREAKERS, ids=[repr(breaker) for breaker in LINE_BREAKERS])
def test_no_client_text_forges_a_line_in_the_text_format(tmp_path, capsys, breaker) -> None:
    app = make_app(tmp_path, STUDIO_LOG_FORMAT="text", STUDIO_LOG_LEVEL="INFO")

    @app.get("/_test/echo")
    def echo():
        logger.warning("signed up %s with %s", request.args["email"], request.args["file"])
        try:
            raise ValueError(request.args["email"])
        except ValueError:
            logger.exception("refused")
        return "ok"

    capsys.readouterr()
    try:
        client = app.test_client()
        # An HTTP header cannot hold a line feed or carriage return; anything else it may.
        header = "" if "\n" in breaker or "\r" in breaker else "abc" + breaker + FORGED
        client.get("/x" + quote(breaker + FORGED), headers={"X-Request-ID": header})
        client.get("/_test/echo", query_string={"email": f"a{breaker}{FORGED}@example.com",
                                                "file": f"b{breaker}{FORGED}.jpg"})
        text = capsys.readouterr().err
    finally:
        logs.configure("INFO", "json")

    lines = text.splitlines()
    assert len([line for line in lines if not line.startswith(logs.CONTINUATION)]) == 4, text
    records = [line for line in lines if not line.startswith(logs.CONTINUATION)]
    assert all(re.match(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \d+ [A-Z]+ ", line) for line in records), text
    assert not _UNESCAPED.search(text.replace("\n", "")), text
    assert any(line.startswith(logs.CONTINUATION + "ValueError") for line in lines), text


_UNESCAPED = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@pytest.mark.parametrize("breaker", LINE_BREAKERS, ids=[repr(breaker) for breaker in LINE_BREAKERS])
def test_json_lines_carry_client_text_whole_on_one_line(app_logging_to_stderr, capsys, breaker) -> None:
    path = "/x" + breaker + FORGED

    app_logging_to_stderr.test_client().get(quote(path))

    text = capsys.readouterr().err
    assert text.isascii() and len(text.splitlines()) == 1, text
    assert json.loads(text)["path"] == path


def test_the_request_id_does_not_leak_into_the_next_request(app_logging_to_stderr, capsys) -> None:
    client = app_logging_to_stderr.test_client()
    client.get("/_test/log", headers={"X-Request-ID": "first"})
    capsys.readouterr()

    logger.warning("between requests")

    assert "request_id" not in json_lines(capsys.readouterr().err)[0]
    assert logs.current_request_id() is None


def test_a_job_bound_to_its_request_and_task_logs_both(capsys) -> None:
    logs.configure("INFO", "json")
    capsys.readouterr()

    with logs.bind(request_id="req-1", task_id="task-1"):
        logger.info("outer")
        with logs.bind(task_id="task-2"):
            logger.info("inner")
        logger.info("outer again")
    logger.info("outside")

    lines = [(line.get("request_id"), line.get("task_id")) for line in json_lines(capsys.readouterr().err)]
    assert lines == [("req-1", "task-1"), ("req-1", "task-2"), ("req-1", "task-1"), (None, None)]


def test_the_level_setting_filters_lines(capsys) -> None:
    logs.configure("WARNING", "json")
    capsys.readouterr()

    logger.info("hidden")
    logger.warning("shown")

    assert [line["message"] for line in json_lines(capsys.readouterr().err)] == ["shown"]
    logs.configure("INFO", "json")


def presigned_url() -> str:
    """Return a real S3 presigned URL (signed locally with made-up credentials; nothing is sent)."""
    client = boto3.client("s3", region_name="us-east-1", aws_access_key_id="AKIAEXAMPLEKEYID0000",
                          aws_secret_access_key="made-up-secret", endpoint_url="https://s3.example.com",
                          config=Config(signature_version="s3v4"))  # as studio/storage.py signs
    return client.generate_presigned_url("get_object", Params={"Bucket": "studio", "Key": "results/a.png"},
                                         ExpiresIn=300)


SECRETS = {
    "password argument": ("sign-in failed for %s with password=%s", ("ada", "correct-horse-battery")),
    "authorization header": ("headers: %s", ({"Authorization": "Bearer ps_livetoken123456", "Host": "x"},)),
    "cookie header": ("headers: %s", ({"Cookie": "session=eyJhbGciOi.secretpart; remember_token=7|abcdef"},)),
    "api token": ("token %s created", ("ps_Zm9vYmFyYmF6cXV4cXV1eA",)),
    "webhook secret": ("secret is %s", ("whsec_c2VjcmV0c2VjcmV0c2VjcmV0",)),
    "database url": ("cannot connect to %s", ("postgresql://studio:db-pass-123@postgres:5432/studio",)),
    "redis url": ("lost %s", ("redis://:redis-pass-456@redis:6379/0",)),
}


@pytest.mark.parametrize("fmt", ["json", "text"])
@pytest.mark.parametrize("case", sorted(SECRETS))
def test_secrets_never_reach_a_line(capsys, fmt, case) -> None:
    message, arguments = SECRETS[case]
    logs.configure("INFO", fmt)
    capsys.readouterr()

    logger.warning(message, *arguments)

    line = capsys.readouterr().err
    secrets = ["correct-horse-battery", "ps_livetoken123456", "eyJhbGciOi", "secretpart", "abcdef",
               "ps_Zm9vYmFyYmF6cXV4cXV1eA", "c2VjcmV0c2VjcmV0", "db-pass-123", "redis-pass-456"]
    assert "[REDACTED]" in line
    assert not [secret for secret in secrets if secret in line], line
    logs.configure("INFO", "json")


@pytest.mark.parametrize("fmt", ["json", "text"])
def test_presigned_urls_lose_their_query_string(capsys, fmt) -> None:
    url = presigned_url()
    signature = re.search(r"X-Amz-Signature=([0-9a-f]+)", url).group(1)
    logs.configure("INFO", fmt)
    capsys.readouterr()

    logger.info("download link %s", url)

    line = capsys.readouterr().err
    assert "https://s3.example.com/studio/results/a.png?[REDACTED]" in line
    assert signature not in line and "AKIAEXAMPLEKEYID0000" not in line
    logs.configure("INFO", "json")


def test_fields_and_exceptions_are_redacted_and_bytes_never_logged(capsys) -> None:
    logs.configure("INFO", "json")
    capsys.readouterr()

    try:
        raise RuntimeError("upstream said: Authorization: Bearer abc.def.ghi")
    except RuntimeError:
        logger.exception("call failed", extra={"password": "hunter2", "exif": {"GPSInfo": "51.5N"},
                                               "photo": b"\xff\xd8\xff\xe0" + b"\x00" * 96, "attempt": 2})

    line = json_lines(capsys.readouterr().err)[0]
    assert line["password"] == line["exif"] == "[REDACTED]"
    assert line["photo"] == "<100 bytes>" and line["attempt"] == 2
    assert "RuntimeError" in line["exc_info"] and "abc.def.ghi" not in line["exc_info"]


def test_ordinary_messages_are_left_alone(capsys) -> None:
    logs.configure("INFO", "json")
    capsys.readouterr()

    logger.info("task %s: completed in %.1f s, 3 tokens revoked", "0b9d4c7e", 1.25)

    assert json_lines(capsys.readouterr().err)[0]["message"] == "task 0b9d4c7e: completed in 1.2 s, 3 tokens revoked"


@pytest.mark.integration
def test_gunicorn_and_a_worker_write_only_json_lines_carrying_the_ids(redis_connection, tmp_path) -> None:
    env = studio_environment(tmp_path, STUDIO_QUEUE="logging-test", STUDIO_LOG_FORMAT="json")
    gunicorn = Gunicorn(env, tmp_path / "gunicorn.log", "--workers", "1")
    try:
        gunicorn.wait_until_serving()
        status, headers, _ = gunicorn.get("/api/v1/openapi.json?token=ps_inthequerystring",
                                          {"X-Request-ID": "edge-42"})
    finally:
        gunicorn.stop()
    request_id = headers["X-Request-ID"]
    Queue("logging-test", connection=redis_connection).enqueue(
        "tests.deploy.observed_jobs.log_inside_a_task", request_id, "task-7")
    worker = run_burst_worker(env, tmp_path, "logging-test")

    assert status == 200 and re.fullmatch(r"[0-9a-f]{32}", request_id)
    web = json_lines(gunicorn.output())
    assert any(line["logger"] == "gunicorn.error" and "Booting worker" in line["message"] for line in web)
    request = next(line for line in web if line.get("endpoint") == "api.openapi_document")
    assert request["request_id"] == request_id and request["client_request_id"] == "edge-42"
    assert request["path"] == "/api/v1/openapi.json"
    assert "ps_inthequerystring" not in gunicorn.output()
    assert worker.returncode == 0, worker.stderr[-3000:]
    job = [line for line in json_lines(worker.stderr) if line["message"].startswith("working on the photo")]
    assert [(line["request_id"], line["task_id"]) for line in job] == [(request_id, "task-7")], worker.stderr[-3000:]
    assert "not-in-the-log" not in worker.stderr
