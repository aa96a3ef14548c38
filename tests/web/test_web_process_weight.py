"""Web processes never import torch: create_app, the pages, the API and its generated document run without it."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
from studio import create_app
app = create_app({"TESTING": True, "SECRET_KEY": "x", "SQLALCHEMY_DATABASE_URI": "sqlite://",
                  "RATELIMIT_ENABLED": False})
client = app.test_client()
statuses = [client.get(path).status_code for path in ("/", "/login", "/api/v1/openapi.json")]
print(statuses, "torch" in sys.modules, "ml.batch" in sys.modules)
"""


def test_the_web_app_serves_without_importing_torch():
    result = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True, check=True,
                            env={"STUDIO_LOG_LEVEL": "error", "PATH": "/usr/bin:/bin"})
    assert result.stdout.strip().splitlines()[-1] == "[200, 200, 200] False False", result.stdout + result.stderr
