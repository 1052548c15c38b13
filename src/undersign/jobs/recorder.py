"""Webhook deliveries recorded as queued jobs, with group commit: the web processes' one write
per delivery before the 202 (``DeliveryRecorder``).

Driver SQL on a connection kept for it (``_RawInsert``); the queue messages in the rows' own
transaction when the database and the queue are SQLite files, else pushed after the commit on
a thread of their own (``_Pusher``); the web processes take turns on a SQLite file through a
``flock`` (``_FileLock``). bench/RESULTS.md, section 1, has the measurements behind each choice.

Depends on db, jobs (models, queue).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import fcntl
import functools
import logging
import os
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from queue import Empty, SimpleQueue
from typing import Any

from pydantic_core import to_json
from sqlalchemy import make_url
from sqlalchemy.exc import SQLAlchemyError

from undersign.db import Database, utcnow
from undersign.jobs.models import Job
from undersign.jobs.queue import JobQueue, one_line

log = logging.getLogger(__name__)


#: How long a delivery waits for SQLite's write lock before the webhook answers 503.
SQLITE_BUSY_SECONDS = 5.0


#: The name the queue's SQLite file is attached under on the delivery connection.
_QUEUE_SCHEMA = "undersign_queue"

#: The columns a delivery's row is written with (the others are NULL: finished_at, ...).
_RECORDED = (
    "kind",
    "payload",
    "hook_id",
    "delivery_id",
    "event",
    "status",
    "attempts",
    "created_at",
    "updated_at",
    "lease_until",
)


class DeliveryNotRecorded(Exception):
    """The database refused or could not take the rows (the webhook answers 503)."""


def _json_text(value: Any) -> str:
    return to_json(value).decode()


class _RawInsert:
    """``INSERT INTO jobs ... VALUES (...), (...) ON CONFLICT (hook_id, delivery_id) DO
    NOTHING RETURNING id, hook_id, delivery_id`` on one DBAPI connection kept for it.

    Driver SQL rather than a SQLAlchemy statement: measured, SQLAlchemy's execution path
    cost three times the insert itself. The values still go through the columns' own
    SQLAlchemy types (UTC datetimes, JSON), so the rows read back exactly like ORM ones.
    """

    def __init__(self, database: Database, queue: JobQueue | None = None) -> None:
        engine: Any = database.ingest_engine
        self.engine = engine
        self.connect = database.kept_ingest_connection  # closed by ``database.dispose()``
        dialect = engine.dialect
        self.sqlite = dialect.name == "sqlite"
        columns = Job.__table__.columns
        processors = [
            columns[name].type.dialect_impl(dialect).bind_processor(dialect) for name in _RECORDED
        ]
        # The payload as JSON by pydantic-core (a quarter of json.dumps' time on a trigger);
        # any JSON of the same value reads back the same.
        processors[_RECORDED.index("payload")] = _json_text
        self.processors = list(zip(_RECORDED, processors, strict=True))
        self._connection: Any = None
        # A SQLite database with a SQLite queue: the queue file is attached to the kept
        # connection and the rows' messages are written in the rows' own transaction. No
        # second transaction, no pusher thread; measured, that push cost each delivery
        # about as much CPU as its INSERT (bench/RESULTS.md, section 1).
        queue_file = queue.sqlite_file() if queue is not None and self.sqlite else None
        self.queue = queue if queue_file is not None else None
        self.queue_file, self.queue_name = queue_file or ("", "")
        same = bool(queue_file) and _same_file(self.queue_file, _sqlite_file(database.url))
        self.attach = self.queue is not None and not same
        self.task_table = f"{_QUEUE_SCHEMA}.task" if self.attach else "task"

    def _connect(self) -> Any:
        connection = self.connect()
        if self.attach:
            cursor = connection.cursor()
            try:
                cursor.execute(f"ATTACH DATABASE ? AS {_QUEUE_SCHEMA}", (self.queue_file,))
                # A message only wakes a worker for a durable row (as _SqliteQueueStorage).
                cursor.execute(f"PRAGMA {_QUEUE_SCHEMA}.synchronous=NORMAL")
            except self.engine.dialect.loaded_dbapi.Error as exc:
                # The rows are the record: without the queue file, their messages follow
                # on the pusher (which logs what it cannot push) and the sweeper has them.
                log.warning("queue file not attached (%s); messages follow the commit", exc)
                self.queue, self.attach = None, False
            finally:
                cursor.close()
        return connection

    def _write_messages(self, cursor: Any, job_ids: list[int]) -> bool:
        """The created rows' queue messages, in the rows' transaction; False (the rows still
        commit, their messages are pushed after) when the queue file refuses them for any
        reason but a lock, which retries the whole transaction."""
        if self.queue is None:
            return False
        if not job_ids:
            return True
        try:
            messages = [(self.queue_name, message) for message in self.queue.messages(job_ids)]
        except Exception as exc:  # a message that cannot be built: the rows still commit
            log.warning("queue messages of job(s) %s not built (%s)", job_ids[:20], one_line(exc))
            return False
        cursor.execute("SAVEPOINT undersign_messages")
        try:
            cursor.executemany(
                f"INSERT INTO {self.task_table} (queue, data, priority) "  # noqa: S608  # nosec B608
                "VALUES (?, ?, 0)",
                messages,
            )
        except self.engine.dialect.loaded_dbapi.Error as exc:
            if "locked" in str(exc):
                raise
            cursor.execute("ROLLBACK TO undersign_messages")
            cursor.execute("RELEASE undersign_messages")
            log.warning(
                "queue messages of job(s) %s not written (%s); pushed after the commit",
                job_ids[:20],
                one_line(exc),
            )
            return False
        cursor.execute("RELEASE undersign_messages")
        return True

    @functools.cache  # noqa: B019 - a handful of pile sizes, one instance per process
    def _sql(self, rows: int) -> str:
        # Only constants and placeholders: the table, the columns above, one "?" or "%s"
        # per value; every value travels as a parameter.
        mark = "?" if self.sqlite else "%s"
        row = "(" + ", ".join([mark] * len(_RECORDED)) + ")"
        columns = ", ".join(_RECORDED)
        head = f"INSERT INTO {Job.__tablename__} ({columns}) VALUES "  # noqa: S608  # nosec B608
        tail = " ON CONFLICT (hook_id, delivery_id) DO NOTHING RETURNING id, hook_id, delivery_id"
        return head + ", ".join([row] * rows) + tail

    def params(self, values: dict[str, Any]) -> list[Any]:
        """One row's values through the columns' types (done by each request thread before it
        queues for the writer: the pile's writer holds the lock for the statement only)."""
        return [
            process(values[name]) if process is not None else values[name]
            for name, process in self.processors
        ]

    def insert(self, rows: list[list[Any]]) -> tuple[dict[tuple[str, str], int], bool]:
        """The ids of the rows created, by (hook, delivery); and whether their queue messages
        were written in the same transaction (else the caller pushes them)."""
        params = [value for row in rows for value in row]
        deadline = time.monotonic() + SQLITE_BUSY_SECONDS
        pause = 0.0002
        reconnected = False
        error = self.engine.dialect.loaded_dbapi.Error
        while True:
            if self._connection is None:
                try:
                    self._connection = self._connect()
                except (error, SQLAlchemyError) as exc:  # the server is down
                    raise DeliveryNotRecorded(f"{type(exc).__name__}: {exc}") from exc
            connection = self._connection
            cursor = connection.cursor()
            try:
                if self.queue is not None:
                    cursor.execute("BEGIN IMMEDIATE")
                cursor.execute(self._sql(len(rows)), params)
                result = {(hook, guid): int(job) for job, hook, guid in cursor.fetchall()}
                queued = self._write_messages(cursor, list(result.values()))
                connection.commit()
                return result, queued
            except Exception as exc:
                # Never leave a transaction open on the kept connection (it would hold the
                # write lock): roll back, or let the connection go if it is broken.
                self._discard_if_broken(exc, cursor)
                if not isinstance(exc, error):
                    raise DeliveryNotRecorded(f"{type(exc).__name__}: {exc}") from exc
                if self._connection is None and not reconnected:
                    reconnected = True  # a connection the server closed: once more
                    continue
                # SQLite: another process writes. Its busy handler would sleep 1, 2, 5, 10...
                # ms between tries; retry every fraction of a millisecond instead.
                if not (self.sqlite and "locked" in str(exc)) or time.monotonic() > deadline:
                    raise DeliveryNotRecorded(f"{type(exc).__name__}: {exc}") from exc
            finally:
                cursor.close()
            time.sleep(pause)
            pause = min(pause * 2, 0.005)

    def _discard_if_broken(self, exc: Exception, cursor: Any) -> None:
        connection = self._connection
        try:
            broken = self.engine.dialect.is_disconnect(exc, connection.dbapi_connection, cursor)
            if not broken:
                connection.rollback()
                return
        except Exception:  # rollback on a dead connection
            broken = True
        self._connection = None
        connection.invalidate(exc)


@dataclass
class _Delivery:
    values: dict[str, Any]
    params: list[Any]  # the row's values as the driver takes them, ready before any lock
    job_id: int | None = None
    error: BaseException | None = None
    written: bool = False  # committed (or failed); set under the writer lock


class _Pusher:
    """Hands committed job ids to the queue on a thread of its own, so no delivery waits for
    its message: the row is the durable record, and a message lost with the process (between
    the commit and the push) only delays the job until the sweeper re-queues it.

    Woken, the thread waits ``LINGER`` seconds before it pushes, and the ids that arrive
    meanwhile or while one push is out go together in the next (one Redis ``LPUSH``, one
    SQLite transaction): a push cost about as much CPU as a delivery's INSERT, and without the
    wait nearly every pile had one of its own (bench/RESULTS.md, section 1). A ``SimpleQueue``
    (C, no Python-level lock) between the threads: with a ``Condition``, waking the pusher
    cost each delivery more than its INSERT's Python.
    The thread starts with the first push of this process and holds the pusher only weakly,
    so an app that is let go (tests build hundreds) takes its connections with it; its
    thread then stops.
    """

    #: A job waits this much longer for its worker; nobody waits for a message otherwise.
    LINGER = 0.002

    def __init__(self, queue: Callable[[], JobQueue]) -> None:
        self.queue = queue
        self._handed: SimpleQueue[list[int] | threading.Event | None] = SimpleQueue()
        self._starting = threading.Lock()
        self._pid = 0

    def push(self, ids: list[int]) -> None:
        if self._pid != os.getpid():  # not started in this process yet (or a fork left it)
            self._start()
        self._handed.put(ids)

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until every id handed over so far has been pushed (tests, shutdown)."""
        if self._pid != os.getpid():
            return True
        done = threading.Event()
        self._handed.put(done)
        return done.wait(timeout)

    def _start(self) -> None:
        with self._starting:
            if self._pid != os.getpid():
                threading.Thread(
                    target=_push_loop,
                    args=(self._handed, weakref.ref(self)),
                    name="undersign-delivery-push",
                    daemon=True,
                ).start()
                weakref.finalize(self, self._handed.put, None)  # the thread's end
                _PUSHERS.add(self)
                self._pid = os.getpid()


#: The pushers of this process: a graceful stop (a deploy) pushes what their last requests
#: handed over.
_PUSHERS: weakref.WeakSet[_Pusher] = weakref.WeakSet()


@atexit.register
def _flush_pushers() -> None:
    for pusher in list(_PUSHERS):
        pusher.flush(2.0)


def _push_loop(
    handed: SimpleQueue[list[int] | threading.Event | None], owner: weakref.ref[_Pusher]
) -> None:
    """The pusher's thread: everything handed over since the last push, in one push. Holds
    its pusher only while pushing; ``None`` (the pusher is gone) ends it."""
    while True:
        ids: list[int] = []
        flushed: list[threading.Event] = []
        stop = False
        item = handed.get()
        if item is not None and not isinstance(item, threading.Event):
            time.sleep(_Pusher.LINGER)  # let the next piles' ids join this push
        while True:
            if item is None:
                stop = True
            elif isinstance(item, threading.Event):
                flushed.append(item)
            else:
                ids.extend(item)
            try:
                item = handed.get_nowait()
            except Empty:
                break
        pusher = owner()
        if ids and pusher is not None:
            try:
                pusher.queue().enqueue_quietly(ids)  # logs what it cannot push
            except Exception:  # the thread must outlive any error: the sweeper has the rows
                log.exception("could not push the messages of job(s) %s", ids[:20])
        del pusher
        for done in flushed:
            done.set()
        if stop:
            return


class _FileLock:
    """An exclusive ``flock`` on a file beside the SQLite database, taken by the web
    processes around their delivery INSERTs. SQLite has no queue for its write lock: a
    writer that finds it taken sleeps and retries, so two processes recording deliveries
    lost time in those sleeps. Blocked on the flock, a process wakes the moment the other
    one is done (the kernel releases it if the holder dies), and the deliveries its threads
    bring meanwhile join its pile. Other writers (the queue worker, web sessions) do not take
    it; the INSERT still retries a database they have locked."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)


class DeliveryRecorder:
    """Records webhook deliveries as queued jobs, with group commit.

    Each delivery waits for the statement that commits its row, and no longer: while one
    thread writes, the deliveries other threads of this process bring meanwhile pile up,
    and the next writer takes them all: one multi-row ``INSERT ... ON CONFLICT DO NOTHING
    RETURNING`` (the dedupe check, the durable record and the ids: one round trip, one
    commit, one fsync on PostgreSQL). The queue messages follow on ``_Pusher``'s thread.
    On a SQLite file the web processes take turns through ``_FileLock``. Under no load a
    pile is one delivery.
    """

    def __init__(self, database: Database, queue: Callable[[], JobQueue]) -> None:
        self.database = database
        self.queue = queue
        self._insert: _RawInsert | None = None
        self._pending: list[_Delivery] = []
        self._pending_lock = threading.Lock()
        self._writer = threading.Lock()
        self._pusher = _Pusher(queue)
        path = _sqlite_file(database.url)
        self._between_processes: Any = (
            _FileLock(path + "-ingest.lock") if path else contextlib.nullcontext()
        )

    def record(
        self,
        trigger: dict[str, Any],
        *,
        lease: int,
        hook_id: str,
        delivery_id: str,
        event_name: str,
    ) -> int | None:
        """The new job's id once its row is committed (its queue message follows); None when
        this (hook, delivery) was recorded before. Raises ``DeliveryNotRecorded`` (the view:
        503)."""
        now = utcnow()
        values = {
            "kind": "delivery",
            "payload": trigger,
            "hook_id": hook_id,
            "delivery_id": delivery_id,
            "event": event_name,
            "status": "queued",
            "attempts": 0,
            "created_at": now,
            "updated_at": now,
            "lease_until": now + dt.timedelta(seconds=lease),
        }
        try:
            delivery = _Delivery(values, self._inserter().params(values))
        except Exception as exc:
            raise DeliveryNotRecorded(f"{type(exc).__name__}: {exc}") from exc
        with self._pending_lock:
            self._pending.append(delivery)
        with self._writer:
            if not delivery.written:  # nobody took it along: write the pile, this one in it
                with self._between_processes:
                    with self._pending_lock:
                        pile, self._pending = self._pending, []
                    created, queued = self._write(pile)
                if created and not queued:
                    self._pusher.push(created)
        if delivery.error is not None:
            raise delivery.error
        return delivery.job_id

    def flush(self, timeout: float = 5.0) -> bool:
        """Wait until the queue messages of every row recorded so far are pushed."""
        return self._pusher.flush(timeout)

    def _inserter(self) -> _RawInsert:
        if self._insert is None:
            self._insert = _RawInsert(self.database, self.queue())
        return self._insert

    def _write(self, pile: list[_Delivery]) -> tuple[list[int], bool]:
        """INSERT the pile (one statement, committed); the ids of the rows it created, and
        whether their queue messages went in the same transaction."""
        try:
            rows, queued = self._inserter().insert([d.params for d in pile])
        except Exception as exc:
            for delivery in pile:
                delivery.error, delivery.written = exc, True
            return [], False
        created: list[int] = []
        for delivery in pile:
            key = (delivery.values["hook_id"], delivery.values["delivery_id"])
            delivery.job_id = rows.pop(key, None)  # a key twice in one pile: the first wins
            delivery.written = True
            if delivery.job_id is not None:
                created.append(delivery.job_id)
        return created, queued


def _same_file(path: str, other: str | None) -> bool:
    try:
        return other is not None and os.path.samefile(path, other)
    except OSError:
        return False


def _sqlite_file(url: str) -> str | None:
    """The database file of a ``sqlite:///path`` URL; None for a server or memory."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return str(parsed.database)
