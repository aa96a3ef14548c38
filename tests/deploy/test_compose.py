"""docker-compose.yml, the Dockerfile and deploy/nginx.conf, checked against what the app really reads."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from studio import settings
from tests.support.deploy import names_the_app_reads

ROOT = settings.PROJECT_ROOT
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]
APP_SERVICES = sorted(name for name, service in SERVICES.items() if "build" in service)
NGINX_TEMPLATE = (ROOT / "deploy" / "nginx.conf").read_text()

INTERPOLATION = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?::?[-?][^}]*)?\}")


def environment(service: dict) -> dict[str, str]:
    """Return a service's environment as a mapping."""
    value = service.get("environment") or {}
    if isinstance(value, list):
        return dict(item.split("=", 1) for item in value)
    return {name: str(setting) for name, setting in value.items()}


def test_the_settings_parser_finds_the_settings() -> None:
    names = names_the_app_reads()
    assert {"DATABASE_URL", "REDIS_URL", "SECRET_KEY", "STUDIO_MAX_UPLOAD_BYTES", "STUDIO_PROXY_COUNT",
            "STUDIO_SECURE_COOKIES", "STUDIO_S3_BUCKET", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"} <= names
    assert "STUDIO_NO_SUCH_SETTING" not in names


def test_web_worker_and_migrate_run_the_studio_image() -> None:
    assert APP_SERVICES == ["migrate", "quick-worker", "web", "webhooks", "worker"]
    assert "wsgi:app" in SERVICES["web"]["command"]
    assert SERVICES["worker"]["command"][-2:] == ["rq_worker.py", "--with-scheduler"]
    # A worker that upscales never hold: quick work starts while they run.
    assert SERVICES["quick-worker"]["command"][-2:] == ["rq_worker.py", "--quick-only"]
    # Webhook deliveries on a worker of their own, listening to their queue only.
    assert SERVICES["webhooks"]["command"][-2:] == ["rq_worker.py", "webhooks"]
    assert SERVICES["migrate"]["command"] == ["flask", "--app", "wsgi", "db", "upgrade"]


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_set_only_settings_the_app_reads(name: str) -> None:
    unknown = set(environment(SERVICES[name])) - names_the_app_reads()
    assert not unknown, f"{name} sets {sorted(unknown)}, which nothing in the app reads"


@pytest.mark.parametrize("name", APP_SERVICES)
def test_app_services_use_postgres_redis_and_s3_behind_one_proxy(name: str) -> None:
    env = environment(SERVICES[name])
    assert env["DATABASE_URL"].startswith("postgresql://") and env["DATABASE_URL"].endswith("@postgres:5432/studio")
    assert env["REDIS_URL"] == "redis://redis:6379/0"
    assert env["STUDIO_S3_ENDPOINT_URL"] == "http://minio:9000"
    assert env["STUDIO_S3_BUCKET"] == environment(SERVICES["createbucket"])["STUDIO_S3_BUCKET"]
    assert env["STUDIO_PROXY_COUNT"] == "1"


def test_no_secret_is_written_in_the_compose_file() -> None:
    for name, service in SERVICES.items():
        for key, value in environment(service).items():
            if re.search(r"SECRET|PASSWORD|ACCESS_KEY|ROOT_USER", key):
                required = INTERPOLATION.fullmatch(value)
                assert required and ":?" in value, f"{name}.{key} must come from a required variable"
    assert "${POSTGRES_PASSWORD:?" in environment(SERVICES["web"])["DATABASE_URL"]


def test_web_and_worker_start_after_the_migration_has_succeeded() -> None:
    for name in ("web", "worker", "quick-worker"):
        assert SERVICES[name]["depends_on"]["migrate"] == {"condition": "service_completed_successfully"}
        assert SERVICES[name]["depends_on"]["createbucket"] == {"condition": "service_completed_successfully"}
    assert SERVICES["migrate"]["depends_on"]["postgres"] == {"condition": "service_healthy"}


def test_redis_never_evicts_and_keeps_an_append_only_file() -> None:
    command = " ".join(SERVICES["redis"]["command"])
    assert "--maxmemory-policy noeviction" in command
    assert "--appendonly yes" in command


def test_nginx_limits_uploads_to_the_apps_limit() -> None:
    nginx = SERVICES["nginx"]
    assert "./deploy/nginx.conf:/etc/nginx/templates/default.conf.template:ro" in nginx["volumes"]
    assert re.search(r"^\s*client_max_body_size \$\{STUDIO_MAX_UPLOAD_BYTES\};", NGINX_TEMPLATE, re.MULTILINE)
    # The same expression, so the same value, in nginx and in the app; its default is the app's default.
    limit = environment(nginx)["STUDIO_MAX_UPLOAD_BYTES"]
    assert all(environment(SERVICES[name])["STUDIO_MAX_UPLOAD_BYTES"] == limit for name in APP_SERVICES)
    default = int(re.fullmatch(r"\$\{STUDIO_MAX_UPLOAD_BYTES:-(\d+)\}", limit).group(1))
    assert default == settings.from_environment({})["MAX_CONTENT_LENGTH"]


def test_every_variable_in_the_nginx_template_is_set_for_nginx() -> None:
    # The image's envsubst leaves unknown ${NAME}s alone, and nginx would then fail on them.
    assert set(INTERPOLATION.findall(NGINX_TEMPLATE)) <= set(environment(SERVICES["nginx"]))


def test_nginx_passes_the_client_address_and_scheme() -> None:
    assert "proxy_set_header X-Forwarded-For $remote_addr;" in NGINX_TEMPLATE
    assert "proxy_set_header X-Forwarded-Proto $scheme;" in NGINX_TEMPLATE
    assert re.search(r"server web:8000;", NGINX_TEMPLATE)


def test_the_image_is_slim_runs_as_a_user_and_carries_the_weights() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert dockerfile.startswith("#") and "FROM python:3.11-slim AS base" in dockerfile
    assert "python -m ml.weights install --model-dir /opt/studio/models" in dockerfile
    assert "STUDIO_MODEL_DIR=/opt/studio/models" in dockerfile
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    assert re.search(r"^USER studio$", final_stage, re.MULTILINE)


def test_the_image_leaves_out_secrets_and_local_state() -> None:
    ignored = set(Path(ROOT / ".dockerignore").read_text().split())
    assert {".env", ".git", ".venv", "instance"} <= ignored
