"""Helpers for the security tests: sign in through the real forms, build a URL for every route of the URL map,
snapshot all stored state."""

from __future__ import annotations

import hashlib
import io
import re
import uuid
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select
from werkzeug.routing import Rule

from studio.extensions import db
from studio.models import Task
from tests.support.studio import PASSWORD

CSRF_FIELD = re.compile(r'name="csrf_token" value="([^"]+)"')
STATE_CHANGING_METHODS = {"POST", "PUT", "PATCH", "DELETE"}
# Values for every URL argument the app knows. A route with an argument missing here fails `route_path`, so a new
# route has to be classified (and, for a task id, is then covered by the ownership test) before the suite passes.
TASK_ARGUMENTS = {"task_id"}
SAMPLE_ARGUMENTS: dict[str, Any] = {
    "token_id": 1,
    # A batch: another account's is a 404 on every batch route (tests/api/test_batches_api.py,
    # tests/web/test_web_batches.py); here an unknown one.
    "batch_id": "01a24a5d-0000-7000-8000-000000000000",
    # An account, on the admin dashboard's pages (administrators only: a 404 for everyone else).
    "user_id": 1,
    # An output of a task, or an operation: neither is a task id, so ownership comes from the task id.
    "name": "preview",
    "filename": "css/studio.css",
    "instance_number": 0,
    "job_id": "no-such-job",
    "queue_name": "studio-test",
    "registry_name": "failed",
    "per_page": 10,
    "order": "asc",
    "page": 1,
}


def routes(app: Flask) -> list[Rule]:
    """Return every rule of the URL map, in a stable order."""
    return sorted(app.url_map.iter_rules(), key=lambda rule: (rule.rule, rule.endpoint))


def methods(rule: Rule) -> list[str]:
    """Return the methods a rule really serves (HEAD and OPTIONS are Werkzeug's, not ours)."""
    return sorted(rule.methods - {"HEAD", "OPTIONS"})


def route_path(rule: Rule, task_id: str | None = None, **values: Any) -> str:
    """Return a concrete path for a rule; fail on an argument this test suite does not know."""
    unknown = rule.arguments - TASK_ARGUMENTS - set(SAMPLE_ARGUMENTS) - set(values)
    assert not unknown, (f"{rule.rule}: unknown URL argument(s) {sorted(unknown)}; "
                         "classify them in tests/support/security.py")
    arguments = {name: SAMPLE_ARGUMENTS[name] for name in rule.arguments if name in SAMPLE_ARGUMENTS}
    if "task_id" in rule.arguments:
        arguments["task_id"] = task_id or str(uuid.uuid4())
    arguments.update({name: value for name, value in values.items() if name in rule.arguments})
    return rule.build(arguments, append_unknown=False)[1]


def csrf_token(client: FlaskClient, path: str = "/login") -> str:
    """Return the CSRF token a page hands this client."""
    page = client.get(path)
    match = CSRF_FIELD.search(page.get_data(as_text=True))
    assert match, f"no csrf_token field on {path} ({page.status_code})"
    return match.group(1)


def login(client: FlaskClient, email: str, password: str = PASSWORD, **environ: Any):
    """Sign in through the real form (GET for the token, then POST)."""
    token = csrf_token(client, "/login")
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token},
                       environ_base=environ)


def session_cookie(client: FlaskClient) -> str | None:
    """Return the client's session cookie value, or None."""
    cookie = client.get_cookie("session", domain="studio.test")
    return cookie.value if cookie else None


def with_cookie(app: Flask, value: str) -> FlaskClient:
    """Return a new client that presents a copied session cookie, as a thief replaying it would."""
    client = app.test_client()
    client.set_cookie("session", value, domain="studio.test")
    return client


def signed_in(client: FlaskClient) -> bool:
    """Return True when the client's session is signed in (the account page answers instead of redirecting)."""
    response = client.get("/account")
    assert response.status_code in (200, 302), response.status_code
    return response.status_code == 200


def png_bytes(size: tuple[int, int] = (4, 3)) -> bytes:
    """Return a small real PNG."""
    buffer = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buffer, format="PNG")
    return buffer.getvalue()


# Written on every bearer request by design (token bookkeeping shown on the account page), not a state change.
IGNORED_COLUMNS = {("api_tokens", "last_used_at")}


def snapshot(app: Flask) -> dict[str, Any]:
    """Return every row of every table and a digest of every stored file, to compare before and after."""
    state: dict[str, Any] = {}
    with app.app_context():
        for table in db.metadata.sorted_tables:
            columns = [column for column in table.columns if (table.name, column.name) not in IGNORED_COLUMNS]
            rows = db.session.execute(select(*columns).order_by(*table.primary_key.columns)).all()
            state[table.name] = [tuple(row) for row in rows]
        db.session.remove()
    root = Path(app.config["STUDIO_STORAGE_DIR"])
    state["storage"] = {
        str(path.relative_to(root)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(root.rglob("*")) if path.is_file()
    }
    return state


def task_exists(app: Flask, task_id: str) -> bool:
    """Return True when the task row is still there."""
    with app.app_context():
        found = db.session.get(Task, task_id) is not None
        db.session.remove()
        return found
