"""GET /metrics: only for the token, Prometheus' text format, and counts that add up across processes."""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from botocore.exceptions import ClientError
from prometheus_client import CollectorRegistry, Counter, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from rq import Queue, Worker
from rq.utils import utcformat

from studio import metrics, metrics_state, sqs_state
from studio.extensions import db
from studio.models import Task, TaskStatus, utcnow
from tests.support.network import free_port
from tests.support.deploy import AUTHORIZED, TOKEN, make_app, record_one_of_each
from tests.support.servers import ROOT, Gunicorn, run_burst_worker, small_model_dir, studio_environment
from tests.support.sqs import make_queues

RECORDED_FAMILIES = {
    "studio_http_requests", "studio_http_request_duration_seconds", "studio_tasks_created", "studio_tasks_finished",
    "studio_job_duration_seconds", "studio_inference_duration_seconds", "studio_job_retries",
    "studio_webhook_deliveries", "studio_storage_errors", "studio_uploads_refused",
}
STATE_FAMILIES = {"studio_dependency_up", "studio_queue_jobs", "studio_queue_oldest_job_age_seconds",
                  "studio_workers_alive", "studio_workers_busy"}


def samples(text: str) -> dict[tuple[str, frozenset], float]:
    """Return every sample of an exposition, keyed by name and labels."""
    return {(sample.name, frozenset(sample.labels.items())): sample.value
            for family in text_string_to_metric_families(text) for sample in family.samples}


def value(text: str, name: str, **labels: str) -> float:
    """Return one sample's value, 0 when the exposition does not have it."""
    return samples(text).get((name, frozenset(labels.items())), 0.0)


def scrape(client) -> str:
    """Return /metrics' body, asserting it answered 200 in the text format."""
    response = client.get("/metrics", headers=AUTHORIZED)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.get_data(as_text=True)


def test_metrics_is_not_found_while_no_token_is_set(tmp_path) -> None:
    client = make_app(tmp_path, STUDIO_METRICS_TOKEN=None).test_client()

    assert client.get("/metrics").status_code == 404
    assert client.get("/metrics", headers={"Authorization": "Bearer "}).status_code == 404


@pytest.mark.parametrize("header", [None, "", TOKEN, f"Basic {TOKEN}", f"Bearer {TOKEN}x", f"Bearer  {TOKEN}",
                                    "Bearer wrong-token"])
def test_metrics_refuses_anything_but_the_token(tmp_path, header) -> None:
    client = make_app(tmp_path, STUDIO_METRICS_TOKEN=TOKEN).test_client()

    response = client.get("/metrics", headers={"Authorization": header} if header is not None else {})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "studio_" not in response.get_data(as_text=True)


def test_metrics_exports_every_family_and_counts_by_endpoint(redis_connection, tmp_path) -> None:
    client = make_app(tmp_path, STUDIO_METRICS_TOKEN=TOKEN).test_client()
    before = scrape(client)

    record_one_of_each()
    for _ in range(3):
        assert client.get("/api/v1/openapi.json").status_code == 200
    client.get("/no/such/page")
    after = scrape(client)

    families = {family.name for family in text_string_to_metric_families(after)}
    assert RECORDED_FAMILIES | STATE_FAMILIES <= families
    counted = [value(after, name, **labels) - value(before, name, **labels) for name, labels in [
        ("studio_http_requests_total", {"endpoint": "api.openapi_document", "method": "GET", "status": "200"}),
        ("studio_http_requests_total", {"endpoint": "unmatched", "method": "GET", "status": "404"}),
        ("studio_http_request_duration_seconds_count", {"endpoint": "api.openapi_document", "method": "GET"}),
        ("studio_tasks_finished_total", {"operation": "remove_background", "model": "u2netp", "status": "completed"}),
        ("studio_job_duration_seconds_count", {"operation": "remove_background", "model": "u2netp"}),
        ("studio_uploads_refused_total", {"reason": "too_large"}),
    ]]
    assert counted == [3, 1, 3, 1, 1, 1]
    # Paths are never labels: the 404 above is "unmatched", not its path.
    assert "/no/such/page" not in after


