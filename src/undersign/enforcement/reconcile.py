"""The reconciler: open pull requests whose CLA status is missing or stale get re-evaluated.

GitHub never retries a failed delivery by itself, so a delivery lost while undersign was
down (or a job that gave up) would leave a pull request without a verdict. Every
``UNDERSIGN_RECONCILE_INTERVAL`` minutes (and on ``undersign reconcile``) this lists the open
pull requests of every covered repository and compares each head with what
``pull_request_checks`` says was last published. Only the differing ones become ``evaluate``
jobs (through the queue, so the per pull request lock and the pacer apply as usual); an
up-to-date pull request costs nothing beyond its share of the listing.

GitHub cost per run: one ``GET /repos/{o}/{r}/pulls?state=open&per_page=100`` per covered
repository (one more per further 100 open pull requests), plus one
``GET /orgs/{org}/repos?per_page=100`` per organization link (per 100 repositories). Writes
only happen in the evaluations it queues.

In App mode an installation recorded as suspended is passed over: none of its repositories
is listed (GitHub refuses its tokens until the account unsuspends it, and its ``unsuspend``
webhook puts its open pull requests up for a verdict), no token is asked for, and the report
says so once per installation, naming the account and since when.

Many worker processes all fire the periodic task; the named lease ``reconcile`` (``leases``
table) lets one of them run per interval.

Depends on agreements.models, db, enforcement (service, models, tasks), github (errors,
app), jobs.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select

from undersign.agreements.models import OrgLink, RepoLink
from undersign.db import take_named_lease, utcnow
from undersign.enforcement import service
from undersign.enforcement.models import PullRequestCheck
from undersign.enforcement.tasks import DELIVERY, EVALUATE, Evaluate, evaluate_jobs, targets
from undersign.github.app import Suspension
from undersign.github.errors import GitHubError, NotFound, RateLimited
from undersign.jobs.context import JobContext
from undersign.jobs.handlers import Periodic
from undersign.jobs.models import Job
from undersign.jobs.queue import JobQueue, enqueue_after_commit

log = logging.getLogger(__name__)

RECONCILE_LEASE_NAME = "reconcile"


@dataclass
class ReconcileReport:
    repositories: int = 0
    open_pulls: int = 0
    queued: list[tuple[str, int]] = field(default_factory=list)
    closed: list[tuple[str, int]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    #: App mode: installations recorded as suspended, whose repositories were not listed.
    suspended: dict[int, Suspension] = field(default_factory=dict)

    def passed_over(self) -> list[str]:
        """One line per suspended installation passed over."""
        return [
            f"{s.account}: installation {s.installation_id} suspended on GitHub since "
            f"{s.since:%Y-%m-%d %H:%M} UTC; its repositories passed over"
            for s in self.suspended.values()
        ]


def schedule(interval_minutes: int) -> Callable[[dt.datetime], bool]:
    """Huey's periodic test: true at every multiple of the interval since midnight."""
    interval = max(int(interval_minutes), 1)

    def due(when: dt.datetime) -> bool:
        return (when.hour * 60 + when.minute) % interval == 0

    return due


def covered_repositories(ctx: JobContext, report: ReconcileReport) -> list[str]:
    """Repository links, then every repository of each linked organization (archived ones
    left out: GitHub refuses statuses there). An organization whose installation is
    suspended is not listed (noted on ``report``)."""
    with ctx.database.session() as session:
        repos = list(session.scalars(select(RepoLink.full_name).order_by(RepoLink.full_name)))
        orgs = list(session.scalars(select(OrgLink.org).order_by(OrgLink.org)))
    seen = {name.lower() for name in repos}
    names = [name.lower() for name in repos]
    for org in orgs:
        if _suspended(ctx, report, account=org):
            continue
        for repo in ctx.github.list_account_repos(org):
            name = str(repo.get("full_name") or "").lower()
            if name and not repo.get("archived") and name not in seen:
                seen.add(name)
                names.append(name)
    return names


def _suspended(
    ctx: JobContext, report: ReconcileReport, *, account: str = "", repo: str = ""
) -> bool:
    """App mode: the installation an account's or a repository's requests go through is
    recorded as suspended (noted on ``report``). Found as those requests find it, never
    with a token; if it cannot be found, the request itself will say why."""
    if not ctx.settings.app_mode:
        return False
    app = ctx.app
    try:
        installation = (
            app.installation_for_repo(repo) if repo else app.installation_for_account(account)
        )
    except GitHubError:
        return False
    suspension = app.suspension(installation)
    if suspension is None:
        return False
    report.suspended.setdefault(installation, suspension)
    return True


def _pending(ctx: JobContext) -> set[tuple[str, int]]:
    """Pull requests a queued or running job will evaluate anyway."""
    with ctx.database.session() as session:
        rows = session.execute(
            select(Job.kind, Job.payload).where(
                Job.status.in_(("queued", "running")), Job.kind.in_((DELIVERY, EVALUATE))
            )
        ).all()
    pending: set[tuple[str, int]] = set()
    for kind, payload in rows:
        repo, numbers = _all_targets(kind, payload)
        pending.update((repo.lower(), n) for n in numbers)
    return pending


