"""PostgreSQL stopped under the app (SECURITY.md W5 and §4, plan items 44, 57, 58), on a
throwaway server of this test's own (never the shared one on 5432).

* During a delivery: the webhook answers 503 at once (GitHub then shows the delivery failed,
  and it can be redelivered); after the restart, without restarting the app, the redelivery is
  processed, and a further redelivery is a 2xx no-op.
* During a job: the job's outcome cannot be written; it is tried again after the restart and
  ends with one verdict.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest
from faults_support import (
    ThrowawayPostgres,
    assert_final_verdict,
    event,
    fault_taken,
    open_pr,
    wait_until,
)
from tests.conftest import CLAService


@pytest.fixture
def pg() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    try:
        server.start()
        server.create_tables()
        yield server
    finally:
        server.destroy()


@pytest.fixture
def database_url(pg: ThrowawayPostgres) -> str:
    """Overrides tests/conftest.py: the app, the workers and the test use ``pg``."""
    return pg.url


def test_database_down_at_delivery_answers_503_then_the_redelivery_is_processed(
    fast: CLAService, pg: ThrowawayPostgres
) -> None:
    pr = open_pr(fast, "bob")
    payload = event(fast, pr["number"])
    pg.stop()
    started = time.monotonic()
    status, guid = fast.deliver("pull_request", payload)
    assert status == 503
    assert time.monotonic() - started < 10  # GitHub gives up after 10 s
    [failed] = fast.live.emulator.state.deliveries
    assert not failed.ok

    pg.start()  # the app is not restarted: its pool reconnects (pool_pre_ping)
    assert fast.live.emulator.state.redeliver(guid) == 202
    fast.wait_idle(30)
    assert_final_verdict(fast, pr["number"], "failure")
    assert fast.live.emulator.state.redeliver(guid) == 202  # recorded once: a no-op
    fast.wait_idle(30)
    assert len(fast.jobs()) == 1
    assert_final_verdict(fast, pr["number"], "failure")


def test_database_down_during_a_job_the_job_finishes_after_the_restart(
    fast: CLAService, pg: ThrowawayPostgres, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="undersign.jobs")
    pr = open_pr(fast, "bob")
    fast.state.add_fault("GET", r"/pulls/\d+/commits", status=None, delay=1.0, times=1)
    assert fast.deliver("pull_request", event(fast, pr["number"]))[0] == 202
    wait_until(lambda: fault_taken(fast), 15, "the job to be listing commits")
    pg.stop()
    wait_until(
        lambda: any("could not record its outcome" in r.getMessage() for r in caplog.records),
        20,
        "the worker to find the database gone",
    )
    pg.start()
    fast.wait_idle(30)
    [job] = fast.jobs()
    assert job.attempts >= 2
    assert_final_verdict(fast, pr["number"], "failure")
