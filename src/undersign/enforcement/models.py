"""What undersign last told GitHub about each pull request.

Migration notes: ``pull_request_checks`` is unique on (repo_full_name, number) (lowercased
name); ``pull_request_contributors`` is unique on (check_id, github_id) and indexed by
github_id, which is how a new signature finds the pull requests waiting on that person
without asking GitHub. ``pull_request_emails`` (check_id, email) does the same for a proven
email address.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from undersign.db import Base, UTCDateTime, utcnow


class PullRequestCheck(Base):
    __tablename__ = "pull_request_checks"
    __table_args__ = (
        UniqueConstraint("repo_full_name", "number", name="uq_pull_request_checks_repo_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    repo_full_name: Mapped[str] = mapped_column(String(200))
    number: Mapped[int] = mapped_column(Integer)
    is_open: Mapped[bool] = mapped_column(Boolean, default=True)
    head_sha: Mapped[str | None] = mapped_column(String(64))
    # success | failure | error (the last verdict given to head_sha)
    verdict: Mapped[str | None] = mapped_column(String(20))
    # The last status posted (skip posting an identical one: 1000 statuses per sha+context).
    status_sha: Mapped[str | None] = mapped_column(String(64))
    status_state: Mapped[str | None] = mapped_column(String(20))
    status_description: Mapped[str | None] = mapped_column(String(140))
    status_target_url: Mapped[str | None] = mapped_column(String(500))
    comment_id: Mapped[int | None] = mapped_column(BigInteger)
    comment_sha256: Mapped[str | None] = mapped_column(String(64))
    # GitHub App mode: the check run published on check_run_sha (updated in place while the
    # head stays the same) and a hash of what it says, to skip identical updates.
    check_run_id: Mapped[int | None] = mapped_column(BigInteger)
    check_run_sha: Mapped[str | None] = mapped_column(String(64))
    check_run_sha256: Mapped[str | None] = mapped_column(String(64))
    # ETag of the single page of commits evaluated last, and the contributors read from it,
    # so an unchanged pull request costs a 304 (free of rate limit) and no parsing.
    commits_etag: Mapped[str | None] = mapped_column(String(200))
    contributors_cache: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON)
    # The pull request as GitHub reported it at the last evaluation: who opened it
    # ({"id", "login", "type"}; never changes) and the base branch it targets (the
    # reconciler notices a retarget by comparing it).
    opener: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    base_ref: Mapped[str | None] = mapped_column(String(255))
    # A lease so two workers never evaluate the same pull request at once.
    locked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lock_owner: Mapped[str | None] = mapped_column(String(64))
    # When the last finished evaluation *started*: a trigger older than that is already
    # answered (coalescing replays and bursts).
    evaluated_from: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    contributors: Mapped[list[PullRequestContributor]] = relationship(
        back_populates="check", cascade="all, delete-orphan"
    )
    author_emails: Mapped[list[PullRequestEmail]] = relationship(
        back_populates="check", cascade="all, delete-orphan"
    )


class PullRequestContributor(Base):
    """A GitHub account that contributed to a pull request's current head."""

    __tablename__ = "pull_request_contributors"
    __table_args__ = (
        UniqueConstraint("check_id", "github_id", name="uq_pull_request_contributors_check_github"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    check_id: Mapped[int] = mapped_column(
        ForeignKey("pull_request_checks.id", ondelete="CASCADE"), index=True
    )
    github_id: Mapped[int] = mapped_column(BigInteger, index=True)
    # True while this person still has to sign for this pull request.
    pending: Mapped[bool] = mapped_column(Boolean, default=False)

    check: Mapped[PullRequestCheck] = relationship(back_populates="contributors")


class PullRequestEmail(Base):
    """A commit author or co-author address of a pull request's current head (case-folded),
    with the account that had proven it when the pull request was last evaluated.

    Linking or removing a proven address finds the open pull requests to evaluate again
    here; an evaluation answered from the cached contributors (a 304) compares ``owner_id``
    with the proven owner now, so a cache never outlives a change of owner.
    """

    __tablename__ = "pull_request_emails"
    __table_args__ = (
        UniqueConstraint("check_id", "email", name="uq_pull_request_emails_check_email"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    check_id: Mapped[int] = mapped_column(
        ForeignKey("pull_request_checks.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320), index=True)
    owner_id: Mapped[int | None] = mapped_column(BigInteger)

    check: Mapped[PullRequestCheck] = relationship(back_populates="author_emails")


class BotIdentity(Base):
    """Who the bot token acts as (GET /user, asked once per token)."""

    __tablename__ = "bot_identities"

    token_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    github_id: Mapped[int] = mapped_column(BigInteger)
    login: Mapped[str] = mapped_column(String(100))
    fetched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
