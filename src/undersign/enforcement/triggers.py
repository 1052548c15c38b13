"""What makes undersign look at pull requests again, besides webhooks: signatures changing,
proven email addresses changing and policy changing (versions, allowlists, links). The
runtime wires them to its queue.

Depends on agreements.models, enforcement (models, tasks), jobs.queue.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from sqlalchemy import event, select
from sqlalchemy.orm import Session

from undersign.agreements.companies import ApprovalChange, CompanyService
from undersign.agreements.models import Agreement, OrgLink, RepoLink
from undersign.db import utcnow
from undersign.enforcement.models import PullRequestCheck, PullRequestEmail
from undersign.enforcement.tasks import Evaluate, PersonChanged, evaluate_jobs, person_job
from undersign.jobs.queue import JobQueue, enqueue_after_commit


def on_signature_change(queue: JobQueue, session: Session) -> Callable[[int, str], None]:
    """The ``SignatureService(session, on_change=...)`` callback.

    The job row is added to ``session``, so it commits together with the signature (or not at
    all), and Huey hears of it only after that commit: a worker never evaluates before the
    signature is visible, and a crash right after the commit is healed by the sweeper. The
    job then re-evaluates every open pull request the person contributed to (signed: they may
    now pass; revoked: they must fail again).
    """

    def changed(github_id: int, event: str) -> None:
        change = PersonChanged(int(github_id), event)
        job = person_job(session, change, lease=queue.settings.job_lease)
        enqueue_after_commit(session, queue, [job.id])

    return changed


def requeue_open_pull_requests(
    queue: JobQueue,
    session: Session,
    *,
    repos: Iterable[str] = (),
    orgs: Iterable[str] = (),
    agreement_id: int | None = None,
) -> int:
    """Queue an ``evaluate`` job for every open pull request a policy change can affect.

    A policy change (a material version, the allowlist, a repository or organization link)
    changes verdicts without any push, so no webhook will come: the open pull requests
    undersign knows of (``pull_request_checks``) must be looked at again. Affected are those
    of ``repos``, of every repository of ``orgs`` that has no repository link of its own
    (that link wins over the org's), and of every repository ``agreement_id`` covers now
    (for a corporate agreement: the individual agreement beside it).
    The jobs join ``session``'s transaction and reach Huey only after it commits, so a
    worker reads the new policy; call this last in the transaction. Returns how many.
    """
    wanted_repos = {name.lower() for name in repos}
    wanted_orgs = {org.lower() for org in orgs}
    if agreement_id is not None:
        # A corporate agreement covers no repository itself: its companies cover people
        # where the individual agreement beside it applies (a material version of it).
        beside = session.scalar(
            select(Agreement.for_agreement_id).where(
                Agreement.id == agreement_id, Agreement.kind == "corporate"
            )
        )
        agreement_id = beside if beside is not None else agreement_id
    open_repos = set(
        session.scalars(
            select(PullRequestCheck.repo_full_name)
            .where(PullRequestCheck.is_open.is_(True))
            .distinct()
        )
    )
    if not open_repos or not (wanted_repos or wanted_orgs or agreement_id is not None):
        return 0
    repo_links = dict(session.execute(select(RepoLink.full_name, RepoLink.agreement_id)).all())
    org_links = dict(session.execute(select(OrgLink.org, OrgLink.agreement_id)).all())
    affected: set[str] = set()
    for name in open_repos:
        owner = name.split("/", 1)[0]
        if name in wanted_repos or (owner in wanted_orgs and name not in repo_links):
            affected.add(name)
        elif agreement_id is not None:
            covering = repo_links.get(name, org_links.get(owner))
            if covering == agreement_id:
                affected.add(name)
    if not affected:
        return 0
    targets = session.execute(
        select(PullRequestCheck.repo_full_name, PullRequestCheck.number)
        .where(PullRequestCheck.is_open.is_(True), PullRequestCheck.repo_full_name.in_(affected))
        .order_by(PullRequestCheck.repo_full_name, PullRequestCheck.number)
    ).all()
    evaluations = [Evaluate(name, number, "policy change") for name, number in targets]
    return _queue_at_commit(queue, session, evaluations)


def _queue_at_commit(queue: JobQueue, session: Session, evaluations: list[Evaluate]) -> int:
    """Add ``evaluate`` jobs to ``session``'s transaction, dated at its commit, and hand
    them to Huey after it; returns how many."""
    jobs = evaluate_jobs(session, evaluations, lease=queue.settings.job_lease)
    if jobs:

        def _stamp(_session: Session) -> None:
            # An evaluation that *started* after a job's created_at counts as its answer
            # (service.evaluate_pull_request's not_before): stamp the jobs as late as
            # possible, so one running while this transaction was still open (reading the
            # old state) does not swallow them.
            now = utcnow()
            for job in jobs:
                job.created_at = now

        event.listen(session, "before_commit", _stamp, once=True)
        enqueue_after_commit(session, queue, [job.id for job in jobs])
    return len(jobs)


def on_email_change(queue: JobQueue, session: Session) -> Callable[[Sequence[str]], None]:
    """The ``ProvenEmailService(session, on_change=...)`` callback: addresses were linked,
    moved or removed, so exactly the open pull requests with one of them among their
    authors and co-authors (``pull_request_emails``) are evaluated again, after commit."""

    def changed(addresses: Sequence[str]) -> None:
        wanted = sorted({address.casefold() for address in addresses})
        if not wanted:
            return
        targets = session.execute(
            select(PullRequestCheck.repo_full_name, PullRequestCheck.number)
            .join(PullRequestEmail)
            .where(PullRequestCheck.is_open.is_(True), PullRequestEmail.email.in_(wanted))
            .distinct()
            .order_by(PullRequestCheck.repo_full_name, PullRequestCheck.number)
        ).all()
        _queue_at_commit(
            queue, session, [Evaluate(name, number, "email change") for name, number in targets]
        )

    return changed


def on_approval_change(queue: JobQueue, session: Session) -> Callable[[ApprovalChange], None]:
    """The ``CompanyService(session, on_change=...)`` callback: a company approved or stopped
    approving someone. Exactly the open pull requests it can affect are evaluated again, after
    commit: an account's, those of everyone who proved an address on a domain, and, for an
    organisation (whose members only GitHub knows), every open pull request the individual
    agreement covers."""

    def changed(change: ApprovalChange) -> None:
        if change.kind == "org":
            requeue_open_pull_requests(queue, session, agreement_id=change.individual_agreement_id)
            return
        if change.kind == "account":
            people = [int(change.value)]
        else:
            people = CompanyService(session).people_on_domain(change.value)
        jobs = [
            person_job(
                session, PersonChanged(github_id, "approval"), lease=queue.settings.job_lease
            )
            for github_id in people
        ]
        if jobs:
            enqueue_after_commit(session, queue, [job.id for job in jobs])

    return changed


def requeue_pull_request(queue: JobQueue, session: Session, repo: str, number: int) -> int:
    """Queue one evaluation of a pull request (a maintainer's re-check); after commit."""
    jobs = evaluate_jobs(
        session, [Evaluate(repo.lower(), number, "re-check")], lease=queue.settings.job_lease
    )
    enqueue_after_commit(session, queue, [job.id for job in jobs])
    return jobs[0].id
