"""Retention: delete tasks, with their photos and results, once they are older than STUDIO_RETENTION_DAYS."""

from __future__ import annotations

import logging
from datetime import timedelta

from flask import current_app

from jobs.context import app_context
from studio.auth.sessions import purge_expired_revocations
from studio.batches.service import delete_empty_batches_before
from studio.extensions import db
from studio.models import utcnow
from studio.tasks.service import delete_tasks_created_before

logger = logging.getLogger(__name__)


def purge_expired_tasks() -> int:
    """Delete the tasks created more than STUDIO_RETENTION_DAYS days ago (0 keeps everything); return how many.

    Batches of that age go once their tasks have; sign-out records whose cookies have expired anyway go too,
    whatever the retention.
    """
    with app_context():
        try:
            revocations = purge_expired_revocations()
            db.session.commit()
            if revocations:
                logger.info("retention: deleted %s expired session revocations", revocations)
            days = current_app.config["STUDIO_RETENTION_DAYS"]
            if days <= 0:
                logger.info("retention is off (STUDIO_RETENTION_DAYS=%s): nothing deleted", days)
                return 0
            cutoff = utcnow() - timedelta(days=days)
            deleted = delete_tasks_created_before(cutoff)
            batches = delete_empty_batches_before(cutoff)
            logger.info("retention: deleted %s tasks and %s batches older than %s days", deleted, batches, days)
            return deleted
        finally:
            db.session.remove()
