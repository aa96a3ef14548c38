"""One task lifecycle: each transition is one guarded UPDATE in studio/tasks/lifecycle.py, nothing else writes a
task's status, and the reconciler finds lost tasks however long the backlog."""

from __future__ import annotations

import ast
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pytest
from rq.job import Job

from jobs import maintenance
from jobs import process_image as job_module
from jobs.progress import PROGRESS_INTERVAL_SECONDS
from ml.runner import EncodedOutput
from studio.extensions import db
from studio.models import Task, TaskStatus, utcnow
from studio.queue import get_redis
from studio.tasks import lifecycle
from studio.tasks.lifecycle import StoredOutput
from tests.support.studio import load_task, run_worker, upload

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
LIFECYCLE = ROOT / "studio" / "tasks" / "lifecycle.py"


def _status_writes(path: Path) -> list[str]:
    """Return the places in a module that write a task's status: `x.status = ...`, `status=` given to a Task or to
    an UPDATE's values()."""
    tree, found = ast.parse(path.read_text()), []
    for node in ast.walk(tree):
        if isinstance(node, (ast.Assign, ast.AugAssign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            targets = [element for target in targets
                       for element in (target.elts if isinstance(target, ast.Tuple) else [target])]
            # `self.status` is an exception's HTTP status; a task is never `self` outside the model.
            found += [f"{path.name}:{node.lineno}" for target in targets
                      if isinstance(target, ast.Attribute) and target.attr == "status"
                      and not (isinstance(target.value, ast.Name) and target.value.id == "self")]
        if isinstance(node, ast.Call):
            called = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", "")
            if called in ("values", "Task", "_move") and any(keyword.arg == "status" for keyword in node.keywords):
                found.append(f"{path.name}:{node.lineno}")
    return found


def test_nothing_but_the_lifecycle_writes_a_tasks_status():
    modules = [path for folder in ("studio", "jobs") for path in (ROOT / folder).rglob("*.py")] + \
        [ROOT / "rq_worker.py"]
    writers = {str(path.relative_to(ROOT)): _status_writes(path) for path in modules if path != LIFECYCLE}
    assert {path: lines for path, lines in writers.items() if lines} == {}
    assert len(_status_writes(LIFECYCLE)) >= 5  # the check itself sees writes where there are some


@pytest.fixture
def task_id(app, user) -> str:
    with app.app_context():
        task = Task(id=str(uuid.uuid4()), user_id=user.id, operation="remove_background", model="u2netp",
                    options={}, input_key="inputs/x.png", input_content_type="image/png")
        lifecycle.created(task)
        return task.id


def _status(app, task_id: str) -> str:
    return load_task(app, task_id).status


def test_each_transition_moves_only_from_the_statuses_it_may_leave(app, task_id):
    output = StoredOutput("results/x.png", "image/png", 10)
    with app.app_context():
        assert lifecycle.completed(task_id, 1, {"result": output}) is False  # not started
        assert lifecycle.progressed(task_id, 50) is False
        started = lifecycle.started(task_id)
        assert (started.status, started.attempts) == ("PROCESSING", 1)
        assert lifecycle.progressed(task_id, 150, "x" * 500) is True
        assert (load_task(app, task_id).progress, len(load_task(app, task_id).stage)) == (99, 120)
        assert lifecycle.released(task_id) is True
        assert (_status(app, task_id), load_task(app, task_id).attempts) == ("PENDING", 0)
        assert lifecycle.started(task_id).attempts == 1
        assert lifecycle.completed(task_id, load_task(app, task_id).user_id, {"result": output}) is True
        # Finished: nothing moves it any more.
        assert lifecycle.failed(task_id, "late") is False
        assert lifecycle.cancelled(task_id) is False
        assert lifecycle.started(task_id) is None
        assert lifecycle.released(task_id) is False
    task = load_task(app, task_id)
    assert (task.status, task.progress, task.stage, task.error) == ("COMPLETED", 100, None, None)


def test_a_cancelled_task_is_never_started_completed_or_failed(app, task_id):
    with app.app_context():
        assert lifecycle.cancelled(task_id, "Cancelled by its owner.") is True
        assert lifecycle.started(task_id) is None
        assert lifecycle.completed(task_id, 1, {"result": StoredOutput("k", "image/png", 1)}) is False
        assert lifecycle.failed(task_id, "late") is False
    task = load_task(app, task_id)
    assert (task.status, task.error) == ("CANCELLED", "Cancelled by its owner.") and task.finished_at


def test_the_reconciler_takes_over_only_a_task_whose_heartbeat_went_quiet(app, task_id):
    with app.app_context():
        lifecycle.started(task_id)
        assert lifecycle.taken_over(task_id, utcnow() - timedelta(seconds=60), retry=True) is False
        assert lifecycle.taken_over(task_id, utcnow() + timedelta(seconds=1), retry=False, reason="gone") is True
    assert (_status(app, task_id), load_task(app, task_id).error) == ("FAILED", "gone")


def test_cancelling_a_running_task_stops_its_job_at_the_next_progress_report(
        app, client, headers, photo_bytes, monkeypatch):
    reports = []

    def slow_operation(operation, data, options, *, progress, **kwargs):
        time.sleep(PROGRESS_INTERVAL_SECONDS)  # after the job's own first report ("cleaning the photo")
        progress(10, "first step")
        reports.append("first")
        client.post(f"/api/v1/tasks/{task_id}/cancel", headers=headers)
        time.sleep(PROGRESS_INTERVAL_SECONDS)  # the next report goes to the database, and finds it
        progress(60, "second step")
        reports.append("second")  # never reached: the task was cancelled
        return [EncodedOutput("result", b"\x89PNG", "image/png", ".png")]

    monkeypatch.setattr(job_module, "process", slow_operation)
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    run_worker(app)
    task = load_task(app, task_id)
    assert reports == ["first"]
    assert (task.status, task.outputs) == ("CANCELLED", {})
    assert client.post(f"/api/v1/tasks/{task_id}/cancel", headers=headers).status_code == 409


def test_cancelling_a_waiting_task_removes_its_job(app, client, headers, photo_bytes):
    task_id = upload(client, headers, photo_bytes("boat.jpg")).get_json()["id"]
    response = client.post(f"/api/v1/tasks/{task_id}/cancel", headers=headers)
    assert response.status_code == 200 and response.get_json()["status"] == "CANCELLED"
    with app.app_context():
        assert not Job.exists(task_id, connection=get_redis())


def test_the_reconciler_finds_a_lost_task_behind_a_backlog_larger_than_its_batch(
        app, client, headers, photo_bytes, monkeypatch):
    monkeypatch.setattr(maintenance, "BATCH_SIZE", 4)
    app.config["STUDIO_PENDING_GRACE_SECONDS"] = 0
    app.config["STUDIO_MAX_UNFINISHED_TASKS"] = 0
    ids = [upload(client, headers, photo_bytes("rifle2.jpeg")).get_json()["id"] for _ in range(11)]
    lost = ids[-1]  # the newest, behind ten queued ones: as if Redis had dropped its job
    with app.app_context():
        Job.fetch(lost, connection=get_redis()).delete()
    with app.app_context():
        counts = maintenance.reconcile_tasks()
        assert counts["requeued"] == 1
        assert Job.exists(lost, connection=get_redis())
        assert maintenance.reconcile_tasks()["requeued"] == 0
    assert {load_task(app, task_id).status for task_id in ids} == {TaskStatus.PENDING.value}
    with app.app_context():
        db.session.remove()
