"""Closing a queue on Redis lets go of its connections (Huey's Redis storage kept them open
until the queue happened to be garbage collected)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
import redis
from tests.conftest import redis_test_url

from undersign.config import load_settings
from undersign.jobs.queue import JobQueue

pytestmark = pytest.mark.redis


@pytest.fixture
def server() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_test_url())
    yield client
    client.close()


def connections_named(server: redis.Redis, name: str) -> list[str]:
    return [str(client["addr"]) for client in server.client_list() if client["name"] == name]


def test_closing_a_queue_on_redis_closes_its_connections(
    queue_environment: dict[str, str], server: redis.Redis
) -> None:
    name = f"undersign-test-{uuid.uuid4().hex[:12]}"
    settings = load_settings(
        {
            **queue_environment,
            "UNDERSIGN_QUEUE_URL": f"{redis_test_url()}?client_name={name}",
            "UNDERSIGN_QUEUE_NAME": name,
        }
    )
    queue = JobQueue(settings)
    try:
        queue.enqueue_quietly([1, 2])
        assert queue.huey.pending_count() == 2
        assert len(connections_named(server, name)) == 1

        queue.close()

        assert connections_named(server, name) == []
        assert queue.huey.pending_count() == 2  # used again after all, it connects again
    finally:
        queue.huey.flush()  # no keys left on the shared Redis
        queue.close()
