"""Workers that die, hang or are stopped mid-job: every task still ends COMPLETED, or FAILED with a readable reason.

Real `python rq_worker.py` processes on a PostgreSQL and a Redis of our own; STUDIO_FAULT_INJECTION (test-only,
jobs/faults.py) makes a job slow or makes its work horse exit at a chosen point, on the first attempt only.

Most tests run on each stack (the `stack` fixture, tests/plugins/processes.py): RQ, with a work horse forked per job
and with the jobs run in the worker's own process where both must hold, and SQS (STUDIO_QUEUE_BACKEND=sqs, moto's
server, whose worker always runs its jobs in its own process). Where the two recover differently (RQ's reconciler
finds an abandoned job; SQS hands the message out again after its visibility timeout) the test says so; what it
asserts of the task is the same. These run on RQ only, being about what SQS's worker does not have:
- a killed work horse (retried at once, killed twice, dead after storing its result): the SQS worker forks none;
- the reusing worker that starts afresh after STUDIO_WORKER_JOBS_PER_PROCESS jobs: RQ worker machinery
  (rq_worker.ReusingWorker; the SQS worker's is tested in test_sqs_worker.py);
- a second SIGTERM's cold shutdown, which puts the job back in RQ's queue: the SQS worker has none (SIGKILL ends
  it, and its message comes back);
- a worker started again under its name taking over its predecessor's job from RQ's registries: an SQS message
  belongs to no worker.
SQS's own (the dead-letter queue, the visibility heartbeat, the reconciler's re-send) are in test_sqs_worker.py.
"""

from __future__ import annotations

import signal
import time

import psutil
import pytest
from rq.job import Job, JobStatus

from jobs.maintenance import reconcile_tasks
from studio.queue import get_redis
from tests.support.processes import wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

HANG = "sleep=600"  # far longer than any bounded wait here: only a kill or a timeout ends it
# The job timeout of the timeout tests: a real photo after the hung one must finish within it on a busy machine.
TIMEOUT = 10

# Each stack, with both kinds of RQ worker (STUDIO_WORKER_JOBS_PER_PROCESS: a work horse forked per job, or the jobs
# run in the worker's own process); or each queue backend, RQ's worker as configured by default.
EVERY_STACK = pytest.mark.parametrize("stack", ["rq-fork", "rq-reuse", "sqs"], indirect=True)
EACH_BACKEND = pytest.mark.parametrize("stack", ["rq", "sqs"], indirect=True)
# RQ only: both kinds of worker, or a test of the work horse itself.
BOTH_MODES = pytest.mark.parametrize("jobs_per_process", ["1", "100"], ids=["fork", "reuse"])
FORK = {"STUDIO_WORKER_JOBS_PER_PROCESS": "1"}


def wait_until_sleeping(worker, studio, task_id: str) -> None:
    """Wait until the job of the task is inside its injected sleep (in the horse, or in the worker itself)."""
    studio.wait_for_status(task_id, "PROCESSING")
    wait_until(lambda: f"task {task_id}: fault injection: sleeping" in worker.output(), "the job sleeps",
               diagnostics=worker.output)


def gone(pid: int) -> bool:
    """Return True when the process has ended (a zombie waiting for its parent's wait() counts as ended)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_until_drained(studio) -> None:
    """Wait until the queue holds nothing more of the test's tasks (every SQS message deleted or dead-lettered)."""
    wait_until(lambda: studio.backlog() == 0, "the queue is empty", diagnostics=studio.logs)


@EACH_BACKEND
def test_a_batch_of_photos_completes_once_each_with_its_usage_counted_once(stack, photo):
    studio = stack.make_studio()
    task_ids = [studio.upload(photo) for _ in range(3)]

    studio.start_worker()

    for task_id in task_ids:
        task = studio.wait_for_status(task_id, "COMPLETED", "FAILED")
        assert (task.status, task.attempts) == ("COMPLETED", 1), task.error
    assert sorted(path.name for path in studio.result_files()) == sorted(f"{task_id}.png" for task_id in task_ids)
    wait_until_drained(studio)
    assert studio.usage_counts() == (3, 3)


