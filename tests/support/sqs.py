"""SQS queues on moto's server (the tests' one endpoint for S3 and SQS), and Lambda events built from them."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from typing import Any

import boto3

REGION = "us-east-1"
# The tests' visibility timeout (seconds): a killed worker's message comes back this soon.
VISIBILITY = 3


@dataclass
class Queues:
    """A task queue with its dead-letter queue, and a client of the endpoint."""

    client: Any
    url: str
    dead_letter_url: str
    arn: str

    def settings(self, endpoint: str, visibility: int) -> dict[str, str]:
        """Return the worker environment that consumes these queues."""
        return {"STUDIO_QUEUE_BACKEND": "sqs", "STUDIO_SQS_QUEUE_URL": self.url, "AWS_ENDPOINT_URL_SQS": endpoint,
                "STUDIO_SQS_WAIT_SECONDS": "1", "STUDIO_SQS_VISIBILITY_SECONDS": str(visibility),
                # Each upload runs its job (the same photo is uploaded several times).
                "STUDIO_REUSE_DUPLICATES": "false"}

    def send_task(self, task_id: str, group: str) -> None:
        """Send a message for the task, as the web app or a reconciler does (a duplicate, for a task sent already)."""
        body = json.dumps({"task_id": task_id, "attempt": 0})
        if self.url.endswith(".fifo"):
            self.client.send_message(QueueUrl=self.url, MessageBody=body, MessageGroupId=group,
                                     MessageDeduplicationId=uuid.uuid4().hex)
        else:
            self.client.send_message(QueueUrl=self.url, MessageBody=body)

    def count(self, url: str) -> int:
        """Return how many messages the queue holds, visible or in flight."""
        attributes = self.client.get_queue_attributes(
            QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(attributes["ApproximateNumberOfMessagesNotVisible"])

    def dead_letter_bodies(self) -> list[dict[str, Any]]:
        """Return the bodies now in the dead-letter queue (peeked: they are visible again at once)."""
        received = self.client.receive_message(QueueUrl=self.dead_letter_url, MaxNumberOfMessages=10,
                                               VisibilityTimeout=0, WaitTimeSeconds=0).get("Messages", [])
        return [json.loads(message["Body"]) for message in received]

    def receive(self, count: int = 10) -> list[dict[str, Any]]:
        """Receive up to count messages with their attributes (hidden for the queue's visibility timeout), as the
        Lambda service's poller does."""
        return self.client.receive_message(QueueUrl=self.url, MaxNumberOfMessages=count, WaitTimeSeconds=1,
                                           AttributeNames=["All"], MessageAttributeNames=["All"]).get("Messages", [])

    def settle(self, messages: list[dict[str, Any]], result: dict[str, Any]) -> None:
        """Delete the messages the handler did not hand back, as the Lambda service does after an invocation."""
        failed = {item["itemIdentifier"] for item in result["batchItemFailures"]}
        for message in messages:
            if message["MessageId"] not in failed:
                self.client.delete_message(QueueUrl=self.url, ReceiptHandle=message["ReceiptHandle"])


def make_queues(endpoint: str, max_receive_count: int, visibility: int, fifo: bool = True) -> Queues:
    """Create a FIFO (or standard) queue and its dead-letter queue (redrive after max_receive_count receives:
    jobs.sqs_job.max_receive_count for the studio's retries)."""
    client = boto3.client("sqs", endpoint_url=endpoint, region_name=REGION)
    name = f"studio-{uuid.uuid4().hex[:8]}"
    suffix, kind = (".fifo", {"FifoQueue": "true"}) if fifo else ("", {})
    dead = client.create_queue(QueueName=f"{name}-dead{suffix}", Attributes=kind)["QueueUrl"]
    dead_arn = client.get_queue_attributes(QueueUrl=dead, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    url = client.create_queue(QueueName=f"{name}{suffix}", Attributes={
        **kind, "VisibilityTimeout": str(visibility),
        "RedrivePolicy": json.dumps({"deadLetterTargetArn": dead_arn, "maxReceiveCount": str(max_receive_count)}),
    })["QueueUrl"]
    arn = client.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return Queues(client, url, dead, arn)


def lambda_event(messages: list[dict[str, Any]], queue_arn: str) -> dict[str, Any]:
    """Return the event the Lambda service passes an SQS event source mapping's function for these messages."""
    return {"Records": [{
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message["MD5OfBody"],
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": REGION,
    } for message in messages]}