def label_values(text: str, label: str, prefix: str = "studio_") -> set[str]:
    """Return every value the label takes in the exposition's samples whose names start with prefix."""
    return {dict(labels).get(label) for name, labels in samples(text) if name.startswith(prefix)} - {None}


def test_requests_made_up_by_a_client_add_no_series(redis_connection, tmp_path) -> None:
    app = make_app(tmp_path, STUDIO_METRICS_TOKEN=TOKEN)
    client = app.test_client()
    # Metrics are per process: endpoints of other tests' apps may be there already.
    earlier = label_values(scrape(client), "endpoint")
    # Every standard method, one made-up one, and the statuses they cause: their series may appear once.
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "TRACE", "MADEUP"):
        client.open("/api/v1/openapi.json", method=method)
        client.open("/no/such/page", method=method)
        client.open("/tasks/0", method=method)
    before = scrape(client)

    for number in range(100):
        client.open(f"/api/v1/openapi.json?{number}", method=f"MADEUP{number}")
        client.open(f"/no/such/page/{number}", method=f"X-{number}")
        client.open(f"/tasks/{number}", method=["BREW", "PROPFIND", "get", "G\u00c9T"][number % 4])
        client.get(f"/static/../../{number}%0a")
    after = scrape(client)

    assert set(samples(after)) - set(samples(before)) == set()
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules()} | {"unmatched"}
    assert label_values(after, "endpoint") - earlier <= endpoints
    assert label_values(after, "method") <= metrics.HTTP_METHODS | {"other"}
    assert "other" in label_values(after, "method")
    assert label_values(after, "status", "studio_http_") <= metrics.HTTP_STATUSES | {"other"}


@pytest.mark.parametrize("status, label", [(200, "200"), (404, "404"), (418, "418"), (299, "other"),
                                           (999, "other"), (0, "other")])
def test_a_status_is_a_label_only_when_it_is_a_registered_http_status(status, label) -> None:
    assert metrics.status_label(status) == label


def test_operations_and_models_outside_the_registries_are_counted_as_other(tmp_path) -> None:
    client = make_app(tmp_path, STUDIO_METRICS_TOKEN=TOKEN).test_client()
    before = scrape(client)

    for number in range(20):
        metrics.task_created(f"made_up_{number}", f"model_{number}")
        metrics.task_finished("remove_background", f"model_{number}", "failed", 1.0)
        metrics.inference_seconds(f"made_up_{number}", "u2netp", 0.5)
        metrics.job_retried(f"made_up_{number}")
    after = scrape(client)

    created = {"operation": "other", "model": "other"}
    finished = {"operation": "remove_background", "model": "other", "status": "failed"}
    assert value(after, "studio_tasks_created_total", **created) - value(before, "studio_tasks_created_total",
                                                                         **created) == 20
    assert value(after, "studio_tasks_finished_total", **finished) - value(before, "studio_tasks_finished_total",
                                                                           **finished) == 20
    made_up = [label for label in label_values(after, "operation") | label_values(after, "model")
               if label.startswith(("made_up", "model_"))]
    assert made_up == []


def test_metrics_reads_the_queue_and_the_workers_when_scraped(redis_connection, tmp_path) -> None:
    client = make_app(tmp_path, STUDIO_METRICS_TOKEN=TOKEN).test_client()
    queue = Queue("default", connection=redis_connection)
    jobs = [queue.enqueue("os.getpid") for _ in range(3)]
    # The first job has waited ten minutes (enqueued_at as RQ writes it).
    waited = datetime.now(timezone.utc) - timedelta(minutes=10)
    redis_connection.hset(jobs[0].key, "enqueued_at", utcformat(waited))
    Queue("photos-other", connection=redis_connection).enqueue("os.getpid")
    busy, idle = (Worker([queue], connection=redis_connection, name=name) for name in ("busy-one", "idle-one"))
    for worker, state in ((busy, "busy"), (idle, "idle")):
        worker.register_birth()
        worker.set_state(state)

    text = scrape(client)

    assert value(text, "studio_queue_jobs", queue="default") == 3
    assert value(text, "studio_queue_jobs", queue="photos-other") == 1
    assert 600 <= value(text, "studio_queue_oldest_job_age_seconds", queue="default") < 3600
    assert value(text, "studio_workers_alive") == 2 and value(text, "studio_workers_busy") == 1
    assert {value(text, "studio_dependency_up", dependency=name) for name in ("database", "redis", "storage")} == {1}
    assert "sqs" not in label_values(text, "dependency")  # not the queue here: not checked


