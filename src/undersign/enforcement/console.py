"""What the maintainers' console shows: agreements' counts, waiting pull requests, failed jobs.

Read-only queries over the agreements and the pull requests undersign last evaluated
(``pull_request_checks``): nothing here asks GitHub. A pull request belongs to the
agreement that covers its repository now (a repository link wins over an organisation's).

Depends on agreements.models, enforcement.models, jobs.models.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import ColumnElement, String, func, select
from sqlalchemy.orm import Session

from undersign.agreements.models import (
    Agreement,
    AgreementVersion,
    AuditEntry,
    OrgLink,
    RepoLink,
    Signature,
)
from undersign.enforcement.models import PullRequestCheck, PullRequestContributor
from undersign.jobs.models import Job

#: How many failed jobs the console lists (the newest first).
FAILED_JOBS_SHOWN = 200
#: How many calendar months the signatures chart covers (the current one last).
CHART_MONTHS = 12


@dataclass(frozen=True)
class Waiting:
    """Someone a pull request waits on (the login as GitHub last showed it, if known)."""

    github_id: int
    login: str | None


@dataclass(frozen=True)
class WaitingPull:
    """An open pull request that is not green, and who it waits on."""

    repo: str
    number: int
    verdict: str | None
    description: str | None
    waiting_on: tuple[Waiting, ...]
    updated_at: dt.datetime | None


@dataclass(frozen=True)
class AgreementSummary:
    """One line of the console's front page."""

    agreement: Agreement
    active_signatures: int
    revoked_signatures: int
    waiting_pulls: int
    waiting_people: int
    last_activity: dt.datetime | None


def _covering_agreement(session: Session) -> dict[str, int]:
    """Open pull requests' repositories -> the agreement covering each now."""
    repo_links = dict(session.execute(select(RepoLink.full_name, RepoLink.agreement_id)).all())
    org_links = dict(session.execute(select(OrgLink.org, OrgLink.agreement_id)).all())
    repos = session.scalars(
        select(PullRequestCheck.repo_full_name).where(PullRequestCheck.is_open.is_(True)).distinct()
    )
    covering: dict[str, int] = {}
    for name in repos:
        agreement_id = repo_links.get(name, org_links.get(name.split("/", 1)[0]))
        if agreement_id is not None:
            covering[name] = agreement_id
    return covering


def waiting_pulls(session: Session, agreement_id: int) -> list[WaitingPull]:
    """Open pull requests covered by this agreement whose last verdict is not success."""
    repos = [name for name, aid in _covering_agreement(session).items() if aid == agreement_id]
    if not repos:
        return []
    checks = session.scalars(
        select(PullRequestCheck)
        .where(
            PullRequestCheck.is_open.is_(True),
            PullRequestCheck.repo_full_name.in_(repos),
            func.coalesce(PullRequestCheck.verdict, "") != "success",
        )
        .order_by(PullRequestCheck.repo_full_name, PullRequestCheck.number)
    ).all()
    pending = session.execute(
        select(PullRequestContributor.check_id, PullRequestContributor.github_id).where(
            PullRequestContributor.check_id.in_([c.id for c in checks]),
            PullRequestContributor.pending.is_(True),
        )
    ).all()
    by_check: dict[int, list[int]] = {}
    for check_id, github_id in pending:
        by_check.setdefault(check_id, []).append(github_id)
    result = []
    for check in checks:
        logins = _logins(check.contributors_cache or ())
        waiting = tuple(
            Waiting(github_id, logins.get(github_id))
            for github_id in sorted(by_check.get(check.id, []))
        )
        result.append(
            WaitingPull(
                repo=check.repo_full_name,
                number=check.number,
                verdict=check.verdict,
                description=check.status_description,
                waiting_on=waiting,
                updated_at=check.updated_at,
            )
        )
    return result


def _logins(cache: Iterable[dict[str, object]]) -> dict[int, str]:
    logins: dict[int, str] = {}
    for item in cache:
        github_id, login = item.get("github_id"), item.get("login")
        if isinstance(github_id, int) and isinstance(login, str):
            logins[github_id] = login
    return logins


