"""What the job tests share: a queue of their own on the test's database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from undersign.config import load_settings
from undersign.db import Database
from undersign.jobs.queue import JobQueue
from undersign.runtime import job_handlers


@pytest.fixture
def queue_environment(tmp_path: Path) -> dict[str, str]:
    """The settings every job test's queue starts from."""
    return {
        "UNDERSIGN_ENV": "test",
        "UNDERSIGN_INSTANCE_PATH": str(tmp_path / "instance"),
        "UNDERSIGN_SECRET_KEY": "test-secret-key-not-for-production-0123456789",
        "UNDERSIGN_RECONCILE_INTERVAL": "0",
        "UNDERSIGN_JOB_LEASE": "60",
        "UNDERSIGN_SESSION_IDLE_TIMEOUT": "3600",
    }


@pytest.fixture
def queue(queue_environment: dict[str, str], database: Database) -> Iterator[JobQueue]:
    settings = load_settings(queue_environment)
    # A SQLite Huey file of its own, no consumer; the handlers the runtime gives every queue.
    queue = JobQueue(settings, database, job_handlers(settings))
    yield queue
    queue.close()
