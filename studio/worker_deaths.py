"""Workers that died without stopping (SIGKILL, the OOM killer): recorded by their successor, shown on /admin.

A worker started under the name of one that died finds it still registered and takes its jobs over
(processes/rq_adapter.take_over); it records the death here, in Redis, for a day, so an administrator sees a worker
that keeps dying instead of a service that quietly restarts it.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass

from redis import Redis

_KEY = "studio:worker-deaths"
KEEP_SECONDS = 24 * 3600


@dataclass(frozen=True)
class WorkerDeath:
    """One worker process that died: its name, when its successor found it, the jobs it held."""

    name: str
    found_at: float
    job_ids: tuple[str, ...]


def record(connection: Redis, name: str, job_ids: list[str]) -> None:
    """Record that the worker of this name died holding these jobs; forget what is older than KEEP_SECONDS."""
    now = time.time()
    entry = json.dumps({"name": name, "at": now, "jobs": job_ids})
    with connection.pipeline() as pipeline:
        pipeline.zadd(_KEY, {entry: now})
        pipeline.zremrangebyscore(_KEY, 0, now - KEEP_SECONDS)
        pipeline.expire(_KEY, KEEP_SECONDS)
        pipeline.execute()


def recent(connection: Redis, seconds: float = KEEP_SECONDS) -> list[WorkerDeath]:
    """Return the deaths recorded in the last `seconds`, newest first."""
    entries = connection.zrevrangebyscore(_KEY, "+inf", time.time() - seconds)
    deaths = []
    for raw in entries:
        data = json.loads(raw)
        deaths.append(WorkerDeath(data["name"], data["at"], tuple(data["jobs"])))
    return deaths
