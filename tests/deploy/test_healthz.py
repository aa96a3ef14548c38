"""GET /healthz: 200 when the database, Redis and storage answer; 503 naming the failing one otherwise."""

from __future__ import annotations

import socket
import threading
from typing import Iterator

import boto3
import psycopg2
import pytest
from moto.server import ThreadedMotoServer

from studio import health, settings
from tests.support.services import TEST_DATABASE_URL, require
from tests.support.network import free_port
from tests.support.deploy import make_app

pytestmark = pytest.mark.integration


@pytest.fixture
def silent_port() -> Iterator[int]:
    """Return a port that accepts connections (the kernel's backlog does) but never answers a byte."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)
        yield listener.getsockname()[1]


@pytest.fixture
def s3_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Run a moto S3 server on a free local port and return its URL."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


def test_healthz_is_ok_when_everything_answers(redis_connection, tmp_path) -> None:
    response = make_app(tmp_path).test_client().get("/healthz")

    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok"
    assert {name: check["status"] for name, check in body["checks"].items()} == {
        "database": "ok", "redis": "ok", "storage": "ok"}


def test_healthz_is_degraded_when_redis_is_down(tmp_path) -> None:
    app = make_app(tmp_path, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")

    response = app.test_client().get("/healthz")

    assert response.status_code == 503
    body = response.get_json()
    assert body["status"] == "degraded"
    assert body["checks"]["redis"] == {"status": "error", "error": "ConnectionError"}
    assert body["checks"]["database"]["status"] == "ok"
    assert body["checks"]["storage"]["status"] == "ok"


def test_healthz_gives_up_on_a_redis_that_never_answers(tmp_path, silent_port: int) -> None:
    app = make_app(tmp_path, REDIS_URL=f"redis://127.0.0.1:{silent_port}/0")

    response = app.test_client().get("/healthz")

    assert response.status_code == 503
    assert response.get_json()["checks"]["redis"]["status"] == "error"


def postgres_up() -> bool:
    """Return True when the test PostgreSQL accepts a connection."""
    try:
        psycopg2.connect(TEST_DATABASE_URL, connect_timeout=2).close()
    except psycopg2.OperationalError:
        return False
    return True


def test_healthz_is_ok_on_postgresql_named_as_in_production(redis_connection, tmp_path) -> None:
    require(postgres_up(), f"PostgreSQL not reachable at {TEST_DATABASE_URL}")
    # DATABASE_URL as docker-compose.yml spells it, through the settings the app reads it with.
    url = settings.from_environment({"DATABASE_URL": TEST_DATABASE_URL})["SQLALCHEMY_DATABASE_URI"]

    response = make_app(tmp_path, create_schema=False, SQLALCHEMY_DATABASE_URI=url).test_client().get("/healthz")

    assert response.status_code == 200
    assert response.get_json()["checks"]["database"]["status"] == "ok"


def test_healthz_is_degraded_when_the_database_is_down(redis_connection, tmp_path) -> None:
    closed = f"postgresql+psycopg2://postgres@127.0.0.1:{free_port()}/studio"
    app = make_app(tmp_path, create_schema=False, SQLALCHEMY_DATABASE_URI=closed)

    response = app.test_client().get("/healthz")

    assert response.status_code == 503
    assert response.get_json()["checks"]["database"]["status"] == "error"
    assert response.get_json()["checks"]["redis"]["status"] == "ok"


def test_healthz_reports_a_check_that_takes_too_long_as_a_timeout(
        tmp_path, monkeypatch: pytest.MonkeyPatch, redis_connection) -> None:
    release = threading.Event()
    monkeypatch.setattr(health, "CHECK_TIMEOUT_SECONDS", 0.1)
    monkeypatch.setitem(health.CHECKS, "storage", lambda app: release.wait(30))
    app = make_app(tmp_path)
    try:
        response = app.test_client().get("/healthz")
    finally:
        release.set()

    assert response.status_code == 503
    assert response.get_json()["checks"]["storage"] == {"status": "error", "error": "timeout"}


def test_healthz_reports_an_unexpected_exception_without_raising(
        tmp_path, monkeypatch: pytest.MonkeyPatch, redis_connection) -> None:
    def broken(app):
        raise RuntimeError("secret detail")

    monkeypatch.setitem(health.CHECKS, "storage", broken)
    response = make_app(tmp_path).test_client().get("/healthz")

    assert response.status_code == 503
    assert response.get_json()["checks"]["storage"] == {"status": "error", "error": "RuntimeError"}
    assert b"secret detail" not in response.data


def test_healthz_checks_the_s3_bucket(redis_connection, tmp_path, s3_endpoint: str) -> None:
    boto3.client("s3", endpoint_url=s3_endpoint, region_name="us-east-1").create_bucket(Bucket="studio-health")
    s3 = {"STUDIO_S3_ENDPOINT_URL": s3_endpoint, "STUDIO_S3_REGION": "us-east-1"}

    present = make_app(tmp_path, STUDIO_S3_BUCKET="studio-health", **s3).test_client().get("/healthz")
    missing = make_app(tmp_path, STUDIO_S3_BUCKET="no-such-bucket", **s3).test_client().get("/healthz")

    assert present.status_code == 200
    assert present.get_json()["checks"]["storage"]["status"] == "ok"
    assert missing.status_code == 503
    assert missing.get_json()["checks"]["storage"] == {"status": "error", "error": "ClientError"}


def test_healthz_is_not_rate_limited(redis_connection, tmp_path) -> None:
    client = make_app(tmp_path, RATELIMIT_DEFAULT="1 per hour", RATELIMIT_ENABLED=True).test_client()

    statuses = [client.get("/healthz").status_code for _ in range(3)]

    assert statuses == [200, 200, 200]
