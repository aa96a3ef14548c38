"""Flask extensions, created unbound here and bound to the app in create_app."""

import sqlite3

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from sqlalchemy import Engine, event
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    """Declarative base for every model."""


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
limiter = Limiter(key_func=get_remote_address)


@event.listens_for(Engine, "connect")
def _sqlite_write_ahead_log(connection, _record) -> None:
    """Run the embedded SQLite database in WAL mode, with synchronous=NORMAL.

    The web server and the workers write to one file at once: with a write-ahead log, readers do not wait for a
    writer, and a commit appends to the log with no fsync, where the default rollback journal makes each commit
    wait for two or three, holding up every worker between two photos (docs/production.md). A process that dies,
    killed or crashed, loses nothing committed; a power cut may lose the last moments' commits, as it may the files
    that local storage writes without fsync. Production runs PostgreSQL.
    """
    if isinstance(connection, sqlite3.Connection):
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()