@pytest.fixture
def sqs_endpoint(s3_endpoint, monkeypatch):
    """Return moto's SQS endpoint, for the app's boto3 clients too; nothing read from SQS before is remembered."""
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", s3_endpoint)
    sqs_state.forget()
    yield s3_endpoint
    sqs_state.forget()


def test_on_sqs_a_scrape_reads_the_queue_and_its_dead_letter_queue(
        redis_connection, tmp_path, sqs_endpoint, monkeypatch) -> None:
    queues = make_queues(sqs_endpoint, max_receive_count=3, visibility=300, fifo=False)
    for number in range(4):  # the last one is delayed, the first received (in flight): two wait
        queues.client.send_message(QueueUrl=queues.url, MessageBody=f"{number}",
                                   **({"DelaySeconds": 600} if number == 3 else {}))
    assert len(queues.client.receive_message(QueueUrl=queues.url, MaxNumberOfMessages=1)["Messages"]) == 1
    queues.client.send_message(QueueUrl=queues.dead_letter_url, MessageBody="failed every attempt")
    app = make_app(tmp_path, STUDIO_METRICS_TOKEN=TOKEN, STUDIO_QUEUE_BACKEND="sqs", STUDIO_SQS_QUEUE_URL=queues.url)
    with app.app_context():  # SQS does not say its oldest message's age: the oldest waiting task's is reported
        db.session.add(Task(user_id=1, operation="remove_background", status=TaskStatus.PENDING.value, model="u2netp",
                            input_key="inputs/x.png", input_content_type="image/png",
                            created_at=utcnow() - timedelta(minutes=10)))
        db.session.commit()
    reads = []
    monkeypatch.setattr(sqs_state, "CACHE_SECONDS", 3600.0)
    monkeypatch.setattr(sqs_state, "read_state", lambda url, read=sqs_state.read_state: reads.append(url) or read(url))
    client = app.test_client()

    text = scrape(client)

    name, dead = queues.url.rsplit("/", 1)[1], queues.dead_letter_url.rsplit("/", 1)[1]
    assert value(text, "studio_dependency_up", dependency="sqs") == 1
    assert [value(text, family, queue=name) for family in (
        "studio_queue_jobs", "studio_queue_in_flight_jobs", "studio_queue_delayed_jobs")] == [2, 1, 1]
    assert value(text, "studio_queue_dead_letter_jobs", queue=name, dead_letter_queue=dead) == 1
    assert 600 <= value(text, "studio_queue_oldest_job_age_seconds", queue=name) < 3600
    assert "default" in label_values(text, "queue", "studio_queue_jobs")  # RQ's queue of the periodic jobs
    # Scrapes and probes within the cache's time share one read of SQS.
    for _ in range(3):
        scrape(client)
        assert client.get("/readyz").get_json()["checks"]["sqs"]["status"] == "ok"
    assert reads == [queues.url]


def test_on_sqs_a_queue_without_a_redrive_policy_has_no_dead_letter_gauge(
        redis_connection, tmp_path, sqs_endpoint) -> None:
    import boto3

    url = boto3.client("sqs", endpoint_url=sqs_endpoint, region_name="us-east-1").create_queue(
        QueueName="studio-without-redrive")["QueueUrl"]
    app = make_app(tmp_path, STUDIO_METRICS_TOKEN=TOKEN, STUDIO_QUEUE_BACKEND="sqs", STUDIO_SQS_QUEUE_URL=url)

    text = scrape(app.test_client())

    families = {family.name for family in text_string_to_metric_families(text)}
    assert value(text, "studio_dependency_up", dependency="sqs") == 1
    assert "studio_queue_in_flight_jobs" in families and "studio_queue_dead_letter_jobs" not in families
    assert ("studio_queue_oldest_job_age_seconds", frozenset({("queue", "studio-without-redrive")})) in samples(text)


