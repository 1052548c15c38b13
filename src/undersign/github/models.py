"""What undersign keeps about GitHub itself: the App's installations and their shared
tokens, and the rate gate and write slots that keep every process under GitHub's limits.

Depends on ``db`` only. Migration notes: the tables kept their names when they moved here
(from enforcement/ and jobs/). ``github_write_slots`` is read by (token_key, created_at).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from undersign.db import Base, UTCDateTime, utcnow


class AppInstallation(Base):
    """A GitHub App installation (from ``installation`` webhooks or asked once by JWT)."""

    __tablename__ = "app_installations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    account_login: Mapped[str] = mapped_column(String(100), index=True)  # lowercased
    account_id: Mapped[int | None] = mapped_column(BigInteger)
    repository_selection: Mapped[str] = mapped_column(String(20), default="selected")
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    #: Set while the installation is suspended on GitHub (its token requests are refused):
    #: from the ``installation suspend`` webhook, an installation object, or a refusal.
    suspended_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class AppInstallationRepo(Base):
    """A repository an installation covers (kept by ``installation_repositories``)."""

    __tablename__ = "app_installation_repos"
    __table_args__ = (
        UniqueConstraint("installation_id", "full_name", name="uq_app_installation_repos"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    installation_id: Mapped[int] = mapped_column(
        ForeignKey("app_installations.id", ondelete="CASCADE"), index=True
    )
    repo_id: Mapped[int | None] = mapped_column(BigInteger)  # unknown when asked by name
    full_name: Mapped[str] = mapped_column(String(200), index=True)  # lowercased


class AppInstallationToken(Base):
    """The installation token every process shares, encrypted with a key derived from
    UNDERSIGN_SECRET_KEY; ``lease_until`` lets one process at a time ask GitHub for it."""

    __tablename__ = "app_installation_tokens"

    installation_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    token_encrypted: Mapped[str | None] = mapped_column(Text)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lease_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class RateGate(Base):
    """Per token: when GitHub told us to stop (rate limits), shared by every process. Its row
    is also the lock that serialises write pacing decisions."""

    __tablename__ = "github_rate_gates"

    # SHA-256 of the token, never the token itself.
    token_key: Mapped[str] = mapped_column(String(64), primary_key=True)
    blocked_until: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    reason: Mapped[str | None] = mapped_column(String(200))
    touched_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class WriteSlot(Base):
    """One content-creating request (status, comment) sent with a token; kept for an hour."""

    __tablename__ = "github_write_slots"
    __table_args__ = (
        Index("ix_github_write_slots_token_key_created_at", "token_key", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_key: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AppRegistration(Base):
    """The GitHub App registered from this instance's setup page (the manifest flow). One
    row: a new registration replaces it. The secrets are encrypted with a key derived from
    UNDERSIGN_SECRET_KEY (as installation tokens are); ids and names are not secret."""

    __tablename__ = "app_registrations"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    app_id: Mapped[int] = mapped_column(BigInteger)
    slug: Mapped[str] = mapped_column(String(100))
    client_id: Mapped[str] = mapped_column(String(100))
    owner_login: Mapped[str] = mapped_column(String(100))
    html_url: Mapped[str] = mapped_column(String(500))
    client_secret_encrypted: Mapped[str] = mapped_column(Text)
    webhook_secret_encrypted: Mapped[str | None] = mapped_column(Text)
    private_key_encrypted: Mapped[str] = mapped_column(Text)
    registered_by: Mapped[int | None] = mapped_column(BigInteger)  # GitHub id, when signed in
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
