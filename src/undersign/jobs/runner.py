"""Running one job: claim its row, run its handler, then finish, retry later, or fail visibly.

* Claiming is one atomic UPDATE (queued, or running with an expired lease -> running), so a
  job Huey hands out twice (the sweeper re-enqueued it) still runs once at a time.
* What a job does is its kind's handler (``JobHandlers``, filled by the layers above). It
  ends the job by returning, or by raising ``RetryLater`` (backoff, the attempt counts),
  ``RetrySoon`` (busy elsewhere: again in a moment, the attempt does not count) or
  ``GiveUp`` (``failed`` with the reason; ``report`` has ``on_give_up`` tell the pull
  request first). Anything else it raises is retried with exponential backoff and jitter.
* Too many attempts end in ``failed`` with the reason, reported like a ``GiveUp``.

Depends on jobs.models/handlers/context, db, observability (logging, job latency).
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from typing import TYPE_CHECKING, Any

from sqlalchemy import and_, delete, or_, select, update

from undersign.db import RowLease, take_named_lease, utcnow
from undersign.jobs.context import JobContext
from undersign.jobs.handlers import GiveUp, RetryLater
from undersign.jobs.models import Job
from undersign.observability.logging import bind, unbind
from undersign.observability.metrics import record_job_finished

if TYPE_CHECKING:
    from undersign.jobs.queue import JobQueue

log = logging.getLogger(__name__)

MAX_BACKOFF_SECONDS = 600.0
MAX_ERROR_LENGTH = 1000
#: Finished jobs outlive GitHub's redelivery window (3 days; 7 on GitHub Enterprise Server).
PURGE_INTERVAL = 600.0
PURGE_BATCH = 500
#: The named lease (``leases`` table) that lets one process purge per interval.
PURGE_LEASE_NAME = "purge"
#: A job's row is leased by its status: queued, or running until ``lease_until``.
JOB_LEASE = RowLease(Job.lease_until)


def backoff_delay(ctx: JobContext, attempt: int) -> float:
    """Exponential backoff with "equal jitter": base * 2^(n-1), half of it random."""
    base = max(ctx.settings.job_retry_base_ms, 1) / 1000.0
    ceiling = min(base * 2 ** max(attempt - 1, 0), MAX_BACKOFF_SECONDS)
    return ceiling / 2 + random.uniform(0, ceiling / 2)  # noqa: S311 - jitter, not crypto


def _claim(ctx: JobContext, job_id: int) -> Job | None:
    now = utcnow()
    with ctx.database.session() as session:
        claimed = JOB_LEASE.take(
            session,
            Job.id == job_id,
            ttl=dt.timedelta(seconds=ctx.settings.job_lease),
            free=or_(Job.status == "queued", and_(Job.status == "running", Job.lease_until < now)),
            values={Job.status: "running", Job.attempts: Job.attempts + 1, Job.updated_at: now},
            now=now,
        )
        if claimed != 1:
            return None
        job = session.get(Job, job_id)
        if job is not None:
            session.expunge(job)
        return job


def _heartbeat(ctx: JobContext, job_id: int) -> None:
    with ctx.database.session() as session:
        JOB_LEASE.renew(
            session,
            Job.id == job_id,
            Job.status == "running",
            ttl=dt.timedelta(seconds=ctx.settings.job_lease),
        )


def _finish(ctx: JobContext, job_id: int, **values: Any) -> None:
    now = utcnow()
    with ctx.database.session() as session:
        session.execute(update(Job).where(Job.id == job_id).values(updated_at=now, **values))


def run_job(queue: JobQueue, job_id: int) -> None:
    """Huey's task body. Never raises: every outcome is written to the job row, or, when the
    database cannot take it (down), the job is tried again once its lease has run out."""
    try:
        _run_job(queue, job_id)
    except Exception:
        # The row keeps status and lease from before (queued, or running under our lease);
        # the claim accepts it again once the lease is over. Without this, only the sweeper,
        # once a minute, would notice the job after the database came back.
        delay = float(queue.settings.job_lease) + 1.0
        log.exception("job %s: could not record its outcome; tried again in %.0f s", job_id, delay)
        try:
            queue.enqueue(job_id, delay=delay)
        except Exception:
            log.exception("could not schedule job %s again; the sweeper will", job_id)


def _run_job(queue: JobQueue, job_id: int) -> None:
    ctx = queue.context()
    job = _claim(ctx, job_id)
    if job is None:
        return  # done already, or someone else holds its lease
    ctx.set_heartbeat(lambda: _heartbeat(ctx, job_id))
    log_token = bind(**_log_fields(ctx, job))
    try:
        handler = ctx.handlers.kinds.get(job.kind)
        if handler is None:
            raise GiveUp(f"unknown job kind {job.kind!r}", report=False)
        verdict = handler(ctx, queue, job)
    except RetryLater as retry:
        _reschedule(ctx, queue, job, retry)
    except GiveUp as failure:
        _fail(ctx, job, failure.reason, report=failure.report)
    except Exception as exc:
        log.exception("job %s crashed", job_id)
        _reschedule(
            ctx, queue, job, RetryLater(backoff_delay(ctx, job.attempts), short_reason(exc))
        )
    else:
        _finish(ctx, job_id, status="done", finished_at=utcnow(), last_error=None)
        _observe(ctx, job, "done")
        # The line to follow a delivery by: `jq 'select(.delivery_id == "...")'`.
        log.info("job %s done: %s", job_id, verdict, extra={"verdict": verdict})
    finally:
        ctx.set_heartbeat(None)
        unbind(log_token)


def _log_fields(ctx: JobContext, job: Job) -> dict[str, Any]:
    """On every line logged while the job runs: which delivery and job (and what the
    handlers add: which repository and pull request)."""
    return {
        "job_id": job.id,
        "job_kind": job.kind,
        "delivery_id": job.delivery_id,
        **ctx.handlers.describe(job),
    }


def _observe(ctx: JobContext, job: Job, status: str) -> None:
    """Job latency for /metrics: from the row's creation (the delivery arriving) to now."""
    seconds = (utcnow() - job.created_at).total_seconds()
    record_job_finished(ctx.database, job.kind, seconds, status)


