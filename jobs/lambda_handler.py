"""The AWS Lambda worker: `jobs.lambda_handler.handler` for an SQS event source mapping on the task queue.

The same job as the SQS worker's (jobs/sqs_job.py, so process_task with its timeout, lock and retries); what
Lambda changes:
- the app and the models are built once per execution environment, at import (Lambda's init phase, which is not
  billed by the millisecond the same way and is reused by every later invocation), never in the handler;
- each record is settled on its own: the handler answers `batchItemFailures` (the mapping needs
  ReportBatchItemFailures), so a photo whose attempt failed is delivered again without the others; on a FIFO
  queue every record after a failed one is handed back too, so an account's photos keep their order;
- a record is started only when the function's remaining time covers the operation's whole timeout and a margin
  (STUDIO_LAMBDA_MARGIN_SECONDS): otherwise it is handed back untouched, never cut off mid-write;
- scratch goes to /tmp only (the image sets STUDIO_INSTANCE_DIR and TMPDIR there; the rest is read-only), outputs
  to S3; Redis is still needed for the running locks, webhooks and waiting requests, as on the SQS worker;
- an invocation that dies mid-record (out of memory) is a killed worker: the record comes back after the
  visibility timeout, and sqs_job's rule applies (run again once; a second death fails the task with the reason).
Lambda deletes the records not listed as failures: exactly those whose task's final state was committed.
"""

from __future__ import annotations

import logging
import os
from typing import Any, Mapping

from flask import Flask

from jobs import sqs_job
from jobs.context import bind_app
from studio import sqs_queue

logger = logging.getLogger(__name__)

# Lambda's runtime sets these: only there does importing this module build the app and load the models.
_IN_LAMBDA = bool(os.environ.get("AWS_LAMBDA_FUNCTION_NAME"))
_app: Flask | None = None


def init(app: Flask | None = None) -> Flask:
    """Build the app (or take the one given), bind it for the jobs and load every installed model, once."""
    global _app
    if _app is not None and (app is None or app is _app):
        return _app
    from ml.registry import available_model_names
    from ml.sessions import configure, preload
    from studio import create_app, logs

    app = app or create_app()
    logs.configure_from(app.config)
    config = app.config
    configure(cache_bytes=config["STUDIO_MODEL_CACHE_BYTES"], bfloat16=config["STUDIO_BFLOAT16"])
    preload(available_model_names(config["STUDIO_MODEL_DIR"]), config["STUDIO_MODEL_DIR"])
    bind_app(app)
    _app = app
    return app


def handler(event: Mapping[str, Any], context: Any) -> dict[str, list[dict[str, str]]]:
    """Run each SQS record's task; return the records to deliver again (batchItemFailures)."""
    app = init()
    from studio.queue import get_redis

    redis = get_redis(app)
    records = list(event.get("Records", []))
    fifo = any(sqs_queue.is_fifo(record.get("eventSourceARN", "")) for record in records)
    failures: list[str] = []
    for index, record in enumerate(records):
        outcome = run_record(record, context, redis, app.config)
        if outcome is sqs_job.Outcome.DONE:
            continue
        failures.append(record["messageId"])
        if fifo:
            # SQS FIFO: nothing after a handed-back message may run before it (Lambda's documented rule).
            failures += [later["messageId"] for later in records[index + 1:]]
            break
    return {"batchItemFailures": [{"itemIdentifier": message_id} for message_id in failures]}


def run_record(record: Mapping[str, Any], context: Any, redis: Any, config: Mapping[str, Any]) -> sqs_job.Outcome:
    """Run one record's task if the time left allows its whole timeout; return what to do with the record."""
    count = int(record.get("attributes", {}).get("ApproximateReceiveCount", 1))
    message = sqs_job.parse(record.get("body", ""), count)
    if message is None:
        logger.error("record %s is not a task's message; dropped", record.get("messageId"))
        return sqs_job.Outcome.DONE
    timeout = sqs_job.task_timeout(message.task_id)
    if timeout is None:
        logger.info("task %s: deleted; its message is dropped", message.task_id)
        return sqs_job.Outcome.DONE
    remaining_ms = int(context.get_remaining_time_in_millis())
    allowed = sqs_job.allowed_attempts(config)
    # A delivery past the last attempt runs nothing (sqs_job.handle fails the task or dead-letters the message):
    # it needs no time.
    needed_ms = (timeout + int(config["STUDIO_LAMBDA_MARGIN_SECONDS"])) * 1000
    if message.receive_count <= allowed and remaining_ms < needed_ms:
        logger.warning("task %s: %s ms left, its operation may take %s s: handed back, not started",
                       message.task_id, remaining_ms, timeout)
        if message.receive_count == allowed:
            # Handed back on every delivery: a photo that never fits this function's time (a large upscale).
            sqs_job.fail_unstarted(message.task_id, f"Processing this photo may take up to {timeout} seconds, "
                                                    "longer than this worker can run; it was not started.")
            return sqs_job.Outcome.DONE
        return sqs_job.Outcome.RETRY
    lock = sqs_job.RunningLock(redis, message.task_id, remaining_ms // 1000)
    outcome = sqs_job.handle(message, lock, timeout)
    if outcome is sqs_job.Outcome.DONE:
        sqs_queue.forget_sent(redis, message.task_id)
    return outcome


if _IN_LAMBDA:
    init()
