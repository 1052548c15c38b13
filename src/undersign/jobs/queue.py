"""Huey, configured from settings: SQLite in the instance folder, or Redis for many machines.

A ``JobQueue`` is built by the runtime (``undersign.runtime.build_runtime``, never at import
time, one per runtime: no process-wide cache) with the ``JobHandlers`` the layers above
filled, and carries only job ids. Recording a job and handing it to Huey are two steps: the
row is committed first (in the caller's transaction), then Huey is told; if the process dies
in between, the sweeper finds the row once its lease has run out. Webhook deliveries are
recorded by ``jobs.recorder`` (group commit, their messages in the same transaction where
both are SQLite files).

Depends on config, db, jobs (models, handlers, context, runner).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from huey import RedisHuey, SqliteHuey, crontab
from huey.api import Huey
from huey.consumer import Consumer, Scheduler, Worker, WorkerRecycle
from huey.storage import RedisStorage, SqliteStorage
from sqlalchemy import event, update
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


class _RedisQueueStorage(RedisStorage):
    """Huey's Redis queue whose ``close`` lets go of its connections: Huey's own does nothing,
    so a closed runtime's pool kept its idle connections (a consumer's too) open on the server
    until the queue happened to be garbage collected. The pool connects again if used after."""

    def close(self) -> bool:
        self.pool.disconnect()
        return True


def make_huey(settings: Settings) -> Huey:
    """``RedisHuey`` for ``redis://``/``rediss://`` URLs, else ``SqliteHuey`` (a file)."""
    url = settings.queue_url or ""
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisHuey(
            settings.queue_name or QUEUE_NAME,
            url=url,
            results=False,
            utc=True,
            storage_class=_RedisQueueStorage,
        )
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
        *,
        refresh: Callable[[], object] | None = None,
    ) -> None:
        self.settings = settings
        #: Called each time the job context is asked for (before every job): the runtime's
        #: chance to take up credentials registered since (it reads at most every few seconds).
        self._refresh = refresh
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
        if self._refresh is not None:
            self._refresh()  # before taking the lock: it may call adopt()
        with self._lock:
            if self._context is None:
                self._context = JobContext.from_settings(
                    self.settings, self._database, self.handlers
                )
            return self._context

    def adopt(self, settings: Settings) -> None:
        """Run jobs with ``settings`` from now on (new GitHub credentials; the queue's own
        settings, its URL and name, are the same)."""
        with self._lock:
            self.settings = settings
            context = self._context
        if context is not None:
            context.adopt(settings)

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
                one_line(exc),
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


def one_line(exc: BaseException) -> str:
    """An exception as one log line: its type and the first line of its message."""
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
            one_line(exc),
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