def short_reason(exc: BaseException) -> str:
    """An exception as the one line a job row keeps."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_ERROR_LENGTH]


def _reschedule(ctx: JobContext, queue: JobQueue, job: Job, retry: RetryLater) -> None:
    attempts = job.attempts if retry.counts else job.attempts - 1
    if attempts >= ctx.settings.job_max_attempts:
        _fail(ctx, job, f"gave up after {attempts} attempts: {retry.reason}", report=True)
        return
    now = utcnow()
    with ctx.database.session() as session:
        # Queued again under a lease from its planned retry on: the sweeper leaves it alone
        # until well after that.
        JOB_LEASE.renew(
            session,
            Job.id == job.id,
            ttl=dt.timedelta(seconds=ctx.settings.job_lease),
            now=now + dt.timedelta(seconds=retry.delay),
            values={
                Job.status: "queued",
                Job.attempts: attempts,
                Job.last_error: retry.reason[:MAX_ERROR_LENGTH],
                Job.updated_at: now,
            },
        )
    log.info(
        "job %s retries in %.1f s: %s",
        job.id,
        retry.delay,
        retry.reason,
        extra={"error": retry.reason, "attempt": attempts},
    )
    try:
        queue.enqueue(job.id, delay=retry.delay)
    except Exception:
        log.exception("could not schedule the retry of job %s; the sweeper will", job.id)


def _fail(ctx: JobContext, job: Job, reason: str, *, report: bool) -> None:
    log.warning("job %s failed: %s", job.id, reason, extra={"error": reason})
    if report and ctx.handlers.on_give_up is not None:
        # Before the row says failed, so "failed" means the pull request was told.
        short = reason.split(": ", 1)[-1] if reason.startswith("gave up") else reason
        try:
            ctx.handlers.on_give_up(ctx, job, short)
        except Exception:
            log.exception("job %s: reporting that it gave up failed", job.id)
    _finish(
        ctx,
        job.id,
        status="failed",
        finished_at=utcnow(),
        last_error=reason[:MAX_ERROR_LENGTH],
    )
    _observe(ctx, job, "failed")


def sweep(queue: JobQueue, *, everything: bool = False) -> int:
    """Hand again to Huey every job whose lease ran out (queued but never delivered to a
    worker, or running on a worker that died). ``everything`` (at start-up): every queued job
    too, leased or not; Huey may still hold some of them, and the claim runs each once."""
    ctx = queue.context()
    now = utcnow()
    lease = ctx.settings.job_lease
    expired = and_(Job.status.in_(("queued", "running")), Job.lease_until < now)
    condition = or_(Job.status == "queued", expired) if everything else expired
    with ctx.database.session() as session:
        ids = list(session.scalars(select(Job.id).where(condition).order_by(Job.id).limit(1000)))
        if ids:
            # A new lease for the jobs handed out now, so the next sweep leaves them to the
            # workers instead of enqueuing the whole backlog again every minute. Queued again
            # (a dead worker's "running" too): the claim takes queued jobs whatever the lease.
            # Same condition as above: a job claimed meanwhile is left alone.
            JOB_LEASE.take(
                session,
                Job.id.in_(ids),
                ttl=dt.timedelta(seconds=lease),
                free=condition,
                values={Job.status: "queued"},
                now=now,
            )
    if ids:
        log.info("sweeper: re-enqueuing %d job(s)", len(ids))
    queue.enqueue_quietly(ids)
    return len(ids)


def purge(ctx: JobContext, *, batch: int = PURGE_BATCH, batches: int = 10) -> tuple[int, ...]:
    """Delete the rows of every registered ``Expiry`` (web sessions: the runtime's), then
    jobs finished more than ``UNDERSIGN_JOB_RETENTION_DAYS`` ago; returns how many of each, in
    that order.
    At most ``batches`` deletes of ``batch`` rows per table, so one run never holds a long
    lock; the next run goes on.

    Finished jobs are kept a week by default: their (hook, delivery) key dedupes redeliveries,
    which GitHub allows for 3 days and GitHub Enterprise Server for 7.
    """
    now = utcnow()
    retention = dt.timedelta(days=ctx.settings.job_retention_days)
    old_jobs = and_(Job.status.in_(("done", "failed")), Job.finished_at < now - retention)
    targets = [(e.what, e.key, e.expired(ctx.settings, now)) for e in ctx.handlers.expiries]
    targets.append(("finished job(s)", Job.id, old_jobs))
    counts = [0] * len(targets)
    for index, (_what, key, condition) in enumerate(targets):
        for _ in range(batches):
            with ctx.database.session() as session:
                keys = list(session.scalars(select(key).where(condition).limit(batch)))
                if keys:
                    session.execute(delete(key.class_).where(key.in_(keys), condition))
            counts[index] += len(keys)
            if len(keys) < batch:
                break
    if any(counts):
        log.info(
            "purged %s",
            ", ".join(f"{n} {what}" for n, (what, _, _) in zip(counts, targets, strict=True)),
        )
    return tuple(counts)


def periodic_purge(queue: JobQueue) -> None:
    """From the per-minute sweep: one purge per ``PURGE_INTERVAL`` across every process."""
    ctx = queue.context()
    try:
        if take_named_lease(ctx.database, PURGE_LEASE_NAME, dt.timedelta(seconds=PURGE_INTERVAL)):
            purge(ctx)
    except Exception:
        log.exception("purge failed; the next interval retries")
