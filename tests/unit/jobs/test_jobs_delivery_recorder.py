"""``DeliveryRecorder``: deliveries recorded with group commit (one INSERT and one queue push per
pile of concurrent deliveries), on the real database of the run (SQLite or PostgreSQL)."""

from __future__ import annotations

import threading

from sqlalchemy import select

from undersign.db import Database
from undersign.jobs.models import Job
from undersign.jobs.queue import DeliveryRecorder, JobQueue


def record(recorder: DeliveryRecorder, guid: str, hook: str = "4242") -> int | None:
    return recorder.record(
        {"kind": "pull_request", "repo": "octo-org/widgets", "numbers": [1]},
        lease=60,
        hook_id=hook,
        delivery_id=guid,
        event_name="pull_request",
    )


def test_each_delivery_gets_its_committed_queued_row_and_a_redelivery_none(
    database: Database, queue: JobQueue
) -> None:
    recorder = DeliveryRecorder(database, lambda: queue)
    first = record(recorder, "guid-1")
    assert first is not None
    assert record(recorder, "guid-1") is None  # the same hook and delivery: recorded already
    assert record(recorder, "guid-1", hook="other-hook") not in (None, first)
    with database.session() as session:
        job = session.get(Job, first)
        assert job is not None
        assert (job.kind, job.status, job.hook_id, job.event) == (
            "delivery",
            "queued",
            "4242",
            "pull_request",
        )
        assert job.payload["repo"] == "octo-org/widgets"
        assert job.created_at.tzinfo is not None and job.lease_until > job.created_at
    assert queue.huey.pending_count() == 2  # one message per new row, none for the duplicate


def test_concurrent_deliveries_share_piles_and_lose_nothing(
    database: Database, queue: JobQueue
) -> None:
    recorder = DeliveryRecorder(database, lambda: queue)
    results: dict[str, int | None] = {}
    gate = threading.Barrier(8)

    def deliver(n: int) -> None:
        gate.wait()
        for i in range(10):
            guid = f"t{n}-{i}"
            results[guid] = record(recorder, guid)
            results[f"dup-{guid}"] = record(recorder, "shared")  # all threads: one delivery

    threads = [threading.Thread(target=deliver, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    unique = [v for k, v in results.items() if not k.startswith("dup-")]
    shared = [v for k, v in results.items() if k.startswith("dup-")]
    assert len(unique) == 80 and None not in unique and len(set(unique)) == 80
    assert sum(1 for v in shared if v is not None) == 1  # recorded once, the rest duplicates
    with database.session() as session:
        ids = set(session.scalars(select(Job.id)))
    assert ids == {*unique, *(v for v in shared if v is not None)}
    assert queue.huey.pending_count() == 81