def covers_pull(session: Session, agreement_id: int, repo: str, number: int) -> bool:
    """Whether this open pull request is known and covered by the agreement (a re-check
    of anything else is refused, so nobody queues work for a repository not theirs)."""
    known = session.scalar(
        select(PullRequestCheck.id).where(
            PullRequestCheck.repo_full_name == repo.lower(),
            PullRequestCheck.number == number,
            PullRequestCheck.is_open.is_(True),
        )
    )
    return known is not None and _covering_agreement(session).get(repo.lower()) == agreement_id


def summaries(session: Session, agreements: Iterable[Agreement]) -> list[AgreementSummary]:
    """Signatures (active, revoked), waiting pull requests and people, last activity."""
    result = []
    for agreement in agreements:
        counts = dict(
            session.execute(
                select(Signature.revoked_at.is_(None), func.count(Signature.id))
                .join(AgreementVersion, AgreementVersion.id == Signature.version_id)
                .where(AgreementVersion.agreement_id == agreement.id)
                .group_by(Signature.revoked_at.is_(None))
            ).all()
        )
        pulls = waiting_pulls(session, agreement.id)
        people = {w.github_id for pull in pulls for w in pull.waiting_on}
        moments = [
            session.scalar(
                select(func.max(Signature.signed_at))
                .join(AgreementVersion, AgreementVersion.id == Signature.version_id)
                .where(AgreementVersion.agreement_id == agreement.id)
            ),
            session.scalar(
                select(func.max(AuditEntry.created_at)).where(
                    AuditEntry.agreement_id == agreement.id
                )
            ),
            *(pull.updated_at for pull in pulls),
        ]
        known = [moment for moment in moments if moment is not None]
        result.append(
            AgreementSummary(
                agreement=agreement,
                active_signatures=int(counts.get(True, 0)),
                revoked_signatures=int(counts.get(False, 0)),
                waiting_pulls=len(pulls),
                waiting_people=len(people),
                last_activity=max(known) if known else None,
            )
        )
    return result


def failed_jobs(session: Session, limit: int = FAILED_JOBS_SHOWN) -> list[Job]:
    """Jobs that gave up, the most recently failed first (what an operator may re-drive)."""
    return list(
        session.scalars(
            select(Job)
            .where(Job.status == "failed")
            .order_by(Job.updated_at.desc(), Job.id.desc())
            .limit(limit)
        )
    )


@dataclass(frozen=True)
class MonthCount:
    """Signatures made in one calendar month (UTC), revoked ones included."""

    month: str  # YYYY-MM
    count: int


def _month_of(session: Session) -> ColumnElement[str]:
    """``signed_at`` as ``YYYY-MM`` in UTC, grouped by the database (no rows fetched)."""
    if session.get_bind().dialect.name == "postgresql":
        return func.to_char(func.timezone("UTC", Signature.signed_at), "YYYY-MM")
    # SQLite stores the UTC time as ISO text: its first seven characters are the month.
    return func.substr(func.cast(Signature.signed_at, String), 1, 7)


def _months_back(today: dt.date, count: int) -> list[str]:
    year, month = today.year, today.month
    months = []
    for _ in range(count):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return list(reversed(months))


def signatures_by_month(
    session: Session, agreement_id: int, *, today: dt.date, months: int = CHART_MONTHS
) -> list[MonthCount]:
    """New signatures per month over the last ``months`` months, the oldest first; a month
    without any is there with 0 (the chart's bars are the calendar, not the data)."""
    wanted = _months_back(today, months)
    month = _month_of(session)
    counts = dict(
        session.execute(
            select(month, func.count(Signature.id))
            .join(AgreementVersion, AgreementVersion.id == Signature.version_id)
            .where(AgreementVersion.agreement_id == agreement_id, month >= wanted[0])
            .group_by(month)
        ).all()
    )
    return [MonthCount(name, int(counts.get(name, 0))) for name in wanted]
