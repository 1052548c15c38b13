"""Huey, configured from settings: SQLite in the instance folder, or Redis for many machines.

A ``JobQueue`` is built by the runtime (``undersign.runtime.build_runtime``, never at import
time, one per runtime: no process-wide cache) with the ``JobHandlers`` the layers above
filled, and carries only job ids. Recording a job and handing it to Huey are two steps: the
row is committed first (in the caller's transaction), then Huey is told; if the process dies
in between, the sweeper finds the row once its lease has run out.

Depends on config, db, jobs (models, handlers, context, runner).
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as dt
import fcntl
import functools
import logging
import os
import random
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from queue import Empty, SimpleQueue
from typing import Any

from huey import RedisHuey, SqliteHuey, crontab
from huey.api import Huey
from huey.consumer import Consumer, Scheduler, Worker, WorkerRecycle
from huey.storage import RedisStorage, SqliteStorage
from pydantic_core import to_json
from sqlalchemy import event, make_url, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from undersign.config import Settings
from undersign.db import Database, utcnow
from undersign.jobs.context import JobContext
from undersign.jobs.handlers import JobHandlers
from undersign.jobs.models import Job
from undersign.jobs.runner import periodic_purge, run_job, sweep

log = logging.getLogger(__name__)

QUEUE_NAME = "undersign"
RUN_TASK = "undersign.run_job"
SWEEP_TASK = "undersign.sweep"


class _SqliteQueueStorage(SqliteStorage):
    """Huey's SQLite queue without an fsync per message: a message only tells a worker about
    a job row that is already durable, and the sweeper re-queues rows nobody picked up, so a
    message lost in a power cut costs a delay, never a delivery. WAL + NORMAL keeps the file
    consistent (Huey's own ``fsync=False`` would turn syncing off altogether)."""

    def _create_connection(self) -> Any:
        conn = super()._create_connection()
        conn.execute("pragma synchronous=NORMAL")
        return conn

    def enqueue_many(self, messages: list[bytes]) -> None:
        """Several messages in one transaction (Huey's enqueue is one per message)."""
        with self.db(commit=True) as cursor:
            cursor.executemany(
                "insert into task (queue, data, priority) values (?, ?, ?)",
                [(self.name, self.to_blob(message), 0) for message in messages],
            )


def make_huey(settings: Settings) -> Huey:
    """``RedisHuey`` for ``redis://``/``rediss://`` URLs, else ``SqliteHuey`` (a file)."""
    url = settings.queue_url or ""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(settings.queue_name or QUEUE_NAME, url=url, results=False, utc=True)
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
    elif url:
        raise ValueError(
            "UNDERSIGN_QUEUE_URL: expected redis://..., rediss://... or sqlite:///path"
        )
    else:
        path = Path(settings.instance_path) / "queue.sqlite3"
    path.parent.mkdir(parents=True, exist_ok=True)
    name = settings.queue_name or QUEUE_NAME
    return SqliteHuey(
        name, filename=str(path), results=False, utc=True, storage_class=_SqliteQueueStorage
    )


class JobQueue:
    """A Huey instance with the run and sweep tasks (and the handlers' periodic tasks)
    registered on it, and the job context its workers share."""

    def __init__(
        self,
        settings: Settings,
        database: Database | None = None,
        handlers: JobHandlers | None = None,
    ) -> None:
        self.settings = settings
        self.huey = make_huey(settings)
        self.handlers = handlers or JobHandlers()
        self._database = database
        self._context: JobContext | None = None
        self._lock = threading.Lock()
        self._template: Any = None
        self._run = self.huey.task(name=RUN_TASK)(self._run_job)
        self.huey.periodic_task(crontab(minute="*"), name=SWEEP_TASK)(self._periodic_sweep)
        for periodic in self.handlers.periodic:
            self.huey.periodic_task(periodic.due, name=periodic.name)(self._bound(periodic.run))

    def context(self) -> JobContext:
        with self._lock:
            if self._context is None:
                self._context = JobContext.from_settings(
                    self.settings, self._database, self.handlers
                )
            return self._context

    def enqueue(self, job_id: int, delay: float = 0.0) -> None:
        """Tell a worker about a job row (already committed)."""
        if delay > 0:
            self._run.schedule(args=(job_id,), delay=delay)
        else:
            self._run(job_id)

    def enqueue_quietly(self, job_ids: Iterable[int]) -> None:
        """Enqueue, logging instead of raising: the rows are safe and the sweeper will
        find them if the queue is unreachable now (one line, not one traceback). Several jobs
        go in one push (one Redis command, one SQLite transaction)."""
        ids = list(job_ids)
        if not ids:
            return
        try:
            messages = self.messages(ids)
            storage = self.huey.storage
            if isinstance(storage, RedisStorage):
                storage.conn.lpush(storage.queue_key, *messages)
            elif isinstance(storage, _SqliteQueueStorage):
                storage.enqueue_many(messages)
            else:  # pragma: no cover - the two storages make_huey builds
                for message in messages:
                    storage.enqueue(message)
        except Exception as exc:
            log.warning(
                "could not enqueue job(s) %s (%s); the sweeper will pick them up",
                ids[:20],
                _one_line(exc),
            )

    def messages(self, job_ids: Iterable[int]) -> list[bytes]:
        """The run task's serialized Huey messages for these jobs, one each."""
        message = self._message()
        serialize = self.huey.serializer.serialize
        return [serialize(message._replace(id=_task_id(), args=(job_id,))) for job_id in job_ids]

    def sqlite_file(self) -> tuple[str, str] | None:
        """(file, queue name) when the queue is a SQLite file, for a writer that puts its
        messages in the same transaction as its rows (``DeliveryRecorder``); else None."""
        storage = self.huey.storage
        if isinstance(storage, _SqliteQueueStorage):
            return str(storage.filename), str(storage.name)
        return None

    def _message(self) -> Any:
        """The run task's Huey message for job 0, built once: each push copies it with a new
        task id and its job id (building a ``Task`` for each cost more than the push)."""
        if self._template is None:
            self._template = self.huey._registry.create_message(self._run.s(0))
        return self._template

    def close(self) -> None:
        if self._context is not None and self._database is None:
            self._context.database.dispose()
        try:
            self.huey.storage.close()
        except Exception:  # pragma: no cover - storage may not support or need it
            log.debug("closing the queue storage failed", exc_info=True)

    def _run_job(self, job_id: int) -> None:
        run_job(self, job_id)

    def _bound(self, run: Callable[[JobQueue], None]) -> Callable[[], None]:
        """A periodic task's body as Huey calls it: with no arguments."""

        def body() -> None:
            run(self)

        return body

    def _periodic_sweep(self) -> None:
        sweep(self)
        periodic_purge(self)


def _task_id() -> str:
    """A Huey task id: unique, not secret (it names the message in Huey's logs). 128 random
    bits from ``random``, which CPython reseeds in a forked child; ``uuid4`` asks the kernel
    for every id, a system call per message."""
    return f"{random.getrandbits(128):032x}"  # nosec B311


def new_job(
    session: Session,
    kind: str,
    payload: dict[str, Any],
    *,
    lease: int,
    hook_id: str | None = None,
    delivery_id: str | None = None,
    event_name: str | None = None,
) -> Job:
    """Add a queued job row to ``session`` (the caller's transaction)."""
    now = utcnow()
    job = Job(
        kind=kind,
        payload=payload,
        hook_id=hook_id,
        delivery_id=delivery_id,
        event=event_name,
        status="queued",
        attempts=0,
        created_at=now,
        updated_at=now,
        lease_until=now + dt.timedelta(seconds=lease),
    )
    session.add(job)
    session.flush()
    return job


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
            log.warning("queue messages of job(s) %s not built (%s)", job_ids[:20], _one_line(exc))
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
                _one_line(exc),
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

    The ids that arrive while one push is out go together in the next (one Redis ``LPUSH``,
    one SQLite transaction). A ``SimpleQueue`` (C, no Python-level lock) between the threads:
    with a ``Condition``, waking the pusher cost each delivery more than its INSERT's Python.
    The thread starts with the first push of this process and holds the pusher only weakly,
    so an app that is let go (tests build hundreds) takes its connections with it; its
    thread then stops.
    """

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


def requeue_failed(session: Session, job_id: int, *, lease: int) -> bool:
    """Queue a failed job again from scratch (in the caller's transaction); False when it is
    not failed, or another request just did it (the conditional update lets one through)."""
    now = utcnow()
    reset = session.execute(
        update(Job)
        .where(Job.id == job_id, Job.status == "failed")
        .values(
            status="queued",
            attempts=0,
            finished_at=None,
            updated_at=now,
            lease_until=now + dt.timedelta(seconds=lease),
        )
    )
    return getattr(reset, "rowcount", 0) == 1


def enqueue_after_commit(session: Session, queue: JobQueue, job_ids: list[int]) -> None:
    """Hand the jobs to Huey once ``session`` commits (not before: a worker must see them)."""

    def _after_commit(_session: Session) -> None:
        queue.enqueue_quietly(job_ids)

    event.listen(session, "after_commit", _after_commit, once=True)


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


class QueueOutage:
    """The queue (Redis) unreachable: the consumer's threads wait a growing delay between
    attempts (1 s doubling up to ``MAX_WAIT``) and each attempt is one log line, instead of
    every thread logging a traceback every second."""

    MAX_WAIT = 30.0

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.attempts = 0
        self._retry_at = 0.0

    def wait(self) -> float:
        """Seconds until the next attempt may touch the queue (0: go ahead)."""
        return max(0.0, self._retry_at - time.monotonic()) if self.attempts else 0.0

    def failed(self, exc: BaseException) -> None:
        with self._lock:
            now = time.monotonic()
            if now < self._retry_at:
                return  # another thread's attempt at the same moment; already reported
            self.attempts += 1
            delay = min(2.0 ** (self.attempts - 1), self.MAX_WAIT)
            self._retry_at = now + delay
            attempts = self.attempts
        log.warning(
            "queue unreachable (%s); attempt %d failed, next in %.0f s",
            _one_line(exc),
            attempts,
            delay,
            extra={"queue_attempt": attempts, "retry_in_s": delay},
        )

    def recovered(self) -> None:
        if not self.attempts:
            return
        with self._lock:
            attempts, self.attempts, self._retry_at = self.attempts, 0, 0.0
        if attempts:
            log.info("queue reachable again after %d failed attempt(s)", attempts)


class _Worker(Worker):
    """Huey's worker loop, with ``QueueOutage`` instead of a traceback per failed read."""

    outage: QueueOutage

    def loop(self, now: Any = None) -> None:
        pause = self.outage.wait()
        if pause > 0:
            self.stop_flag.wait(pause)
            return
        try:
            task = self.huey.dequeue()
        except Exception as exc:
            self.outage.failed(exc)
            return
        self.outage.recovered()
        if task is None:
            if not self.huey.storage.blocking:
                self.sleep()
            return
        self.delay = self.default_delay
        try:
            self.huey.execute(task, now)
        except Exception:
            self._logger.exception("Unhandled error during execution of task %s.", task.id)
        self.task_count += 1  # as Huey's own loop: recycle after max_tasks
        if self.max_tasks and self.task_count >= self.max_tasks:
            raise WorkerRecycle()


class _Scheduler(Scheduler):
    """Huey's scheduler loop, with ``QueueOutage`` instead of a traceback per failed read."""

    outage: QueueOutage

    def loop(self, now: Any = None) -> None:
        pause = self.outage.wait()
        if pause > 0:
            self.stop_flag.wait(min(pause, float(self.interval)))
            self._next_loop = time.monotonic()
            return
        current = self._next_loop
        self._next_loop += self.interval
        if self._next_loop < time.monotonic():
            self._next_loop = time.monotonic()  # stalled (suspend): skip, as Huey does
            return
        try:
            due = list(self.huey.read_schedule(now))
        except Exception as exc:
            self.outage.failed(exc)
            return
        for index, task in enumerate(due):
            try:
                self.huey.enqueue(task)
            except Exception as exc:
                # Taken off the schedule already: put the rest back rather than lose them
                # (the sweeper would find their jobs, but only after their leases).
                self.outage.failed(exc)
                try:
                    for later in due[index:]:
                        self.huey.add_schedule(later)
                except Exception:
                    log.warning("%d scheduled task(s) left to the sweeper", len(due) - index)
                return
        if self.periodic and self._next_periodic <= time.monotonic():
            while self._next_periodic <= time.monotonic():
                self._next_periodic += self.periodic_task_seconds
            self.enqueue_periodic_tasks(now)
        self.sleep_for_interval(current, self.interval)


class _Consumer(Consumer):
    """Huey's consumer with undersign's worker and scheduler sharing one ``QueueOutage``."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.queue_outage = QueueOutage()  # before Huey's __init__ creates the threads
        super().__init__(*args, **kwargs)

    # Huey builds them from these classes; only the shared outage is added after.
    worker_class = _Worker
    scheduler_class = _Scheduler

    def _create_worker(self) -> Worker:
        worker = super()._create_worker()
        worker.outage = self.queue_outage
        return worker

    def _create_scheduler(self) -> Scheduler:
        scheduler = super()._create_scheduler()
        scheduler.outage = self.queue_outage
        return scheduler


class _EmbeddedConsumer(_Consumer):
    """Huey's consumer in threads of a process it does not own (no signal handlers)."""

    def _set_signal_handlers(self) -> None:
        return None


@dataclass
class ConsumerHandle:
    consumer: Any
    queue: JobQueue

    def stop(self, timeout: float = 10.0) -> None:
        """Let running jobs finish (up to ``timeout``), then stop the threads."""
        self.consumer.shutdown_timeout = timeout
        self.consumer.stop(graceful=True)


def make_consumer(queue: JobQueue, *, workers: int, embedded: bool) -> Any:
    cls = _EmbeddedConsumer if embedded else _Consumer
    return cls(
        queue.huey,
        workers=workers,
        periodic=True,
        initial_delay=0.05,
        backoff=1.5,
        max_delay=1.0,
        scheduler_interval=1,
        worker_type="thread",
        check_worker_health=not embedded,
    )


def start_embedded_consumer(queue: JobQueue, *, workers: int = 2) -> ConsumerHandle:
    """Workers as threads of this process (tests; ``undersign serve`` runs its workers in a
    process of their own). Jobs left over by a previous run are picked up at once."""
    consumer = make_consumer(queue, workers=workers, embedded=True)
    consumer.start()
    try:
        sweep(queue, everything=True)
    except Exception:
        log.exception("start-up sweep failed; the periodic sweep will retry")
    return ConsumerHandle(consumer, queue)
