"""The queue's handler registry and the retry decisions it understands.

The queue is generic: it knows rows, leases and retries, not what a job does. The layers
above fill a ``JobHandlers`` (enforcement: its job kinds and how a job that gave up is
reported; the runtime: the periodic tasks and what else the purge deletes) and build the
queue with it. A handler says how it ended by returning (done, in words for the log line)
or by raising ``RetryLater``, ``RetrySoon`` or ``GiveUp``; anything else it raises is
retried with backoff.

Depends on nothing of undersign at run time (the types named are for annotations only).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import ColumnElement
    from sqlalchemy.orm import InstrumentedAttribute

    from undersign.config import Settings
    from undersign.jobs.context import JobContext
    from undersign.jobs.models import Job
    from undersign.jobs.queue import JobQueue


class RetryLater(Exception):
    """Try the job again in ``delay`` seconds; the attempt counts towards the maximum."""

    counts = True

    def __init__(self, delay: float, reason: str) -> None:
        super().__init__(reason)
        self.delay = delay
        self.reason = reason


class RetrySoon(RetryLater):
    """Its work is busy elsewhere (another worker holds it): again in a moment, and the
    attempt does not count (nothing failed)."""

    counts = False


class GiveUp(Exception):
    """Retrying cannot help: the job ends ``failed`` with ``reason``. ``report``: tell the
    outside world (``JobHandlers.on_give_up``) before the row says failed."""

    def __init__(self, reason: str, *, report: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.report = report


#: Runs one job; returns what it decided, in words, for the job's log line.
Handler = Callable[["JobContext", "JobQueue", "Job"], str]


@dataclass(frozen=True)
class Periodic:
    """A task every worker process's scheduler fires when ``due(now)`` (a Huey periodic
    test); ``run`` decides itself whether it is this process's turn."""

    name: str
    due: Callable[[dt.datetime], bool]
    run: Callable[[JobQueue], None]


@dataclass(frozen=True)
class Expiry:
    """Rows the periodic purge deletes: ``expired(settings, now)`` selects them, ``key`` is
    the column they are deleted by (a batch of keys at a time)."""

    what: str
    key: InstrumentedAttribute[Any]
    expired: Callable[[Settings, dt.datetime], ColumnElement[bool]]


def _no_fields(_job: Job) -> dict[str, Any]:
    return {}


@dataclass
class JobHandlers:
    """What the layers above taught the queue; built once, before the queue."""

    kinds: dict[str, Handler] = field(default_factory=dict)
    #: Extra fields on every log line of a running job (which repository, which PR).
    describe: Callable[[Job], dict[str, Any]] = _no_fields
    #: Called when a job gives up with ``report``: (context, job, short reason).
    on_give_up: Callable[[JobContext, Job, str], None] | None = None
    periodic: list[Periodic] = field(default_factory=list)
    #: Deleted by the purge before the finished jobs (in this order).
    expiries: list[Expiry] = field(default_factory=list)

    def register(self, kind: str, handler: Handler) -> None:
        if kind in self.kinds:
            raise ValueError(f"job kind {kind!r} has a handler already")
        self.kinds[kind] = handler