def test_on_sqs_a_queue_that_does_not_answer_is_reported_down_and_left_out(
        redis_connection, tmp_path, sqs_endpoint, monkeypatch, caplog) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", f"http://127.0.0.1:{free_port()}")
    app = make_app(tmp_path, STUDIO_METRICS_TOKEN=TOKEN, STUDIO_QUEUE_BACKEND="sqs",
                   STUDIO_SQS_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/123456789012/studio-tasks.fifo")
    client = app.test_client()

    text = scrape(client)
    ready = client.get("/readyz")

    assert value(text, "studio_dependency_up", dependency="sqs") == 0
    assert value(text, "studio_dependency_up", dependency="redis") == 1
    families = {family.name for family in text_string_to_metric_families(text)}
    assert "studio_queue_in_flight_jobs" not in families and "studio_queue_dead_letter_jobs" not in families
    assert label_values(text, "queue", "studio_queue_jobs") == {"default", "default-slow"}  # RQ's still there
    assert ready.status_code == 503 and ready.get_json()["checks"]["sqs"]["status"] == "error"
    assert "SQS: could not read the depth of studio-tasks.fifo" in caplog.text


def test_on_sqs_a_read_refused_for_want_of_permission_leaves_the_app_ready_without_the_depth_gauges(
        redis_connection, tmp_path, sqs_endpoint, monkeypatch) -> None:
    # The web app needs sqs:SendMessage to work; GetQueueAttributes only feeds the metrics and the overview.
    def refused(queue_url: str) -> None:
        raise ClientError({"Error": {"Code": "AccessDenied", "Message": "not authorized"}}, "GetQueueAttributes")

    monkeypatch.setattr(sqs_state, "read_state", refused)
    app = make_app(tmp_path, STUDIO_METRICS_TOKEN=TOKEN, STUDIO_QUEUE_BACKEND="sqs",
                   STUDIO_SQS_QUEUE_URL="https://sqs.us-east-1.amazonaws.com/123456789012/studio-denied.fifo")
    client = app.test_client()

    ready = client.get("/readyz")
    text = scrape(client)

    assert ready.status_code == 200 and ready.get_json()["checks"]["sqs"]["status"] == "ok"
    assert value(text, "studio_dependency_up", dependency="sqs") == 1  # it answered
    families = {family.name for family in text_string_to_metric_families(text)}
    assert "studio_queue_in_flight_jobs" not in families  # what it refused to say is left out


def test_a_scrape_reports_at_most_so_many_queues_and_always_the_configured_ones(redis_connection,
                                                                                tmp_path) -> None:
    client = make_app(tmp_path, STUDIO_METRICS_TOKEN=TOKEN, STUDIO_QUEUE="zz-configured").test_client()
    for number in range(metrics_state.MAX_QUEUES + 10):
        Queue(f"made-{number:03}", connection=redis_connection).enqueue("os.getpid")

    queues = label_values(scrape(client), "queue", "studio_queue_jobs")

    assert len(queues) == metrics_state.MAX_QUEUES and {"zz-configured", "zz-configured-slow"} <= set(queues)


def test_a_scrape_reports_redis_down_and_leaves_out_what_it_cannot_read(tmp_path) -> None:
    app = make_app(tmp_path, STUDIO_METRICS_TOKEN=TOKEN, REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    client = app.test_client()

    text = scrape(client)

    assert value(text, "studio_dependency_up", dependency="redis") == 0
    assert value(text, "studio_dependency_up", dependency="database") == 1
    families = {family.name for family in text_string_to_metric_families(text)}
    assert "studio_queue_jobs" not in families and "studio_workers_alive" not in families


def test_prepare_directory_empties_only_the_metric_files(tmp_path) -> None:
    folder = tmp_path / "metrics"
    folder.mkdir()
    for name in ("counter_12.db", "histogram_horse-of-7.db", "gauge_livesum_3.db", "notes.txt", "backup.db.old"):
        (folder / name).write_text("x")

    metrics.prepare_directory(folder)
    metrics.prepare_directory(tmp_path / "new" / "folder")

    assert sorted(path.name for path in folder.iterdir()) == ["backup.db.old", "notes.txt"]
    assert (tmp_path / "new" / "folder").is_dir()


def test_the_worker_exporter_answers_only_the_token(tmp_path) -> None:
    registry = CollectorRegistry()
    Counter("exported_things", "Things.", registry=registry).inc(4)
    port = free_port()
    server = metrics.serve(registry, TOKEN, port, host="127.0.0.1")
    try:
        def get(path: str, headers: dict[str, str]) -> tuple[int, str]:
            request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers)
            try:
                with urllib.request.urlopen(request, timeout=10) as response:
                    return response.status, response.read().decode()
            except urllib.error.HTTPError as error:
                return error.code, error.read().decode()

        assert get("/metrics", {})[0] == 401
        assert get("/metrics", {"Authorization": "Bearer nope"})[0] == 401
        assert get("/other", AUTHORIZED)[0] == 404
        status, body = get("/metrics", AUTHORIZED)
        assert status == 200 and value(body, "exported_things_total") == 4
    finally:
        server.shutdown()
        server.server_close()


def test_a_worker_without_a_metrics_port_serves_nothing(tmp_path) -> None:
    app = make_app(tmp_path, STUDIO_METRICS_TOKEN=TOKEN, STUDIO_WORKER_METRICS_PORT=0)
    assert metrics.init_worker(app) is None


HORSES = textwrap.dedent("""
    import os, sys
    os.environ["STUDIO_METRICS_DIR"] = sys.argv[1]
    from studio import metrics, metrics_state
    metrics.task_created("remove_background", "u2netp")  # the worker itself counts once
    for _ in range(3):
        pid = os.fork()
        if pid == 0:
            metrics.work_horse_started()
            metrics.task_finished("remove_background", "u2netp", "completed", 0.5)
            os._exit(0)
        os.waitpid(pid, 0)
""")


def test_the_horses_of_a_worker_share_one_set_of_files(tmp_path) -> None:
    folder = tmp_path / "metrics"
    subprocess.run([sys.executable, "-c", HORSES, str(folder)], cwd=ROOT, check=True, timeout=120,
                   env=studio_environment(tmp_path))
    registry = CollectorRegistry()
    metrics.multiprocess.MultiProcessCollector(registry, path=str(folder))

    text = generate_latest(registry).decode()

    names = sorted(path.name for path in folder.iterdir())
    horse_files = [name for name in names if "horse-of-" in name]
    # Three horses, one set of files (a counter and a histogram), and every count kept.
    assert len(horse_files) == 2, names
    assert value(text, "studio_tasks_finished_total", operation="remove_background", model="u2netp",
                 status="completed") == 3
    assert value(text, "studio_job_duration_seconds_count", operation="remove_background", model="u2netp") == 3
    assert value(text, "studio_tasks_created_total", operation="remove_background", model="u2netp") == 1


def hold_a_worker(gunicorn: Gunicorn) -> socket.socket:
    """Connect and send half a request: one sync worker waits for the rest, the others get the next requests."""
    held = socket.create_connection(("127.0.0.1", gunicorn.port), timeout=30)
    held.sendall(b"GET /livez HTTP/1.1\r\nHost: localhost\r\n")
    return held


@pytest.mark.integration
def test_counts_add_up_across_gunicorn_workers_and_work_horses(redis_connection, tmp_path: Path) -> None:
    folder = tmp_path / "metrics"
    env = studio_environment(tmp_path, STUDIO_METRICS_DIR=str(folder), STUDIO_METRICS_TOKEN=TOKEN,
                             STUDIO_QUEUE="metrics-test")
    # The folder as a previous run left it: emptied when gunicorn starts.
    folder.mkdir()
    (folder / "counter_99999.db").write_bytes(Path(ROOT / "wsgi.py").read_bytes())
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=300)
    gunicorn = Gunicorn(env, tmp_path / "gunicorn.log", "--workers", "2", "--threads", "1")
    try:
        gunicorn.wait_until_serving()
        before = gunicorn.get("/metrics", AUTHORIZED)[2].decode()
        held = hold_a_worker(gunicorn)
        for _ in range(5):
            assert gunicorn.get("/livez")[0] == 200
        held.sendall(b"\r\n")
        assert held.recv(4096).startswith(b"HTTP/1.1 200")
        held.close()
        queue = Queue("metrics-test", connection=redis_connection)
        for seconds in (1.0, 2.0):
            queue.enqueue("tests.deploy.observed_jobs.finish_a_task", "remove_background", "u2netp", seconds)
        worker = run_burst_worker(env, tmp_path, "metrics-test")
        assert worker.returncode == 0, worker.stderr[-3000:]

        status, _, body = gunicorn.get("/metrics", AUTHORIZED)
    finally:
        gunicorn.stop()

    assert status == 200
    after = body.decode()
    livez = {"endpoint": "health.livez", "method": "GET", "status": "200"}
    # Six requests, one held by each of the two processes: both counted, in one sum.
    served = value(after, "studio_http_requests_total", **livez) - value(before, "studio_http_requests_total", **livez)
    assert served == 6
    web_pids = set(re.findall(r"Booting worker with pid: (\d+)", gunicorn.output()))
    counted_by = {path.stem.split("_", 1)[1] for path in folder.glob("counter_*.db")}
    assert len(web_pids) == 2 and web_pids <= counted_by, (web_pids, counted_by)
    assert "99999" not in counted_by
    # The work horses' counts, added to the web's.
    assert value(after, "studio_tasks_finished_total", operation="remove_background", model="u2netp",
                 status="completed") == 2
    assert value(after, "studio_job_duration_seconds_sum", operation="remove_background", model="u2netp") == 3.0
    assert value(after, "studio_inference_duration_seconds_count", operation="remove_background", model="u2netp") == 2