@EVERY_STACK
def test_a_killed_worker_and_horse_leave_a_task_that_the_next_worker_completes(stack, photo):
    studio = stack.make_studio()
    first = studio.start_worker(STUDIO_FAULT_INJECTION=HANG)
    task_id = studio.upload(photo)
    wait_until_sleeping(first, studio, task_id)

    first.kill()

    if not stack.sqs:
        # RQ finds an abandoned job once its heartbeat lapses, but only when a worker starts or runs its
        # maintenance (an idle worker does so only when its blocking dequeue times out, every 405 s). The
        # reconciler runs the same check on every pass: here it alone, with no worker running, queues the job again.
        def requeued_by_the_reconciler() -> bool:
            reconcile_tasks()
            with studio.app.app_context():
                return Job.fetch(task_id, connection=get_redis()).get_status() == JobStatus.QUEUED

        wait_until(requeued_by_the_reconciler, "the reconciler queues the abandoned job again",
                   diagnostics=studio.logs)
        assert studio.status(task_id) == "PROCESSING"
    # On SQS the message itself comes back once its visibility timeout is over, no longer extended.

    studio.start_worker()
    task = studio.wait_for_status(task_id, "COMPLETED")
    assert (task.attempts, task.error) == (2, None)
    assert [path.name for path in studio.result_files()] == [f"{task_id}.png"]
    wait_until_drained(studio)
    assert studio.usage_counts() == (1, 1)


@EVERY_STACK
def test_a_killed_worker_on_the_last_attempt_fails_the_task_with_a_readable_reason(stack, photo):
    studio = stack.make_studio(STUDIO_JOB_RETRIES=0)
    first = studio.start_worker(STUDIO_FAULT_INJECTION=HANG)
    task_id = studio.upload(photo)
    wait_until_sleeping(first, studio, task_id)

    first.kill()
    studio.start_worker()

    # RQ: the reconciler's abandoned-job check fails it. SQS: no reconciler (its quiet-heartbeat pass would fail the
    # task in words of its own); the next worker gets the delivery past the last attempt and fails it.
    task = studio.wait_for_status(task_id, "FAILED", reconcile=not stack.sqs)
    assert task.error == "Processing failed after 1 attempt; the worker processing it stopped unexpectedly."
    assert studio.result_files() == []
    wait_until_drained(studio)


def test_a_killed_horse_is_retried_at_once_not_after_the_backoff(make_studio, photo):
    # A 10-minute backoff and no scheduler: only an immediate retry can complete the task within the wait.
    studio = make_studio(STUDIO_JOB_RETRY_INTERVALS=[600])
    worker = studio.start_worker(STUDIO_FAULT_INJECTION=HANG, **FORK)
    task_id = studio.upload(photo)
    studio.wait_for_status(task_id, "PROCESSING")

    worker.kill_horse()

    task = studio.wait_for_status(task_id, "COMPLETED")
    assert (task.attempts, task.error) == (2, None)
    assert "retrying at once" in worker.output()


@EVERY_STACK
def test_a_job_over_its_timeout_fails_in_bounded_time_and_the_worker_carries_on(stack, photo):
    # Retries allowed, and only the first attempt hangs: a timed-out job is failed all the same, never retried.
    studio = stack.make_studio(STUDIO_JOB_RETRIES=2, STUDIO_JOB_TIMEOUT=TIMEOUT)
    worker = studio.start_worker(STUDIO_FAULT_INJECTION=f"{HANG}@slow.jpeg")
    slow = studio.upload(photo, filename="slow.jpeg")
    studio.wait_for_status(slow, "PROCESSING")

    # The horse's own alarm stops the job at the timeout; the margin covers the failure callback.
    task = studio.wait_for_status(slow, "FAILED", timeout=TIMEOUT + 20)
    assert task.error == f"Processing failed after 1 attempt; it took longer than {TIMEOUT} seconds."

    after = studio.upload(photo)
    assert studio.wait_for_status(after, "COMPLETED").attempts == 1
    assert worker.exited() is None
    wait_until_drained(studio)  # nothing is left to run the timed-out photo again


