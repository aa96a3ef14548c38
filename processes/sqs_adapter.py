"""The SQS worker loop (`python rq_worker.py` with STUDIO_QUEUE_BACKEND=sqs): what RQ's worker does, for SQS.

Long polling (STUDIO_SQS_WAIT_SECONDS, 20 by default) for one message at a time; while its job runs, a thread
extends the message's visibility (and the task's running lock) every third of STUDIO_SQS_VISIBILITY_SECONDS, so a
10-minute upscale is not handed to a second worker; the message is deleted only once jobs/sqs_job.py says the task's
final state is committed. A worker that dies stops extending: the message comes back after the visibility timeout
and another worker runs the task again (the job is idempotent), once at most (jobs/sqs_job.py counts the deaths, as
RQ does). SIGTERM lets the current photo finish first.

What RQ's worker does for a job that its timeout alarm cannot stop (stuck in native code), this one does too: the
visibility thread, finding the job still running HARD_LIMIT_MARGIN seconds past its timeout, fails the task with the
timeout as its reason, deletes the message (a photo that ran out of time would again) and starts the worker afresh
(start_afresh: the same pid, so its supervisor sees no exit), since the job's thread cannot be stopped otherwise.
After STUDIO_WORKER_JOBS_PER_PROCESS jobs work() returns, and rq_worker.py starts it afresh the same way, so a leak
cannot grow (with 1, which on RQ forks a horse per job, it runs every job in this process as --simple does: a fresh
start per photo would load the models for each).
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from types import FrameType
from typing import Any, Callable, Mapping

from botocore.exceptions import BotoCoreError, ClientError
from redis import Redis
from rq.timeouts import JobTimeoutException

from jobs import sqs_job
from jobs.process_image import record_failure
from studio import sqs_queue
from studio.queue import HARD_LIMIT_MARGIN

logger = logging.getLogger(__name__)

_ATTRIBUTES = ["ApproximateReceiveCount"]
_OUTAGE_PAUSE = 2
# How often the visibility thread looks at the clock for the hard limit (it extends the visibility less often).
_CHECK_SECONDS = 5


class VisibilityHeartbeat:
    """Extend a message's visibility and its task's lock from a thread until the with-block ends; past the hard
    limit (a monotonic deadline), call on_stuck from that thread instead, once."""

    def __init__(self, sqs: Any, queue_url: str, receipt: str, lock: sqs_job.RunningLock, seconds: int,
                 hard_limit: float | None = None, on_stuck: Callable[[], None] | None = None) -> None:
        self.sqs, self.queue_url, self.receipt, self.lock, self.seconds = sqs, queue_url, receipt, lock, seconds
        self.hard_limit, self.on_stuck = hard_limit, on_stuck
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="sqs-visibility", daemon=True)

    def __enter__(self) -> VisibilityHeartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stopped.set()
        self._thread.join()

    def _run(self) -> None:
        every = max(self.seconds / 3, 0.5)
        due = time.monotonic() + every
        while not self._stopped.wait(min(every, _CHECK_SECONDS)):
            now = time.monotonic()
            if self.hard_limit is not None and self.on_stuck is not None and now > self.hard_limit:
                self.on_stuck()
                return
            if now < due:
                continue
            due = now + every
            try:
                self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=self.receipt,
                                                   VisibilityTimeout=self.seconds)
                self.lock.renew()
            except Exception as error:  # noqa: BLE001 - keep trying: the job carries on either way
                logger.warning("could not extend the message's visibility: %s", error)


class SqsWorker:
    """Take task messages from SQS one at a time and run them until told to stop."""

    def __init__(self, config: Mapping[str, Any], redis: Redis, max_jobs: int | None = None,
                 start_afresh: Callable[[str], None] | None = None) -> None:
        self.config, self.redis, self.max_jobs = config, redis, max_jobs
        # Replaces this process by a fresh start (rq_worker.recycle); without one, a stuck job ends the process.
        self.start_afresh = start_afresh or _exit
        self.queue_url: str = config["STUDIO_SQS_QUEUE_URL"]
        self.wait_seconds = min(max(int(config["STUDIO_SQS_WAIT_SECONDS"]), 0), 20)
        self.visibility = max(int(config["STUDIO_SQS_VISIBILITY_SECONDS"]), 1)
        self.sqs = sqs_queue.client(config, read_seconds=self.wait_seconds + 10)
        self.stopping = False
        self.jobs_done = 0

    def request_stop(self, signum: int, frame: FrameType | None) -> None:
        """Finish the current photo, then stop (SIGTERM, SIGINT)."""
        logger.info("stopping once the current message is done")
        self.stopping = True

    def work(self, burst: bool = False) -> None:
        """Receive and run messages until stopped (burst: until the queue is empty)."""
        signal.signal(signal.SIGTERM, self.request_stop)
        signal.signal(signal.SIGINT, self.request_stop)
        logger.info("Listening on SQS queue %s", self.queue_url)
        while not self.stopping:
            try:
                messages = self.sqs.receive_message(
                    QueueUrl=self.queue_url, MaxNumberOfMessages=1, WaitTimeSeconds=self.wait_seconds,
                    VisibilityTimeout=self.visibility, AttributeNames=_ATTRIBUTES).get("Messages", [])
            except (BotoCoreError, ClientError) as error:
                # SQS unreachable: wait and ask again, as RQ's worker waits out a Redis outage.
                logger.warning("could not receive from SQS: %s; trying again in %s s", error, _OUTAGE_PAUSE)
                time.sleep(_OUTAGE_PAUSE)
                continue
            if not messages and burst:
                return
            for message in messages:
                self.run(message)
            if self.max_jobs is not None and self.jobs_done >= self.max_jobs:
                return

    def run(self, raw: Mapping[str, Any]) -> sqs_job.Outcome:
        """Run one received message's task and settle the message: delete, hand back or hide it."""
        receipt = raw["ReceiptHandle"]
        count = int(raw.get("Attributes", {}).get("ApproximateReceiveCount", 1))
        message = sqs_job.parse(raw.get("Body", ""), count)
        if message is None:
            logger.error("message %s is not a task's; deleted", raw.get("MessageId"))
            self._delete(receipt)
            return sqs_job.Outcome.DONE
        lock = sqs_job.RunningLock(self.redis, message.task_id, self.visibility)
        timeout = sqs_job.task_timeout(message.task_id)
        if timeout is None:
            logger.info("task %s: deleted; its message is dropped", message.task_id)
            self.settle(message, receipt, sqs_job.Outcome.DONE, lock)
            return sqs_job.Outcome.DONE
        hard_limit = time.monotonic() + timeout + HARD_LIMIT_MARGIN
        with VisibilityHeartbeat(self.sqs, self.queue_url, receipt, lock, self.visibility, hard_limit,
                                 lambda: self.give_up_stuck(message, receipt, lock, timeout)):
            outcome = sqs_job.handle(message, lock, timeout)
        self.settle(message, receipt, outcome, lock)
        self.jobs_done += 1
        return outcome

    def give_up_stuck(self, message: sqs_job.Message, receipt: str, lock: sqs_job.RunningLock, timeout: int) -> None:
        """End a job that ignored its timeout alarm as RQ ends a horse it kills: fail the task with the timeout as
        its reason, delete the message, then start the worker afresh (called from the visibility thread)."""
        logger.error("task %s: still running %s s past its %s s timeout, where the alarm cannot stop it; ending this "
                     "attempt and starting the worker afresh", message.task_id, HARD_LIMIT_MARGIN, timeout)
        try:
            record_failure(message.task_id, timeout, JobTimeoutException, "")
            lock.end_attempt()
            lock.forget_deaths()
            lock.release()
            self.settle(message, receipt, sqs_job.Outcome.DONE, lock)
        except Exception:  # noqa: BLE001 - starting afresh matters most: the message comes back, the reconciler too
            logger.exception("could not record the end of task %s", message.task_id)
        self.start_afresh(f"job {message.task_id} was stuck past its hard time limit")

    def settle(self, message: sqs_job.Message, receipt: str, outcome: sqs_job.Outcome,
               lock: sqs_job.RunningLock) -> None:
        """Do with the message what the job's outcome says."""
        if outcome is sqs_job.Outcome.DONE:
            self._delete(receipt)
            sqs_queue.forget_sent(self.redis, message.task_id)
            return
        if outcome is sqs_job.Outcome.RETRY:
            hidden = sqs_job.retry_delay(self.config, message.receive_count)
        elif outcome is sqs_job.Outcome.BUSY:
            hidden = lock.remaining() + 1
        else:
            hidden = 0  # the next receive moves it to the dead-letter queue
        self.sqs.change_message_visibility(QueueUrl=self.queue_url, ReceiptHandle=receipt,
                                           VisibilityTimeout=min(hidden, 43200))

    def _delete(self, receipt: str) -> None:
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=receipt)


def _exit(reason: str) -> None:
    """End the process (no fresh start given): its supervisor starts another."""
    logger.error("%s: exiting", reason)
    logging.shutdown()
    os._exit(1)
