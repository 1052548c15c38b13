"""Running one job: claim its row, do the work, then finish, retry later, or fail visibly.

* Claiming is one atomic UPDATE (queued, or running with an expired lease -> running), so a
  job Huey hands out twice (the sweeper re-enqueued it) still runs once at a time.
* Retries: 5xx and timeouts back off exponentially with jitter; a rate limit waits exactly
  as long as GitHub said (and shuts the token's gate for every process); a pull request being
  evaluated elsewhere is retried in a moment without using up an attempt.
* A plain 404 (repository gone, access lost) is not retried. Any other 4xx, or too many
  attempts, ends in ``failed`` with the reason, and the pull request gets an ``error`` status
  with a short explanation instead of waiting forever.
"""

from __future__ import annotations

import datetime as dt
import logging
import random
from typing import Any

from sqlalchemy import and_, delete, or_, select, update

from undersign.auth.models import WebSession
from undersign.db import RowLease, take_named_lease, utcnow
from undersign.enforcement import service
from undersign.github.errors import GitHubError, GitHubRequestError, NotFound, RateLimited
from undersign.github.webhooks import has_recheck_command
from undersign.jobs.context import JobContext
from undersign.jobs.models import Job
from undersign.jobs.queue import JobQueue, new_job
from undersign.observability.logging import bind, unbind
from undersign.observability.metrics import record_job_finished

log = logging.getLogger(__name__)

BUSY_RETRY_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 600.0
MAX_ERROR_LENGTH = 1000
#: Finished jobs outlive GitHub's redelivery window (3 days; 7 on GitHub Enterprise Server).
JOB_RETENTION = dt.timedelta(days=7)
PURGE_INTERVAL = 600.0
PURGE_BATCH = 500
#: The named lease (``leases`` table) that lets one process purge per interval.
PURGE_LEASE_NAME = "purge"
#: A job's row is leased by its status: queued, or running until ``lease_until``.
JOB_LEASE = RowLease(Job.lease_until)


class _Retry(Exception):
    def __init__(self, delay: float, reason: str, *, counts: bool = True) -> None:
        super().__init__(reason)
        self.delay = delay
        self.reason = reason
        self.counts = counts


