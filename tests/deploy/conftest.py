"""Fixtures for the deployment tests: a clean Redis database."""

from __future__ import annotations

from typing import Iterator

import pytest
from redis import Redis
from redis.exceptions import RedisError

from tests.support.services import TEST_REDIS_URL, require


@pytest.fixture
def redis_connection() -> Iterator[Redis]:
    """Return a connection to the test Redis database, emptied before and after the test."""
    connection = Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=2)
    try:
        connection.ping()
    except RedisError as error:
        connection.close()
        require(False, f"Redis not reachable at {TEST_REDIS_URL}: {error}")
    connection.flushdb()
    yield connection
    connection.flushdb()
    connection.close()
