"""The per pull request lease: one evaluation at a time writes what undersign tells GitHub.

``pr_lease`` takes the lease on the pull request's row (creating the row on first sight),
reads what the last evaluation stored, keeps the lease alive through every pacing wait of
the job, and on leaving writes the columns the evaluation gathered and gives the row back.
Depends on ``db`` (the row lease), ``enforcement.models`` and ``jobs.context`` (the
thread's heartbeat).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import ColumnElement, select

from undersign.db import RowLease, new_lease_owner, utcnow
from undersign.enforcement.models import (
    PullRequestCheck,
    PullRequestContributor,
    PullRequestEmail,
)
from undersign.jobs.context import JobContext

__all__ = [
    "PR_LEASE",
    "HeldPullRequest",
    "PullRequestBusy",
    "PullRequestSnapshot",
    "pr_lease",
]

#: The longest address ``pull_request_emails`` keeps (as ``proven_emails``).
MAX_EMAIL_LENGTH = 320

#: Two workers never evaluate the same pull request at once.
PR_LEASE = RowLease(PullRequestCheck.locked_until, PullRequestCheck.lock_owner)


class PullRequestBusy(Exception):
    """Another worker is evaluating this pull request right now; try again shortly."""


@dataclass(frozen=True)
class PullRequestSnapshot:
    """What the last evaluation stored, read when the lease was taken."""

    head_sha: str | None
    verdict: str | None
    status: tuple[str | None, str | None, str | None, str | None]
    comment_id: int | None
    comment_sha256: str | None
    commits_etag: str | None
    contributors_cache: list[dict[str, Any]] | None
    evaluated_from: dt.datetime | None
    opener: dict[str, Any] | None = None
    base_ref: str | None = None
    is_open: bool = True
    #: {author address: the account that had proven it} as last evaluated; None when the
    #: last evaluation recorded no address (the cached contributors cannot be trusted then).
    author_emails: dict[str, int | None] | None = None
    # True when this evaluation created the PR's row: no earlier attempt can have posted
    # anything for it (an attempt that died mid-way would have left the row behind).
    first_sighting: bool = False


@dataclass
class HeldPullRequest:
    """A pull request under this evaluation's lease.

    ``confirm()`` before every GitHub write: it renews the lease, or raises `PullRequestBusy`
    once the lease ran out and another evaluation took it (a newer verdict may have been
    published meanwhile, and ours must not land over it). ``values``: the
    ``pull_request_checks`` columns written when the lease is given back
    (``contributor_ids``, {github_id: pending}, replaces the contributor rows;
    ``author_emails``, {address: proven owner}, the address rows).
    """

    snapshot: PullRequestSnapshot
    confirm: Callable[[], None]
    values: dict[str, Any] = field(default_factory=dict)


def lease_ttl(ctx: JobContext) -> dt.timedelta:
    return dt.timedelta(seconds=max(ctx.settings.job_lease, 5))


def _row(name: str, number: int) -> tuple[ColumnElement[bool], ColumnElement[bool]]:
    return PullRequestCheck.repo_full_name == name, PullRequestCheck.number == number


@contextmanager
def pr_lease(ctx: JobContext, name: str, number: int) -> Iterator[HeldPullRequest]:
    """Hold ``name#number`` (lowercased ``owner/repo``) for the block; `PullRequestBusy`
    when another evaluation holds it. While held, every pacing wait of this thread also
    renews (or loses) the lease."""
    owner = new_lease_owner()
    snapshot = _take(ctx, name, number, owner)

    def confirm() -> None:
        with ctx.database.session() as session:
            if PR_LEASE.renew(session, *_row(name, number), ttl=lease_ttl(ctx), owner=owner) != 1:
                raise PullRequestBusy(f"{name}#{number}: lost its lock to another evaluation")

    previous = ctx.heartbeat()

    def beat() -> None:
        if previous is not None:
            previous()
        confirm()

    held = HeldPullRequest(snapshot, confirm)
    ctx.set_heartbeat(beat)
    try:
        yield held
    finally:
        ctx.set_heartbeat(previous)
        _release(ctx, name, number, owner, held.values)


def _take(ctx: JobContext, name: str, number: int, owner: str) -> PullRequestSnapshot:
    now = utcnow()
    with ctx.database.session() as session:
        check = session.scalar(select(PullRequestCheck).where(*_row(name, number)))
        first_sighting = check is None
        if first_sighting:
            session.add(PullRequestCheck(repo_full_name=name, number=number, updated_at=now))
    # Created in its own transaction above, so two first deliveries cannot both insert it
    # (the unique constraint refuses the second, whose job then retries).
    with ctx.database.session() as session:
        taken = PR_LEASE.take(
            session, *_row(name, number), ttl=lease_ttl(ctx), owner=owner, now=now
        )
        if taken != 1:
            raise PullRequestBusy(f"{name}#{number} is being evaluated")
        check = session.scalar(select(PullRequestCheck).where(*_row(name, number)))
        assert check is not None
        return PullRequestSnapshot(
            head_sha=check.head_sha,
            verdict=check.verdict,
            status=(
                check.status_sha,
                check.status_state,
                check.status_description,
                check.status_target_url,
            ),
            comment_id=check.comment_id,
            comment_sha256=check.comment_sha256,
            commits_etag=check.commits_etag,
            contributors_cache=check.contributors_cache,
            evaluated_from=check.evaluated_from,
            opener=check.opener,
            base_ref=check.base_ref,
            is_open=check.is_open,
            author_emails={row.email: row.owner_id for row in check.author_emails} or None,
            first_sighting=first_sighting,
        )


def _release(ctx: JobContext, name: str, number: int, owner: str, values: dict[str, Any]) -> None:
    """Write ``values`` and give the row back, if this evaluation still holds it."""
    values = dict(values)
    with ctx.database.session() as session:
        check = session.scalar(
            select(PullRequestCheck).where(
                *_row(name, number), PullRequestCheck.lock_owner == owner
            )
        )
        if check is None:  # the lease ran out and someone else owns it now
            return
        contributor_ids = values.pop("contributor_ids", None)
        author_emails = values.pop("author_emails", None)
        for key, value in values.items():
            setattr(check, key, value)
        if contributor_ids is not None:
            check.contributors.clear()
            session.flush()
            check.contributors.extend(
                PullRequestContributor(github_id=github_id, pending=pending)
                for github_id, pending in contributor_ids.items()
            )
        if author_emails is not None and author_emails != {
            row.email: row.owner_id for row in check.author_emails
        }:
            check.author_emails.clear()
            session.flush()
            check.author_emails.extend(
                PullRequestEmail(email=email, owner_id=owner)
                for email, owner in author_emails.items()
                if len(email) <= MAX_EMAIL_LENGTH  # longer ones cannot be proven
            )
        session.flush()
        PR_LEASE.release(
            session,
            PullRequestCheck.id == check.id,
            owner=owner,
            values={PullRequestCheck.updated_at: utcnow()},
        )
