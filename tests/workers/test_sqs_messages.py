"""What a task's SQS message says and how it is sent (studio/sqs_queue.py), and how an attempt maps to a retry
(jobs/sqs_job.py): no service needed."""

from __future__ import annotations

import json

from jobs import sqs_job
from studio import sqs_queue
from studio.models import Task

FIFO = "https://sqs.us-east-1.amazonaws.com/123456789012/studio-tasks.fifo"
STANDARD = "https://sqs.us-east-1.amazonaws.com/123456789012/studio-tasks"


def test_on_a_fifo_queue_a_message_goes_to_its_group_and_each_send_has_its_own_deduplication_id():
    task = Task(id="task-1", user_id=7, attempts=1)
    first, second = (sqs_queue.send_parameters(task, FIFO, "account-7-1") for _ in range(2))
    assert first["MessageGroupId"] == second["MessageGroupId"] == "account-7-1"
    assert first["MessageDeduplicationId"].startswith("task-1-1-")
    assert first["MessageDeduplicationId"] != second["MessageDeduplicationId"]
    assert json.loads(first["MessageBody"])["task_id"] == "task-1"


def test_a_standard_queue_gets_no_group_and_no_deduplication_id():
    parameters = sqs_queue.send_parameters(Task(id="task-1", user_id=7, attempts=0), STANDARD, "")
    assert set(parameters) == {"QueueUrl", "MessageBody"}


def test_an_accounts_slots_are_message_groups_of_their_own_per_cost_class():
    # Slot 0 of quick work is the group every message had before there were slots.
    quick = [sqs_queue.message_group(7, "quick", slot) for slot in range(3)]
    assert quick == ["account-7", "account-7-1", "account-7-2"]
    assert [sqs_queue.message_group(7, "slow", slot) for slot in range(2)] == ["account-7-slow", "account-7-slow-1"]
    assert sqs_queue.message_group(8) == "account-8"


def test_a_message_body_names_its_task_and_a_foreign_one_is_refused():
    assert sqs_job.parse(json.dumps({"task_id": "abc", "request_id": "r-1"}), 2) == sqs_job.Message("abc", 2, "r-1")
    for body in ("", "not json", "[]", json.dumps({"id": "abc"})):
        assert sqs_job.parse(body, 1) is None


def test_attempts_and_retry_intervals_follow_the_rq_settings():
    config = {"STUDIO_JOB_RETRIES": 3, "STUDIO_JOB_RETRY_INTERVALS": [5, 30, 120]}
    assert sqs_job.allowed_attempts(config) == 4
    assert [sqs_job.retry_delay(config, count) for count in (1, 2, 3, 4)] == [5, 30, 120, 120]
    assert sqs_job.allowed_attempts({"STUDIO_JOB_RETRIES": -1}) == 1


def test_the_redrive_policy_allows_one_delivery_more_than_the_attempts():
    # The delivery past the last attempt reaches a worker, which fails the task whose last worker died.
    assert sqs_job.max_receive_count({"STUDIO_JOB_RETRIES": 2}) == 4
    assert sqs_job.max_receive_count({"STUDIO_JOB_RETRIES": 0}) == 2