@EVERY_STACK
def test_a_job_that_ignores_its_timeout_alarm_is_ended_at_its_hard_limit_and_the_worker_carries_on(stack, photo):
    studio = stack.make_studio(STUDIO_JOB_RETRIES=2, STUDIO_JOB_TIMEOUT=TIMEOUT)  # timed out: not retried all the same
    # As a job stuck in native code: the alarm that normally ends it at the timeout never gets through.
    worker = studio.start_worker(STUDIO_FAULT_INJECTION=f"ignore-timeout@slow.jpeg,{HANG}@slow.jpeg")
    slow = studio.upload(photo, filename="slow.jpeg")
    studio.wait_for_status(slow, "PROCESSING")
    time.sleep(TIMEOUT + 5)
    assert studio.status(slow) == "PROCESSING", studio.logs()  # past its timeout: the alarm was ignored
    assert "fault injection: blocking the timeout alarm" in studio.logs()

    # RQ's worker kills a horse still running 60 s past the timeout; a worker running the job in its own process
    # (RQ's reusing worker, SQS's) ends the attempt alike and starts afresh. The margin covers the failure handling.
    task = studio.wait_for_status(slow, "FAILED", timeout=TIMEOUT + 60 + 30)
    assert task.error == f"Processing failed after 1 attempt; it took longer than {TIMEOUT} seconds."

    after = studio.upload(photo)
    assert studio.wait_for_status(after, "COMPLETED").attempts == 1
    assert worker.exited() is None  # the same process all along, as its supervisor sees it
    if stack.name != "rq-fork":
        log = worker.log.read_text()
        assert f"job {slow} was stuck past its hard time limit: starting afresh" in log
        assert log.count("Listening on") == 2
    wait_until_drained(studio)  # the stuck photo's message is not handed out again


def test_a_horse_that_dies_after_storing_the_result_is_retried_onto_the_same_object(make_studio, photo):
    studio = make_studio()
    studio.start_worker(STUDIO_FAULT_INJECTION="after-store", **FORK)
    task_id = studio.upload(photo)

    task = studio.wait_for_status(task_id, "COMPLETED")

    assert "fault injection: exiting after storing the result" in studio.logs()
    assert (task.attempts, task.outputs["result"]["key"]) == (2, f"results/{task.user_id}/{task_id}.png")
    assert [path.name for path in studio.result_files()] == [f"{task_id}.png"]


@EACH_BACKEND
def test_a_running_job_keeps_its_heartbeat_fresh(stack, photo):
    studio = stack.make_studio(STUDIO_HEARTBEAT_SECONDS=1)
    studio.start_worker(STUDIO_FAULT_INJECTION="sleep=6")
    task_id = studio.upload(photo)
    started = studio.wait_for_status(task_id, "PROCESSING")

    # No progress is reported while the job sleeps (as in a long forward pass): only the heartbeat thread writes.
    def beat_without_progress():
        task = studio.task(task_id)
        assert (task.status, task.progress) == ("PROCESSING", 0), "the job moved on before a heartbeat"
        return task if (task.heartbeat_at - started.started_at).total_seconds() >= 2 else None

    wait_until(beat_without_progress, "the heartbeat advances while the job runs", diagnostics=studio.logs)
    assert studio.wait_for_status(task_id, "COMPLETED").attempts == 1


@EVERY_STACK
def test_sigterm_lets_the_current_job_finish_then_stops_the_worker(stack, photo):
    studio = stack.make_studio()
    worker = studio.start_worker(STUDIO_FAULT_INJECTION="sleep=3")
    task_id = studio.upload(photo)
    studio.wait_for_status(task_id, "PROCESSING")

    worker.terminate()

    assert wait_until(lambda: worker.exited() is not None, "the worker exits", diagnostics=worker.output)
    assert worker.exited() == 0, worker.output()
    task = studio.task(task_id)
    assert (task.status, task.attempts) == ("COMPLETED", 1)


