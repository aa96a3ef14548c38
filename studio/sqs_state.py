"""What SQS says of the task queue (STUDIO_QUEUE_BACKEND=sqs), for /metrics, /readyz and the admin overview:
messages waiting, in flight (received and not yet deleted: running, or hidden until a retry) and delayed, and the
messages in its dead-letter queue.

One read is GetQueueAttributes on the queue (its RedrivePolicy names the dead-letter queue by ARN, whose name
GetQueueUrl turns into a URL once per process) and on the dead-letter queue, with the probes' short timeouts and no
retry. A process keeps the answer, or the failure, CACHE_SECONDS: the scrapes, probes and overview polls of that
time share one read, so Prometheus and the load balancer never hammer SQS, and a dead endpoint costs one timeout
every few seconds, not one per request.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from typing import Any, Mapping

import boto3
from botocore.config import Config

logger = logging.getLogger(__name__)

CACHE_SECONDS = 5.0
# A probe answers within seconds (studio/health.py gives each check 3): one try, short socket timeouts.
_CONNECT_SECONDS = 1.0
_READ_SECONDS = 2.0
# The error codes of a read refused for want of permission (SQS's JSON and query protocols name it differently).
ACCESS_DENIED = frozenset({"AccessDenied", "AccessDeniedException"})
_DEPTH = ["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible",
          "ApproximateNumberOfMessagesDelayed"]


@dataclass(frozen=True)
class QueueDepth:
    """One SQS queue's messages, as GetQueueAttributes approximates them."""

    name: str
    waiting: int
    in_flight: int
    delayed: int

    @property
    def total(self) -> int:
        """Return every message the queue holds, whatever its state."""
        return self.waiting + self.in_flight + self.delayed


@dataclass(frozen=True)
class SqsState:
    """The task queue and its dead-letter queue (None: the queue has no redrive policy)."""

    queue: QueueDepth
    dead_letter: QueueDepth | None


_cache: dict[str, tuple[float, SqsState | Exception]] = {}
_dead_letter_urls: dict[str, str] = {}
_lock = threading.Lock()


def queue_name(queue_url: str) -> str:
    """Return a queue's name, the last part of its URL (what the metrics and the overview call it)."""
    return queue_url.rstrip("/").rsplit("/", 1)[-1]


def _client() -> Any:
    # A session of its own: boto3's default session is not safe to build clients from in several threads at once.
    return boto3.session.Session().client("sqs", config=Config(
        connect_timeout=_CONNECT_SECONDS, read_timeout=_READ_SECONDS, retries={"total_max_attempts": 1}))


def _depth(name: str, attributes: Mapping[str, str]) -> QueueDepth:
    return QueueDepth(name, *(int(attributes.get(attribute, 0)) for attribute in _DEPTH))


def _dead_letter_url(client: Any, arn: str) -> str:
    """Return the URL of the queue with this ARN (arn:aws:sqs:region:account:name), asked once per process."""
    url = _dead_letter_urls.get(arn)
    if url is None:
        account, name = arn.split(":")[4:6]
        url = _dead_letter_urls[arn] = client.get_queue_url(QueueName=name,
                                                            QueueOwnerAWSAccountId=account)["QueueUrl"]
    return url


def read_state(queue_url: str) -> SqsState:
    """Ask SQS now for the queue's and its dead-letter queue's depth; raise boto's error when it does not answer."""
    client = _client()
    attributes = client.get_queue_attributes(QueueUrl=queue_url,
                                             AttributeNames=[*_DEPTH, "RedrivePolicy"])["Attributes"]
    redrive = attributes.get("RedrivePolicy")
    dead_letter = None
    if redrive:
        arn = json.loads(redrive)["deadLetterTargetArn"]
        url = _dead_letter_url(client, arn)
        dead_letter = _depth(queue_name(url), client.get_queue_attributes(QueueUrl=url,
                                                                          AttributeNames=_DEPTH)["Attributes"])
    return SqsState(_depth(queue_name(queue_url), attributes), dead_letter)


def state(config: Mapping[str, Any]) -> SqsState:
    """Return the task queue's state, read at most once per CACHE_SECONDS in this process; raise the read's error
    (kept as long) when SQS did not answer."""
    queue_url = config.get("STUDIO_SQS_QUEUE_URL")
    if not queue_url:
        raise LookupError("STUDIO_QUEUE_BACKEND=sqs but STUDIO_SQS_QUEUE_URL is not set")
    # One read at a time: threads that come meanwhile wait for it (a few seconds at most) and share its answer.
    with _lock:
        cached = _cache.get(queue_url)
        if cached is None or time.monotonic() - cached[0] >= CACHE_SECONDS:
            try:
                found: SqsState | Exception = read_state(queue_url)
            except Exception as error:  # noqa: BLE001 - kept and raised to every caller of the next few seconds
                logger.warning("SQS: could not read the depth of %s: %s", queue_name(queue_url), error)
                found = error
            cached = _cache[queue_url] = (time.monotonic(), found)
    if isinstance(cached[1], Exception):
        raise cached[1]
    return cached[1]


def forget() -> None:
    """Drop what this process read (tests; a queue changed)."""
    with _lock:
        _cache.clear()
        _dead_letter_urls.clear()