def test_real_uploads_and_jobs_are_counted_by_operation_and_model(
        redis_connection, tmp_path: Path, photos_dir: Path) -> None:
    import requests

    folder = tmp_path / "metrics"
    env = studio_environment(tmp_path, STUDIO_METRICS_DIR=str(folder), STUDIO_METRICS_TOKEN=TOKEN,
                             STUDIO_QUEUE="metrics-real", STUDIO_LOG_LEVEL="warning",
                             STUDIO_MODEL_DIR=str(small_model_dir(tmp_path)))
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=300)
    subprocess.run([sys.executable, "-m", "flask", "--app", "wsgi", "studio", "create-user", "ada@example.com",
                    "--password-stdin"], cwd=ROOT, env=env, input="correct horse battery\n", text=True,
                   check=True, capture_output=True, timeout=120)
    gunicorn = Gunicorn(env, tmp_path / "gunicorn.log", "--workers", "2", "--threads", "1")
    try:
        gunicorn.wait_until_serving()
        token = requests.post(gunicorn.url("/api/v1/tokens"), timeout=30,
                              json={"email": "ada@example.com", "password": "correct horse battery"}).json()["token"]
        bearer = {"Authorization": f"Bearer {token}"}
        photo = (photos_dir / "rifle2.jpeg").read_bytes()
        for fields in ({}, {"operation": "mask_stats"}):
            answer = requests.post(gunicorn.url("/api/v1/tasks"), headers=bearer, data=fields, timeout=30,
                                   files={"image": ("rifle2.jpeg", photo, "image/jpeg")})
            assert answer.status_code == 202, answer.text
        refused = requests.post(gunicorn.url("/api/v1/tasks"), headers=bearer, data={"blur": "x"}, timeout=30,
                                files={"image": ("rifle2.jpeg", photo, "image/jpeg")})
        assert refused.status_code == 400
        worker = run_burst_worker(env, tmp_path, "metrics-real")
        assert worker.returncode == 0, worker.stderr[-3000:]
        status, _, body = gunicorn.get("/metrics", AUTHORIZED)
    finally:
        gunicorn.stop()
    assert status == 200
    text = body.decode()
    for operation in ("remove_background", "mask_stats"):
        labels = {"operation": operation, "model": "u2netp"}
        assert value(text, "studio_tasks_created_total", **labels) == 1, operation
        assert value(text, "studio_tasks_finished_total", status="completed", **labels) == 1, operation
        assert value(text, "studio_job_duration_seconds_count", **labels) == 1
        assert value(text, "studio_inference_duration_seconds_count", **labels) == 1
    assert value(text, "studio_uploads_refused_total", reason="invalid_option") == 1