def _all_targets(kind: str, payload: dict[str, Any] | None) -> tuple[str, list[int]]:
    """What a job will evaluate; a merge group's pull requests too (``targets`` leaves
    them out: nothing to report on them once the group is gone, but they are pending)."""
    payload = payload or {}
    if payload.get("kind") == "merge_group":
        numbers = [n for n in payload.get("numbers") or [] if isinstance(n, int)]
        return str(payload.get("repo") or ""), numbers
    return targets(kind, payload)


def _stale(check: PullRequestCheck | None, head_sha: str, base_ref: str | None) -> bool:
    """No verdict yet, an older head, another base (a retarget whose ``edited`` delivery was
    lost), an error verdict, or our status is not on the head."""
    if check is None:
        return True
    return (
        check.head_sha != head_sha
        or check.base_ref != base_ref
        or check.verdict in (None, "error")
        or check.status_sha != head_sha
    )


def reconcile(
    ctx: JobContext, queue: JobQueue, repositories: Iterable[str] | None = None
) -> ReconcileReport:
    """Queue an evaluation for every open pull request whose status is missing or stale;
    mark closed the ones GitHub no longer lists as open."""
    report = ReconcileReport()
    try:
        names = (
            covered_repositories(ctx, report)
            if repositories is None
            else [r.lower() for r in repositories]
        )
    except RateLimited as exc:
        report.errors.append(f"rate limited: {exc}")
        return report
    except GitHubError as exc:
        report.errors.append(f"listing repositories: {exc}")
        return report
    pending = _pending(ctx)
    for name in names:
        if _suspended(ctx, report, repo=name):
            continue
        owner, _, repo = name.partition("/")
        listed_at = utcnow()
        try:
            pulls = ctx.github.list_open_pulls(owner, repo)
        except RateLimited as exc:
            report.errors.append(f"rate limited: {exc}")
            break  # nothing more to ask until the reset
        except NotFound:
            report.errors.append(f"{name}: not found (no access?)")
            continue
        except GitHubError as exc:
            report.errors.append(f"{name}: {exc}")
            continue
        report.repositories += 1
        report.open_pulls += len(pulls)
        reconcile_repo(ctx, queue, name, pulls, pending, report, listed_at)
    if report.queued or report.closed:
        log.info(
            "reconciler: %d to re-evaluate, %d closed, in %d repositories",
            len(report.queued),
            len(report.closed),
            report.repositories,
        )
    return report


def reconcile_repo(
    ctx: JobContext,
    queue: JobQueue,
    name: str,
    pulls: list[dict[str, object]],
    pending: set[tuple[str, int]],
    report: ReconcileReport,
    listed_at: dt.datetime,
) -> None:
    """``listed_at``: when the listing was asked for. A pull request opened (or reopened) and
    evaluated after that is missing from the list but open: only rows last written before
    the listing may be marked closed."""
    heads: dict[int, str] = {}
    bases: dict[int, str | None] = {}
    listed: dict[int, dict[str, object] | None] = {}
    for pull in pulls:
        number, head, base = pull.get("number"), pull.get("head"), pull.get("base")
        sha = head.get("sha") if isinstance(head, dict) else None
        ref = base.get("ref") if isinstance(base, dict) else None
        if isinstance(number, int) and isinstance(sha, str):
            heads[number] = sha
            bases[number] = ref if isinstance(ref, str) else None
            listed[number] = service.pull_subset(pull)
    with ctx.database.session() as session:
        checks = {
            c.number: c
            for c in session.scalars(
                select(PullRequestCheck).where(PullRequestCheck.repo_full_name == name)
            )
        }
        stale = [
            n
            for n, sha in sorted(heads.items())
            if (name, n) not in pending
            and (_stale(checks.get(n), sha, bases[n]) or not checks[n].is_open)  # open, yet closed
        ]
        closed = [
            n
            for n, c in sorted(checks.items())
            if c.is_open and n not in heads and c.updated_at < listed_at
        ]
        evaluations = [Evaluate(name, n, "reconcile", pull=listed[n]) for n in stale]
        ids = [j.id for j in evaluate_jobs(session, evaluations, lease=ctx.settings.job_lease)]
        if ids:
            enqueue_after_commit(session, queue, ids)
    for number in closed:
        service.mark_closed(ctx, name, number, before=listed_at)
    report.queued.extend((name, n) for n in stale)
    report.closed.extend((name, n) for n in closed)


def take_turn(ctx: JobContext, seconds: float, *, name: str = RECONCILE_LEASE_NAME) -> bool:
    """True for one caller per ``seconds`` across every process (the named lease ``name``)."""
    return take_named_lease(ctx.database, name, dt.timedelta(seconds=max(seconds, 1.0)))


def periodic_reconcile(queue: JobQueue) -> None:
    """Huey's periodic task body: one run per interval, whichever worker fires first."""
    ctx = queue.context()
    interval = ctx.settings.reconcile_interval
    if interval <= 0:
        return
    try:
        if not take_turn(ctx, interval * 60 - 30):
            return
        report = reconcile(ctx, queue)
    except Exception:
        log.exception("reconciler run failed; the next interval retries")
        return
    for line in report.passed_over():
        log.info("reconciler: %s", line)
    for error in report.errors:
        log.warning("reconciler: %s", error)


def periodic(interval_minutes: int) -> Periodic:
    """The reconciler as the queue's periodic task (for ``UNDERSIGN_RECONCILE_INTERVAL``)."""
    return Periodic("undersign.reconcile", schedule(interval_minutes), periodic_reconcile)
