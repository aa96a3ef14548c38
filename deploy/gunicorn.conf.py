"""gunicorn's settings for the web app: `gunicorn -c deploy/gunicorn.conf.py --bind ADDRESS wsgi:app`.

Flags on the command line win over these (the launcher and the tests pass --bind, some --workers).

It listens beyond loopback only behind a proxy (STUDIO_PROXY_COUNT of 1 or more, as Compose and Kubernetes set):
each request holds one of gunicorn's threads while it is read, so a few clients sending their requests a byte at a
time would hold them all, and /livez with them. nginx (deploy/nginx.conf) reads each request whole before it passes
it on; without it, gunicorn refuses to start on such an address (docs/security.md, "Slow clients").
"""

import ipaddress
import os
import tempfile

# Every worker counts into one folder that /metrics adds up. Without STUDIO_METRICS_DIR, a private one: set before
# studio is imported below, since prometheus_client reads it when imported (and the workers inherit it).
if not os.environ.get("STUDIO_METRICS_DIR"):
    os.environ["STUDIO_METRICS_DIR"] = tempfile.mkdtemp(prefix="studio-metrics-")

from studio import logs, metrics, settings  # noqa: E402

_config = settings.from_environment()

# Web processes; WEB_CONCURRENCY is gunicorn's own variable (Heroku's convention).
workers = int(os.environ.get("WEB_CONCURRENCY") or 2)
# Requests are short (photos are queued, not processed here): threads cover slow clients and S3 calls.
threads = 4
# Five seconds is plenty to finish a request; a longer grace only delays a deploy.
graceful_timeout = 5
# gunicorn 27 opens a control socket in ~/.gunicorn by default; two studios on one machine would clash.
control_socket_disable = True
# No access log: the app logs each request itself, as JSON, with its request id and without its query string.
accesslog = None
logconfig_dict = logs.gunicorn_logconfig(_config["STUDIO_LOG_LEVEL"], _config["STUDIO_LOG_FORMAT"])


def exposed_addresses(addresses):
    """Return the (host, port) addresses among gunicorn's that other machines can reach (not loopback, not a Unix
    socket)."""
    exposed = []
    for address in addresses:
        if not isinstance(address, tuple):
            continue  # a Unix socket: a proxy on this machine
        host = address[0]
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False  # a host name: whatever it resolves to, it was not asked to be local
        if not loopback:
            exposed.append(address)
    return exposed


def on_starting(server):
    """Refuse to listen beyond loopback without a proxy in front; empty the metrics folder of an earlier run before
    any worker starts counting."""
    exposed = exposed_addresses(server.cfg.address)
    if exposed and _config["STUDIO_PROXY_COUNT"] < 1:
        server.log.error("refusing to listen on %s without a proxy in front: a client that sends its request slowly "
                         "holds a thread all the while. Put nginx in front (deploy/nginx.conf) and set "
                         "STUDIO_PROXY_COUNT=1, or bind 127.0.0.1",
                         ", ".join(f"{host}:{port}" for host, port in exposed))
        raise SystemExit(1)
    metrics.prepare_directory(os.environ["STUDIO_METRICS_DIR"])


def child_exit(server, worker):
    """Drop a dead worker's live gauges; its counts stay in the sums."""
    metrics.mark_process_dead(server, worker)
