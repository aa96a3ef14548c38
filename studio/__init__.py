"""Photo Studio: the Flask application factory.

Importing the package costs nothing: the web app's modules (Flask, SQLAlchemy, the pages, the API) are imported by
create_app, so `python -m studio` and the processes that only read studio.settings never load them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from flask import Flask


def _secret_key(instance_dir: Path) -> str:
    """Return the secret key kept in the instance folder, creating it once for a laptop run."""
    path = instance_dir / "secret_key"
    instance_dir.mkdir(parents=True, exist_ok=True)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(descriptor, "w") as handle:
        handle.write(os.urandom(32).hex())
    return path.read_text().strip()


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """Create and configure the Photo Studio app."""
    from flask import Flask

    from studio import admin, api, auth, cli, dashboard, errors, health, logs, metrics, removebg, security, settings
    from studio.extensions import csrf, db, limiter, login_manager, migrate
    from studio.json_bodies import BoundedJSONProvider
    from studio.batches import views as batch_views
    from studio.tasks import bulk_views, views as task_views

    root = settings.PROJECT_ROOT
    app = Flask(
        __name__,
        instance_path=str(settings.INSTANCE_DIR),
        template_folder=str(root / "templates"),
        static_folder=str(root / "static"),
    )
    app.json = BoundedJSONProvider(app)
    app.config.from_mapping(settings.from_environment())
    if test_config:
        app.config.from_mapping(test_config)
    if not app.config["SECRET_KEY"]:
        app.config["SECRET_KEY"] = _secret_key(Path(app.instance_path))

    logs.init_app(app)  # first: its request id and the request timer must be set before any other hook runs
    metrics.init_app(app)
    db.init_app(app)
    migrate.init_app(app, db, directory=str(root / "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    security.init_app(app)  # before the limiter: it points the limiter's storage at Redis
    limiter.init_app(app)
    errors.init_app(app)
    app.register_blueprint(auth.bp)
    app.register_blueprint(task_views.bp)
    app.register_blueprint(bulk_views.bp)
    app.register_blueprint(batch_views.bp)
    app.register_blueprint(api.bp)
    app.register_blueprint(removebg.bp)
    cli.init_app(app)
    app.register_blueprint(health.bp)
    dashboard.init_app(app)
    admin.init_app(app)
    return app
