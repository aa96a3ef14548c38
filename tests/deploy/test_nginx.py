"""deploy/nginx.conf in a real nginx (Debian's package) in front of the app: config valid, big uploads refused."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path
from typing import Iterator

import pytest
from flask import Flask, jsonify, request
from werkzeug.serving import make_server

from studio import settings
from tests.support.services import require
from tests.support.network import free_port
from tests.support.deploy import make_app

pytestmark = pytest.mark.integration

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
UPLOAD_LIMIT = settings.from_environment({})["MAX_CONTENT_LENGTH"]


def render(tmp_path: Path, upstream: str, listen_port: int) -> Path:
    """Render deploy/nginx.conf as the nginx image does, in a main config that runs unprivileged in tmp_path."""
    server = (settings.PROJECT_ROOT / "deploy" / "nginx.conf").read_text()
    server = server.replace("${STUDIO_MAX_UPLOAD_BYTES}", str(UPLOAD_LIMIT))
    server = server.replace("server web:8000;", f"server {upstream};")
    server = server.replace("listen 80 default_server;", f"listen 127.0.0.1:{listen_port} default_server;")
    (tmp_path / "studio.conf").write_text(server)
    main = tmp_path / "nginx.conf"
    # Started by root (CI containers), nginx's workers would run as nobody and could not write into tmp_path.
    user = "user root;" if os.geteuid() == 0 else ""
    main.write_text(f"""
{user}
daemon off;
worker_processes 1;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
events {{ worker_connections 64; }}
http {{
    access_log {tmp_path}/access.log;
    client_body_temp_path {tmp_path}/client_body;
    proxy_temp_path {tmp_path}/proxy;
    fastcgi_temp_path {tmp_path}/fastcgi;
    uwsgi_temp_path {tmp_path}/uwsgi;
    scgi_temp_path {tmp_path}/scgi;
    include {tmp_path}/studio.conf;
}}
""")
    return main


@pytest.fixture
def nginx_available() -> None:
    """Skip (fail in CI) without nginx: apt-get install nginx-light."""
    require(Path(NGINX).is_file(), "nginx is not installed (apt-get install -y nginx-light)")


def echo_app(tmp_path: Path) -> Flask:
    """Return the studio app with one test route that reports what the proxy passed on."""
    app = make_app(tmp_path, create_schema=False)

    @app.post("/_test/echo")
    def echo():
        return jsonify(
            length=len(request.get_data()),
            forwarded_for=request.headers.get("X-Forwarded-For"),
            forwarded_proto=request.headers.get("X-Forwarded-Proto"),
        )

    app.config["WTF_CSRF_ENABLED"] = False
    return app


@pytest.fixture
def proxied(tmp_path: Path, nginx_available: None) -> Iterator[int]:
    """Run the app on a local port and nginx in front of it; return nginx's port."""
    app_port, nginx_port = free_port(), free_port()
    server = make_server("127.0.0.1", app_port, echo_app(tmp_path), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    config = render(tmp_path, f"127.0.0.1:{app_port}", nginx_port)
    nginx = subprocess.Popen([NGINX, "-p", str(tmp_path), "-c", str(config), "-e", str(tmp_path / "error.log")])
    try:
        wait_for_port(nginx_port, nginx)
        yield nginx_port
    finally:
        nginx.terminate()
        nginx.wait(timeout=30)
        server.shutdown()
        thread.join()


def wait_for_port(port: int, process: subprocess.Popen) -> None:
    """Wait until something accepts connections on the port, failing if the process exits first."""
    for _ in range(300):
        assert process.poll() is None, "nginx exited during start-up"
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=1).connect()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"nothing listens on port {port}")


def post(port: int, path: str, body_size: int, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """POST body_size bytes, tolerating a proxy that stops reading early; return the status and body."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    connection.putrequest("POST", path)
    connection.putheader("Content-Length", str(body_size))
    connection.putheader("Content-Type", "application/octet-stream")
    for name, value in (headers or {}).items():
        connection.putheader(name, value)
    connection.endheaders()
    chunk = b"\0" * (1 << 20)
    try:
        for start in range(0, body_size, len(chunk)):
            connection.send(chunk[: body_size - start])
    except (BrokenPipeError, ConnectionResetError):
        pass
    response = connection.getresponse()
    return response.status, response.read()


def test_nginx_accepts_the_configuration(tmp_path: Path, nginx_available: None) -> None:
    config = render(tmp_path, "127.0.0.1:8000", free_port())

    result = subprocess.run([NGINX, "-t", "-p", str(tmp_path), "-c", str(config), "-e", str(tmp_path / "error.log")],
                            capture_output=True, text=True)

    assert result.returncode == 0, result.stderr


def test_nginx_refuses_a_50_mb_upload_itself(proxied: int) -> None:
    status, body = post(proxied, "/_test/echo", 50 * 1024 * 1024)

    assert status == 413
    assert b"nginx" in body


def test_nginx_passes_an_upload_under_the_limit_with_the_client_address(proxied: int) -> None:
    # 5 MiB: over nginx's own 1 MiB default, so this passes only because the configured limit applies.
    status, body = post(proxied, "/_test/echo", 5 * 1024 * 1024, {"X-Forwarded-For": "203.0.113.9"})

    assert status == 200
    echoed = json.loads(body)
    assert echoed["length"] == 5 * 1024 * 1024
    # A client cannot forge its address: nginx replaces the header with the address it saw.
    assert echoed["forwarded_for"] == "127.0.0.1"
    assert echoed["forwarded_proto"] == "http"


def test_healthz_answers_through_nginx(proxied: int, redis_connection) -> None:
    connection = http.client.HTTPConnection("127.0.0.1", proxied, timeout=30)
    connection.request("GET", "/healthz")
    response = connection.getresponse()

    assert response.status == 200
    assert b'"status":"ok"' in response.read().replace(b" ", b"")