@BOTH_MODES
def test_a_second_sigterm_stops_the_job_and_the_next_worker_runs_it_without_counting_it(make_studio, photo,
                                                                                        jobs_per_process):
    studio = make_studio()
    worker = studio.start_worker(STUDIO_FAULT_INJECTION=HANG, STUDIO_WORKER_JOBS_PER_PROCESS=jobs_per_process)
    task_id = studio.upload(photo)
    wait_until_sleeping(worker, studio, task_id)

    worker.terminate()

    # RQ ignores a second signal within a second of the first: repeat it until the cold shutdown begins.
    def cold() -> bool:
        if "cold shut down" not in worker.output():
            worker.process.send_signal(signal.SIGTERM)
            return False
        return True
    wait_until(cold, "a cold shutdown on the second SIGTERM", diagnostics=worker.output)
    wait_until(lambda: worker.exited() is not None, "the worker exits", diagnostics=worker.output)

    interrupted = studio.task(task_id)
    assert (interrupted.status, interrupted.attempts) == ("PENDING", 0)
    assert studio.queued_ids() == [task_id], studio.logs()

    studio.start_worker()
    task = studio.wait_for_status(task_id, "COMPLETED")
    assert (task.attempts, task.error) == (1, None)


def test_a_reusing_worker_runs_its_jobs_in_its_own_process_then_starts_afresh(make_studio, photo):
    studio = make_studio(STUDIO_HEARTBEAT_SECONDS=1)
    # Two jobs a process; the first sleeps past several heartbeat intervals (STUDIO_WORKER_MONITOR_SECONDS=1, a
    # 2 s grace): its heartbeats come from the worker's thread, or RQ would take the job for abandoned.
    worker = studio.start_worker(STUDIO_WORKER_JOBS_PER_PROCESS="2", STUDIO_FAULT_INJECTION="sleep=6@slow.jpeg")
    ids = [studio.upload(photo, filename="slow.jpeg")] + [studio.upload(photo) for _ in range(2)]
    wait_until_sleeping(worker, studio, ids[0])
    assert worker.horse_pid() is None  # no work horse: the job runs in the worker
    reconcile_tasks()  # RQ's abandoned-job check among the rest
    with studio.app.app_context():
        assert Job.fetch(ids[0], connection=get_redis()).get_status() == JobStatus.STARTED

    tasks = [studio.wait_for_status(task_id, "COMPLETED") for task_id in ids]

    assert [task.attempts for task in tasks] == [1, 1, 1]
    wait_until(lambda: worker.log.read_text().count("Listening on") == 2, "the worker starts afresh after 2 jobs",
               diagnostics=worker.output)
    log = worker.log.read_text()
    assert "ran 2 jobs in this process (STUDIO_WORKER_JOBS_PER_PROCESS): starting afresh" in log
    assert log.count("loading model u2netp") == 2  # the fresh process loads its models again
    assert worker.exited() is None  # the same process (pid) all along, as its supervisor sees it
    assert worker.horse_pid() is None
    assert [path.name for path in studio.result_files()] == sorted(f"{task_id}.png" for task_id in ids)


@BOTH_MODES
def test_a_worker_started_again_under_its_name_takes_over_its_killed_predecessors_job_at_once(
        make_studio, photo, jobs_per_process):
    # A 10-minute backoff and no scheduler: only an immediate retry can complete the task within the wait.
    studio = make_studio(STUDIO_JOB_RETRY_INTERVALS=[600])
    # RQ by itself would take the job for abandoned only after this grace, far past every wait here; no reconciler.
    env = dict(STUDIO_WORKER_HEARTBEAT_GRACE_SECONDS=600, STUDIO_WORKER_JOBS_PER_PROCESS=jobs_per_process)
    first = studio.start_worker(STUDIO_FAULT_INJECTION=HANG, **env)
    task_id = studio.upload(photo)
    wait_until_sleeping(first, studio, task_id)
    horse = first.horse_pid()

    first.kill_group()  # as the OOM killer or a lost container: no clean-up of any kind
    killed = time.monotonic()
    second = studio.start_worker(name=first.name, **env)

    task = studio.wait_for_status(task_id, "COMPLETED")
    print(f"recovered {time.monotonic() - killed:.1f} s after the kill ({jobs_per_process} jobs a process)")
    assert (task.attempts, task.error) == (2, None)
    assert "its previous process died without stopping" in second.output()
    # The retry finished cleanly: nothing of the dead worker's execution was left for its bookkeeping to trip on.
    wait_until(lambda: "Job OK" in second.output() or "Successfully completed" in second.output(),
               "RQ records the job's success", diagnostics=second.output)
    assert "not found in Redis" not in second.output()
    if horse is not None:  # the horse, in a process group of its own, died with its worker: it never ran on
        wait_until(lambda: gone(horse), "the horse dies with its worker", diagnostics=studio.logs)
    assert [path.name for path in studio.result_files()] == [f"{task_id}.png"]


