"""``DeliveryRecorder``: deliveries recorded with group commit (one INSERT and one queue push per
pile of concurrent deliveries), on the real database of the run (SQLite or PostgreSQL)."""

from __future__ import annotations

import gc
import multiprocessing
import threading
import weakref
from pathlib import Path

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
    assert recorder.flush()  # the messages follow the commit on a thread of their own
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
    assert recorder.flush()
    assert queue.huey.pending_count() == 81


def test_a_delivery_does_not_wait_for_its_queue_message(
    database: Database, queue: JobQueue
) -> None:
    """The row is committed when ``record`` returns; the message follows on the pusher's
    thread. A queue that hangs holds up the messages, never the deliveries."""
    release = threading.Event()
    pushed: list[list[int]] = []

    class SlowQueue:
        def enqueue_quietly(self, job_ids: list[int]) -> None:
            release.wait(10)
            pushed.append(list(job_ids))

    recorder = DeliveryRecorder(database, lambda: SlowQueue())  # type: ignore[arg-type, return-value]
    first = record(recorder, "slow-1")
    second = record(recorder, "slow-2")  # answered while the first push hangs
    assert first is not None and second is not None
    with database.session() as session:
        assert set(session.scalars(select(Job.id))) == {first, second}
    assert not recorder.flush(timeout=0.2)  # the push is still out
    release.set()
    assert recorder.flush()
    assert sorted(i for batch in pushed for i in batch) == sorted([first, second])


def _record_in_a_process(url: str, prefix: str, count: int) -> None:  # pragma: no cover
    """A second web process: its own ``Database`` and recorder on the same SQLite file."""
    from undersign.db import Database as ProcessDatabase

    class NoQueue:
        def enqueue_quietly(self, job_ids: list[int]) -> None:
            pass

    recorder = DeliveryRecorder(ProcessDatabase(url), lambda: NoQueue())  # type: ignore[arg-type, return-value]
    threads = [
        threading.Thread(
            target=lambda n=n: [record(recorder, f"{prefix}-{n}-{i}") for i in range(count)]
        )
        for n in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)


def test_two_processes_record_at_once_and_lose_nothing(database: Database, tmp_path: Path) -> None:
    """Two web processes, four threads each, record at once: every delivery gets its row.
    On SQLite they take turns through a file lock beside the database (SQLite has no queue
    for its write lock); PostgreSQL takes concurrent writers itself."""
    context = multiprocessing.get_context("spawn")
    processes = [
        context.Process(target=_record_in_a_process, args=(database.url, f"p{n}", 50))
        for n in range(2)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(120)
        assert process.exitcode == 0
    with database.session() as session:
        guids = list(session.scalars(select(Job.delivery_id)))
    assert len(guids) == len(set(guids)) == 2 * 4 * 50
    if database.url.startswith("sqlite:///"):
        assert Path(database.url.removeprefix("sqlite:///") + "-ingest.lock").exists()


def test_a_recorder_let_go_keeps_nothing_alive_and_its_thread_ends(
    database: Database, queue: JobQueue
) -> None:
    """The pusher's thread must not hold the app: tests build hundreds, and each kept its
    database connections open (PostgreSQL ran out of connection slots)."""
    before = {t for t in threading.enumerate() if t.name == "undersign-delivery-push"}
    recorder = DeliveryRecorder(database, lambda: queue)
    assert record(recorder, "let-go") is not None
    assert recorder.flush()
    [thread] = [
        t for t in threading.enumerate() if t.name == "undersign-delivery-push" and t not in before
    ]
    gone = weakref.ref(recorder)
    del recorder
    gc.collect()
    assert gone() is None
    thread.join(5)
    assert not thread.is_alive()


def test_disposing_the_database_closes_the_connection_the_recorder_keeps(
    database_url: str, queue: JobQueue
) -> None:
    """The recorder keeps one raw connection checked out; left to the garbage collector it
    went back to a pool nobody used any more and stayed open on the server (a run of the
    PostgreSQL suite ran out of connection slots)."""
    database = Database(database_url)
    recorder = DeliveryRecorder(database, lambda: queue)
    assert record(recorder, "kept") is not None
    assert recorder.flush()
    [kept] = database._kept
    assert kept.is_valid and kept.dbapi_connection is not None
    database.dispose()
    assert kept.dbapi_connection is None and not kept.is_valid