class _Fail(Exception):
    def __init__(self, reason: str, *, report: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.report = report


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
    log_token = bind(**_log_fields(job))
    try:
        verdict = _dispatch(ctx, queue, job)
    except _Retry as retry:
        _reschedule(ctx, queue, job, retry)
    except _Fail as failure:
        _fail(ctx, job, failure.reason, report=failure.report)
    except Exception as exc:
        log.exception("job %s crashed", job_id)
        _reschedule(ctx, queue, job, _Retry(backoff_delay(ctx, job.attempts), _short(exc)))
    else:
        _finish(ctx, job_id, status="done", finished_at=utcnow(), last_error=None)
        _observe(ctx, job, "done")
        # The line to follow a delivery by: `jq 'select(.delivery_id == "...")'`.
        log.info("job %s done: %s", job_id, verdict, extra={"verdict": verdict})
    finally:
        ctx.set_heartbeat(None)
        unbind(log_token)


def _log_fields(job: Job) -> dict[str, Any]:
    """On every line logged while the job runs: which delivery, job, repository and PR."""
    repo, numbers = _targets(job)
    return {
        "job_id": job.id,
        "job_kind": job.kind,
        "delivery_id": job.delivery_id,
        "repository": repo or None,
        "pull_request": numbers[0] if len(numbers) == 1 else (numbers or None),
    }


def _observe(ctx: JobContext, job: Job, status: str) -> None:
    """Job latency for /metrics: from the row's creation (the delivery arriving) to now."""
    seconds = (utcnow() - job.created_at).total_seconds()
    record_job_finished(ctx.database, job.kind, seconds, status)


def _short(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    return text[:MAX_ERROR_LENGTH]


def _reschedule(ctx: JobContext, queue: JobQueue, job: Job, retry: _Retry) -> None:
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
    if report:
        # Before the row says failed, so "failed" means the pull request was told.
        repo, numbers = _targets(job)
        short = reason.split(": ", 1)[-1] if reason.startswith("gave up") else reason
        for number in numbers:
            try:
                service.post_error_status(
                    ctx, repo, number, _status_reason(short), not_before=job.created_at
                )
            except Exception as exc:
                log.warning("could not post the error status on %s#%s: %s", repo, number, exc)
    _finish(
        ctx,
        job.id,
        status="failed",
        finished_at=utcnow(),
        last_error=reason[:MAX_ERROR_LENGTH],
    )
    _observe(ctx, job, "failed")


def _status_reason(reason: str) -> str:
    if "answered 5" in reason or "Unavailable" in reason or "did not answer" in reason:
        return "GitHub is failing; comment /cla check to retry."
    if "rate limit" in reason.lower():
        return "GitHub rate limit; comment /cla check to retry."
    return reason[:80] + "; comment /cla check to retry."


def _targets(job: Job) -> tuple[str, list[int]]:
    payload = job.payload or {}
    repo = str(payload.get("repo") or "")
    numbers = [int(n) for n in payload.get("numbers") or [] if isinstance(n, int)]
    if job.kind == "evaluate" and isinstance(payload.get("number"), int):
        numbers = [payload["number"]]
    if job.payload.get("kind") == "merge_group":
        numbers = []  # the group's head is gone once the queue moves on
    return repo, numbers if repo else []


def _dispatch(ctx: JobContext, queue: JobQueue, job: Job) -> str:
    """Do the job; returns what it decided, in words, for its log line."""
    try:
        if job.kind == "delivery":
            return _delivery(ctx, job)
        if job.kind == "evaluate":
            return _evaluate(ctx, queue, job)
        if job.kind == "person":
            return _person(ctx, queue, job)
        raise _Fail(f"unknown job kind {job.kind!r}", report=False)
    except service.PullRequestBusy as exc:
        raise _Retry(BUSY_RETRY_SECONDS, str(exc), counts=False) from None
    except RateLimited as exc:
        wait = ctx.pacer.block(exc.retry_after, str(exc) or "rate limited")
        raise _Retry(wait + random.uniform(0, 1), f"rate limited: {exc}") from None  # noqa: S311
    except NotFound as exc:
        raise _Fail(f"GitHub answered 404: {exc}", report=False) from None
    except GitHubRequestError as exc:
        raise _Fail(str(exc), report=True) from None
    except GitHubError as exc:
        raise _Retry(backoff_delay(ctx, job.attempts), _short(exc)) from None


def _verdict(*outcomes: service.Outcome) -> str:
    """``success``/``failure``/``error``, or why nothing was published; one per PR."""
    return ", ".join(o.state or o.skipped or "nothing to do" for o in outcomes) or "no PR"


def _evaluate(ctx: JobContext, queue: JobQueue, job: Job) -> str:
    """A re-evaluation (a signature, a policy change, the reconciler: usually one of many).

    Its status goes out now; a comment edit it needs goes to a new job at the back of the
    queue. A burst's jobs are all queued before any of those, so every status of the burst
    is posted before any comment edit, under the same write pacing: the last pull request
    turns green after N writes, not 2N. The comment job (``"comment": true``) evaluates again
    (one conditional request, free when nothing changed) and writes the comment inline.
    """
    payload = job.payload
    repo, number = str(payload["repo"]), int(payload["number"])
    comment_now = bool(payload.get("comment"))
    because = str(payload.get("because") or "")
    outcome = service.evaluate_pull_request(
        ctx,
        repo,
        number,
        not_before=job.created_at,
        known=service.PullFacts.from_pull(payload.get("pull")),
        # A signature or policy change did not touch the pull request itself.
        reuse_stored=because.startswith("person") or because == "policy change",
        defer_comment=not comment_now,
    )
    if outcome.comment_deferred:
        with ctx.database.session() as session:
            follow_up = new_job(
                session,
                "evaluate",
                # The same cause: what it says about the pull request still holds.
                {**payload, "comment": True},
                lease=ctx.settings.job_lease,
            ).id
        queue.enqueue_quietly([follow_up])
        return _verdict(outcome) + " (comment edit queued)"
    return _verdict(outcome)


def _delivery(ctx: JobContext, job: Job) -> str:
    payload = job.payload
    kind, action = payload.get("kind"), payload.get("action")
    repo = str(payload.get("repo") or "")
    numbers = [int(n) for n in payload.get("numbers") or []]
    if kind == "pull_request" and action == "closed":
        for number in numbers:
            service.mark_closed(ctx, repo, number)
        return "closed"
    if kind == "pull_request":
        hint = payload.get("commit_count")
        return _verdict(
            *(
                service.evaluate_pull_request(
                    ctx,
                    repo,
                    number,
                    not_before=job.created_at,
                    commits_hint=hint if isinstance(hint, int) else None,
                    just_opened=action == "opened",
                    known=service.PullFacts.from_pull(payload.get("pull")),
                )
                for number in numbers
            )
        )
    if kind == "issue_comment":
        if not _is_recheck(ctx, payload):
            return "no recheck command"
        return _verdict(
            *(
                service.evaluate_pull_request(ctx, repo, number, not_before=job.created_at)
                for number in numbers
            )
        )
    if kind == "merge_group":
        return _verdict(
            service.evaluate_merge_group(
                ctx, repo, numbers, str(payload["head_sha"]), not_before=job.created_at
            )
        )
    if kind in ("installation", "installation_repositories", "check_run"):
        from undersign.enforcement.checks import handle_app_delivery  # GitHub App mode

        handle_app_delivery(ctx, payload, job.created_at)
        return f"{kind} handled"
    raise _Fail(f"unknown delivery kind {kind!r}", report=False)


def _is_recheck(ctx: JobContext, payload: dict[str, Any]) -> bool:
    """A recheck command from a person (never from a bot, least of all ourselves)."""
    body = payload.get("comment_body")
    if payload.get("commenter_type") == "Bot" or service.COMMENT_MARKER in str(body or ""):
        return False
    login, bot_id = service.bot_identity(ctx)
    commenter_login = str(payload.get("commenter_login") or "")
    if payload.get("commenter_id") == bot_id or commenter_login.casefold() == login.casefold():
        return False
    return has_recheck_command(body, bot_login=login)


def _person(ctx: JobContext, queue: JobQueue, job: Job) -> str:
    """A signature changed: evaluate every open pull request this person contributed to,
    one job each (so one slow pull request does not hold up the others)."""
    github_id = int(job.payload["github_id"])
    with ctx.database.session() as session:
        targets = service.open_pulls_of_person(session, github_id)
        ids = [
            new_job(
                session,
                "evaluate",
                {"repo": repo, "number": number, "because": f"person {github_id}"},
                lease=ctx.settings.job_lease,
            ).id
            for repo, number in targets
        ]
    queue.enqueue_quietly(ids)
    return f"{len(ids)} pull request(s) to re-evaluate"


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


def purge(ctx: JobContext, *, batch: int = PURGE_BATCH, batches: int = 10) -> tuple[int, int]:
    """Delete web sessions past their lifetime or idle timeout, and jobs finished more than
    ``JOB_RETENTION`` ago; returns (sessions, jobs) deleted. At most ``batches`` deletes of
    ``batch`` rows per table, so one run never holds a long lock; the next run goes on.

    Finished jobs are kept a week: their (hook, delivery) key dedupes redeliveries, which
    GitHub allows for 3 days and GitHub Enterprise Server for 7.
    """
    now = utcnow()
    idle = dt.timedelta(seconds=ctx.settings.session_idle_timeout)
    stale_sessions = or_(WebSession.expires_at < now, WebSession.last_seen_at < now - idle)
    old_jobs = and_(Job.status.in_(("done", "failed")), Job.finished_at < now - JOB_RETENTION)
    counts = [0, 0]
    for index, (key, condition) in enumerate(
        ((WebSession.id_hash, stale_sessions), (Job.id, old_jobs))
    ):
        for _ in range(batches):
            with ctx.database.session() as session:
                keys = list(session.scalars(select(key).where(condition).limit(batch)))
                if keys:
                    session.execute(delete(key.class_).where(key.in_(keys), condition))
            counts[index] += len(keys)
            if len(keys) < batch:
                break
    if any(counts):
        log.info("purged %d expired session(s) and %d finished job(s)", *counts)
    return counts[0], counts[1]


def periodic_purge(queue: JobQueue) -> None:
    """From the per-minute sweep: one purge per ``PURGE_INTERVAL`` across every process."""
    ctx = queue.context()
    try:
        if take_named_lease(ctx.database, PURGE_LEASE_NAME, dt.timedelta(seconds=PURGE_INTERVAL)):
            purge(ctx)
    except Exception:
        log.exception("purge failed; the next interval retries")