@EVERY_STACK
def test_a_photo_that_kills_its_worker_twice_fails_with_a_reason_and_is_not_retried_again(stack, photo):
    studio = stack.make_studio(STUDIO_JOB_RETRIES=3)
    env = dict(STUDIO_FAULT_INJECTION="sleep-every-attempt=600")
    worker = studio.start_worker(**env)
    task_id = studio.upload(photo)
    for _ in range(2):
        wait_until_sleeping(worker, studio, task_id)
        worker.kill_group()
        # RQ: started under its name, the worker takes the job over at once. SQS: the message comes back to it.
        worker = studio.start_worker(name=worker.name, **env)

    task = studio.wait_for_status(task_id, "FAILED")
    assert task.attempts == 2
    assert task.error == ("Processing failed after 2 attempts; its worker was killed each time, most likely because "
                          "the photo needed more memory than a worker has.")
    after = studio.upload(photo, filename="other.jpeg")
    assert studio.wait_for_status(after, "PROCESSING")
    assert worker.exited() is None


def test_a_photo_that_kills_its_work_horse_twice_fails_with_a_reason_and_is_not_retried_again(make_studio, photo):
    studio = make_studio(STUDIO_JOB_RETRIES=3)
    worker = studio.start_worker(STUDIO_FAULT_INJECTION="sleep-every-attempt=600", **FORK)
    task_id = studio.upload(photo)
    for attempt in (1, 2):
        wait_until(lambda: worker.output().count(f"task {task_id}: fault injection: sleeping") == attempt,
                   f"attempt {attempt} sleeps", diagnostics=worker.output)
        worker.kill_horse()

    task = studio.wait_for_status(task_id, "FAILED")
    assert task.attempts == 2
    assert "most likely because the photo needed more memory than a worker has" in task.error
    assert worker.exited() is None


@EACH_BACKEND
def test_a_duplicate_delivery_of_a_finished_task_does_nothing(stack, photo):
    studio = stack.make_studio()
    worker = studio.start_worker()
    task_id = studio.upload(photo)
    done = studio.wait_for_status(task_id, "COMPLETED")
    wait_until_drained(studio)

    studio.deliver_again(task_id)

    wait_until(lambda: f"task {task_id}: deleted, finished or cancelled; nothing to do" in worker.output(),
               "the duplicate is run and finds nothing to do", diagnostics=worker.output)
    wait_until_drained(studio)
    task = studio.task(task_id)
    assert (task.status, task.attempts, task.finished_at, task.outputs) == (
        "COMPLETED", 1, done.finished_at, done.outputs)
    assert [path.name for path in studio.result_files()] == [f"{task_id}.png"]
    assert studio.usage_counts() == (1, 1)
    assert worker.exited() is None


@EACH_BACKEND
def test_a_task_cancelled_while_running_stops_and_the_worker_takes_the_next(stack, photo):
    studio = stack.make_studio()
    worker = studio.start_worker(STUDIO_FAULT_INJECTION="sleep=3@slow.jpeg")
    task_id = studio.upload(photo, filename="slow.jpeg")
    wait_until_sleeping(worker, studio, task_id)

    response = studio.client.post(f"/api/v1/tasks/{task_id}/cancel", headers=studio.headers)
    assert response.status_code == 200, response.get_data(as_text=True)

    after = studio.upload(photo)
    assert studio.wait_for_status(after, "COMPLETED").attempts == 1
    assert studio.status(task_id) == "CANCELLED"
    assert [path.name for path in studio.result_files()] == [f"{after}.png"]  # the cancelled job stored nothing
    wait_until_drained(studio)
    assert worker.exited() is None
