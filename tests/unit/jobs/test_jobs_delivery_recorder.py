"""``DeliveryRecorder``: deliveries recorded with group commit (one INSERT per pile of concurrent
deliveries; their queue messages in the same transaction on SQLite with a SQLite queue, else one
push after it), on the real database of the run (SQLite or PostgreSQL)."""

from __future__ import annotations

import gc
import multiprocessing
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
import weakref
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from undersign.config import load_settings
from undersign.db import Database
from undersign.jobs.models import Job
from undersign.jobs.queue import JobQueue
from undersign.jobs.recorder import DeliveryRecorder, _Pusher
from undersign.runtime import job_handlers


class ServerQueue:
    """A queue whose messages cannot share the rows' transaction (as Redis): the pusher's."""

    def __init__(self, queue: JobQueue) -> None:
        self.queue = queue

    def sqlite_file(self) -> None:
        return None

    def enqueue_quietly(self, job_ids: list[int]) -> None:
        self.queue.enqueue_quietly(job_ids)


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
        def sqlite_file(self) -> None:
            return None  # a server queue: messages go through the pusher

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


def test_the_pusher_waits_a_moment_so_one_push_takes_several_piles(
    database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deliveries one after the other (each its own pile): the pusher, woken by the first,
    lingers, and the ids that come meanwhile go in the same push instead of one push each."""
    monkeypatch.setattr(_Pusher, "LINGER", 1.0)
    pushes: list[list[int]] = []

    class InstantQueue:  # a push that costs nothing: the pusher is back at once
        def sqlite_file(self) -> None:
            return None

        def enqueue_quietly(self, job_ids: list[int]) -> None:
            pushes.append(list(job_ids))

    recorder = DeliveryRecorder(database, lambda: InstantQueue())  # type: ignore[arg-type, return-value]
    jobs = []
    for n in range(10):  # 20 ms apart: time for a pusher that does not wait to push each
        jobs.append(record(recorder, f"linger-{n}"))
        time.sleep(0.02)
    assert recorder.flush()
    assert sorted(i for push in pushes for i in push) == sorted(j for j in jobs if j is not None)
    assert len(pushes) <= 2, pushes


def _record_in_a_process(url: str, prefix: str, count: int) -> None:  # pragma: no cover
    """A second web process: its own ``Database`` and recorder on the same SQLite file."""
    from undersign.db import Database as ProcessDatabase

    class NoQueue:
        def sqlite_file(self) -> None:
            return None

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
    recorder = DeliveryRecorder(database, lambda: ServerQueue(queue))  # type: ignore[arg-type, return-value]
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


@pytest.fixture
def sqlite_setup(
    sqlite_template: Path, queue_environment: dict[str, str], tmp_path: Path
) -> Iterator[tuple[Database, JobQueue]]:
    """A SQLite database and a SQLite queue file, whatever ``--db`` the run has."""
    path = tmp_path / "sqlite-queue-test.sqlite3"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    settings = load_settings(queue_environment)
    queue = JobQueue(settings, database, job_handlers(settings))
    yield database, queue
    queue.close()
    database.dispose()


def _pushers() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "undersign-delivery-push"}


def test_on_sqlite_the_messages_are_written_in_the_rows_own_transaction(
    sqlite_setup: tuple[Database, JobQueue],
) -> None:
    """A SQLite database with a SQLite queue: the queue file is attached to the delivery
    connection, so a row and its message commit together, with no pusher thread."""
    database, queue = sqlite_setup
    before = _pushers()
    recorder = DeliveryRecorder(database, lambda: queue)
    first = record(recorder, "together-1")
    assert record(recorder, "together-1") is None  # a duplicate: no second message
    second = record(recorder, "together-2")
    assert first is not None and second is not None
    assert queue.huey.pending_count() == 2  # at once, no flush
    assert sorted(task.args[0] for task in queue.huey.pending()) == sorted([first, second])
    assert _pushers() == before


def test_a_locked_queue_file_delays_the_delivery_and_loses_nothing(
    sqlite_setup: tuple[Database, JobQueue],
) -> None:
    """A Huey worker holds the queue file's write lock while it takes a message: the row's
    transaction is retried until it can write both."""
    database, queue = sqlite_setup
    recorder = DeliveryRecorder(database, lambda: queue)
    assert record(recorder, "warm-up") is not None  # the queue file attached
    storage: Any = queue.huey.storage
    holder = sqlite3.connect(storage.filename, isolation_level=None, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    release = threading.Timer(0.3, holder.rollback)
    release.start()
    started = time.monotonic()
    job = record(recorder, "behind-a-lock")
    waited = time.monotonic() - started
    release.join()
    holder.close()
    assert job is not None and waited >= 0.25
    assert job in {task.args[0] for task in queue.huey.pending()}


def test_a_queue_file_that_refuses_messages_still_records_the_rows(
    sqlite_setup: tuple[Database, JobQueue], caplog: pytest.LogCaptureFixture
) -> None:
    """Anything but a lock (here the queue's table is gone) must not cost the delivery: the
    row commits, and its message is left to the pusher (and, failing that, the sweeper)."""
    database, queue = sqlite_setup
    recorder = DeliveryRecorder(database, lambda: queue)
    assert record(recorder, "warm-up") is not None
    storage: Any = queue.huey.storage
    with sqlite3.connect(storage.filename) as broken:
        broken.execute("DROP TABLE task")
    job = record(recorder, "queue-broken")
    assert job is not None
    with database.session() as session:
        assert session.get(Job, job) is not None
    assert recorder.flush()
    assert "not written" in caplog.text and "the sweeper will pick them up" in caplog.text


def test_a_queue_inside_the_database_file_takes_its_messages_without_attaching_it(
    sqlite_template: Path, queue_environment: dict[str, str], tmp_path: Path
) -> None:
    """``UNDERSIGN_QUEUE_URL`` naming the database file itself: Huey's tables live beside
    undersign's, and the messages are written to them directly (attaching the file to its
    own connection would make the transaction wait on itself until the delivery fails)."""
    path = tmp_path / "one-file.sqlite3"
    shutil.copy(sqlite_template, path)
    database = Database(f"sqlite:///{path}")
    settings = load_settings({**queue_environment, "UNDERSIGN_QUEUE_URL": f"sqlite:///{path}"})
    queue = JobQueue(settings, database, job_handlers(settings))
    try:
        before = _pushers()
        recorder = DeliveryRecorder(database, lambda: queue)
        started = time.monotonic()
        first, second = record(recorder, "one-file-1"), record(recorder, "one-file-2")
        assert time.monotonic() - started < 2.0
        assert first is not None and second is not None
        assert sorted(task.args[0] for task in queue.huey.pending()) == sorted([first, second])
        assert _pushers() == before
    finally:
        queue.close()
        database.dispose()


_GRACEFUL_STOP = """
import sys, time
from undersign.db import Database
from undersign.jobs.recorder import DeliveryRecorder

url, out = sys.argv[1], sys.argv[2]

class SlowServerQueue:
    def sqlite_file(self):
        return None

    def enqueue_quietly(self, job_ids):
        time.sleep(0.05)  # a queue slower than the deliveries: messages pile up
        with open(out, "a") as f:
            f.write("".join(f"{i}\\n" for i in job_ids))

recorder = DeliveryRecorder(Database(url), lambda: SlowServerQueue())
for n in range(20):
    recorder.record({"kind": "pull_request"}, lease=60, hook_id="h", delivery_id=f"stop-{n}",
                    event_name="pull_request")
print("recorded", flush=True)
# The process ends here, as a web worker does on a graceful stop: no explicit flush.
"""


def test_a_graceful_stop_pushes_the_messages_still_waiting(
    database: Database, tmp_path: Path
) -> None:
    """The messages handed to the pusher by the last requests are pushed when the process
    ends normally (a deploy's graceful stop), not lost with the pusher's daemon thread."""
    out = tmp_path / "pushed.txt"
    done = subprocess.run(
        [sys.executable, "-c", _GRACEFUL_STOP, database.url, str(out)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    pushed = [int(line) for line in out.read_text().split()]
    with database.session() as session:
        recorded = set(session.scalars(select(Job.id).where(Job.hook_id == "h")))
    assert len(recorded) == 20 and sorted(pushed) == sorted(recorded)
