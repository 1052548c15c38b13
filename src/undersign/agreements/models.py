"""Agreements, their immutable versions, signatures, and which repositories they cover.

Design notes a migration author needs:

- A version's text never changes once stored; a new text is a new version. Its SHA-256 is
  stored beside it and copied into every signature, so a signature names the exact bytes
  the person agreed to even if someone later tampered with the version row.
- A signature is identified by GitHub's numeric user id. The login is kept only as it was
  at signing time (evidence); logins can be renamed and reused by someone else.
- A signature is never deleted. Revocation stamps ``revoked_at``/``revoked_by``/
  ``revocation_reason``; "one active signature per person per version" is a *partial*
  unique index over the rows where ``revoked_at IS NULL``, which both SQLite and
  PostgreSQL support, so history is kept and signing again after a revocation works.
- The same partial index is what the coverage query (``covered_ids``) walks: it asks for
  (version_id IN few versions, github_id IN some people, revoked_at IS NULL).
- Repository and organization names are stored lowercased: GitHub names are
  case-insensitive, and a link must not be missed because a webhook spelled it differently.
- An imported signature (``import_source`` set) came from another tool's file: it keeps the
  file's SHA-256 and the row as read, and has no text hash, IP address or user agent: the
  old tool never recorded which bytes the person saw, and undersign does not invent it. A
  check constraint holds every signature to one of the two: a text hash, or a provenance.
- A link's ``mode`` is ``enforce`` (the status fails until everyone signed) or ``report``
  (the status always succeeds and says how many signed: for a rollout).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from undersign.agreements.fields import FieldDefinition
from undersign.db import Base, UTCDateTime, utcnow

KINDS = ("individual", "corporate")
LINK_MODES = ("enforce", "report")
CHANGE_TYPES = ("material", "editorial")


class Agreement(Base):
    __tablename__ = "agreements"
    __table_args__ = (
        CheckConstraint("kind IN ('individual', 'corporate')", name="kind"),
        CheckConstraint("agent_policy IN ('require-human', 'refuse')", name="agent_policy"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    slug: Mapped[str] = mapped_column(String(64), unique=True)
    title: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(20), default="individual")
    # A JSON list of FieldDefinition dicts; validated by fields.parse_field_definitions.
    field_definitions: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # Bot accounts (numeric ids, type Bot) that need not sign; NULL: the documented default
    # list (enforcement/agents.py DEFAULT_BOTS). ``all_bots`` exempts every Bot: risky.
    exempt_bot_ids: Mapped[list[int] | None] = mapped_column(JSON)
    exempt_all_bots: Mapped[bool] = mapped_column(Boolean, default=False)
    # What AI agents' work needs: 'require-human' (default) or 'refuse'.
    agent_policy: Mapped[str] = mapped_column(String(20), default="require-human")
    # A corporate agreement stands beside this individual one: a company that signed it
    # covers the people it approves wherever the individual agreement applies.
    for_agreement_id: Mapped[int | None] = mapped_column(ForeignKey("agreements.id"), index=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    versions: Mapped[list[AgreementVersion]] = relationship(
        back_populates="agreement", order_by="AgreementVersion.number"
    )

    @property
    def fields(self) -> list[FieldDefinition]:
        return [FieldDefinition(**item) for item in self.field_definitions or []]

    def __repr__(self) -> str:
        return f"<Agreement {self.slug!r}>"


class AgreementVersion(Base):
    __tablename__ = "agreement_versions"
    __table_args__ = (
        UniqueConstraint("agreement_id", "number", name="uq_agreement_versions_agreement_number"),
        CheckConstraint("change_type IN ('material', 'editorial')", name="change_type"),
        CheckConstraint("number >= 1", name="number_positive"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("agreements.id"))
    number: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    text_sha256: Mapped[str] = mapped_column(String(64))
    # material: earlier signatures no longer suffice; editorial: they stay valid.
    change_type: Mapped[str] = mapped_column(String(20), default="material")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    # None while a draft; the command line publishes immediately, an admin area may not.
    published_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    agreement: Mapped[Agreement] = relationship(back_populates="versions")

    def __repr__(self) -> str:
        return f"<AgreementVersion {self.agreement_id}#{self.number}>"


class Signature(Base):
    __tablename__ = "signatures"
    __table_args__ = (
        # One *active* signature per person per version, history kept (see module docstring).
        Index(
            "uq_signatures_active_version_github_id",
            "version_id",
            "github_id",
            unique=True,
            sqlite_where=text("revoked_at IS NULL"),
            postgresql_where=text("revoked_at IS NULL"),
        ),
        CheckConstraint(
            "text_sha256 IS NOT NULL OR import_source IS NOT NULL", name="text_or_provenance"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # Signatures are evidence: deleting a version that has any is refused by the database.
    version_id: Mapped[int] = mapped_column(
        ForeignKey("agreement_versions.id", ondelete="RESTRICT"), index=True
    )
    # Not a foreign key to users: the signature must outlive the account row (a deleted or
    # never-signed-in account), and the id is GitHub's, not ours.
    github_id: Mapped[int] = mapped_column(BigInteger, index=True)
    login: Mapped[str] = mapped_column(String(100))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(320))
    field_values: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Copied from the version at signing time: the hash of the exact text shown. NULL only
    # for an imported signature: the old tool never recorded the text the person saw.
    text_sha256: Mapped[str | None] = mapped_column(String(64))
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(500))
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    revoked_by: Mapped[str | None] = mapped_column(String(200))
    revocation_reason: Mapped[str | None] = mapped_column(String(1000))
    # Provenance of an imported signature (all NULL for one made in undersign): the tool
    # (importers.SOURCES), when it was imported, the SHA-256 of the imported file, the time
    # the old tool recorded (``signed_at`` repeats it, or the import time when it had none)
    # and the row exactly as read.
    import_source: Mapped[str | None] = mapped_column(String(40))
    imported_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    import_file_sha256: Mapped[str | None] = mapped_column(String(64))
    original_signed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    import_record: Mapped[dict[str, Any] | None] = mapped_column(JSON)

    version: Mapped[AgreementVersion] = relationship()

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    @property
    def imported(self) -> bool:
        """Made by another tool and imported: no text hash and no evidence of its own."""
        return self.import_source is not None

    def __repr__(self) -> str:
        return f"<Signature {self.id} github_id={self.github_id} version_id={self.version_id}>"


class RepoLink(Base):
    """An agreement covers this repository; wins over an organization link."""

    __tablename__ = "repo_links"
    __table_args__ = (CheckConstraint("mode IN ('enforce', 'report')", name="mode"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # "owner/repo", lowercased.
    full_name: Mapped[str] = mapped_column(String(200), unique=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("agreements.id"), index=True)
    exempt_org_members: Mapped[bool] = mapped_column(Boolean, default=False)
    exempt_collaborators: Mapped[bool] = mapped_column(Boolean, default=False)
    # enforce: the status fails until everyone signed; report: always success, with the
    # real count (a rollout), and a comment only when ``report_comments``.
    mode: Mapped[str] = mapped_column(String(10), default="enforce")
    report_comments: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    agreement: Mapped[Agreement] = relationship()

    @property
    def report_only(self) -> bool:
        return self.mode == "report"


class OrgLink(Base):
    """An agreement covers every repository of this organization (or user) account."""

    __tablename__ = "org_links"
    __table_args__ = (CheckConstraint("mode IN ('enforce', 'report')", name="mode"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The organization login, lowercased.
    org: Mapped[str] = mapped_column(String(100), unique=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("agreements.id"), index=True)
    exempt_org_members: Mapped[bool] = mapped_column(Boolean, default=False)
    exempt_collaborators: Mapped[bool] = mapped_column(Boolean, default=False)
    # enforce: the status fails until everyone signed; report: always success, with the
    # real count (a rollout), and a comment only when ``report_comments``.
    mode: Mapped[str] = mapped_column(String(10), default="enforce")
    report_comments: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    agreement: Mapped[Agreement] = relationship()

    @property
    def report_only(self) -> bool:
        return self.mode == "report"


class AllowlistEntry(Base):
    """Logins (bots, mostly) that need no signature; ``*`` is the only wildcard."""

    __tablename__ = "allowlist_entries"
    __table_args__ = (
        UniqueConstraint("agreement_id", "pattern", name="uq_allowlist_entries_agreement_pattern"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("agreements.id"))
    # Lowercased; matched against lowercased logins.
    pattern: Mapped[str] = mapped_column(String(100))
    note: Mapped[str] = mapped_column(String(500), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    agreement: Mapped[Agreement] = relationship()


class AuditEntry(Base):
    """One change to an agreement made through the console or the command line, or to the
    email addresses a person proved (``email.link``, ``email.move``, ``email.remove``).

    Append-only: rows are inserted by the services in the transaction of the change they
    record, and nothing in undersign updates or deletes them. ``actor`` is a GitHub user id
    (as text) for the console, or ``cli``.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_agreement_id_id", "agreement_id", "id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # None for a change that is a person's, not an agreement's (a proven email address).
    agreement_id: Mapped[int | None] = mapped_column(ForeignKey("agreements.id"))
    actor: Mapped[str] = mapped_column(String(40))
    # For example "version.publish", "repo.link", "allowlist.add", "signature.revoke".
    action: Mapped[str] = mapped_column(String(40))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


APPROVAL_KINDS = ("account", "org", "domain")
COMPANY_STATUSES = ("pending", "accepted", "rejected")


class Company(Base):
    """A company that signed a corporate agreement (on the web or on paper) for its people.

    The signatory and managers are GitHub ids (logins kept as seen, for display). Who is
    covered is the company's approvals, kept by its managers; signing alone covers nobody.

    ``status``: a company that signed on the web is ``pending`` until an instance admin or an
    admin of the individual agreement accepts it (``accepted``) or rejects it (``rejected``);
    only an accepted company's approvals cover anyone. A paper signature is ``accepted`` when
    recorded (an operator recorded it). A rejected company keeps its row (the audit trail)
    but not its name: another may sign under it (the partial unique index).
    """

    __tablename__ = "companies"
    __table_args__ = (
        Index(
            "uq_companies_agreement_live_name",
            "agreement_id",
            "name_key",
            unique=True,
            sqlite_where=text("status <> 'rejected'"),
            postgresql_where=text("status <> 'rejected'"),
        ),
        CheckConstraint("source IN ('web', 'paper')", name="source"),
        CheckConstraint("status IN ('pending', 'accepted', 'rejected')", name="status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # The corporate agreement it signed.
    agreement_id: Mapped[int] = mapped_column(ForeignKey("agreements.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    # The name case-folded with its spaces collapsed: one company per agreement.
    name_key: Mapped[str] = mapped_column(String(200))
    address: Mapped[str] = mapped_column(String(1000), default="")
    source: Mapped[str] = mapped_column(String(10), default="web")
    # The version signed, on the web or on paper (the version the operator recorded it for);
    # None for a paper signature recorded before the version was kept.
    version_id: Mapped[int | None] = mapped_column(ForeignKey("agreement_versions.id"))
    text_sha256: Mapped[str | None] = mapped_column(String(64))
    signatory_github_id: Mapped[int | None] = mapped_column(BigInteger)
    signatory_login: Mapped[str | None] = mapped_column(String(100))
    signatory_name: Mapped[str | None] = mapped_column(String(200))
    signatory_title: Mapped[str | None] = mapped_column(String(200))
    # SHA-256 and file name of the signed paper document, when one was given.
    document_sha256: Mapped[str | None] = mapped_column(String(64))
    document_name: Mapped[str | None] = mapped_column(String(255))
    signed_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    ip_address: Mapped[str | None] = mapped_column(String(45))
    # The server default is for the previous release's code, which inserts no status: what
    # it records then waits for a review instead of covering anyone.
    status: Mapped[str] = mapped_column(String(10), default="pending", server_default="pending")
    reviewed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    agreement: Mapped[Agreement] = relationship()
    managers: Mapped[list[CompanyManager]] = relationship(
        back_populates="company", order_by="CompanyManager.login"
    )
    approvals: Mapped[list[CompanyApproval]] = relationship(
        back_populates="company", order_by="CompanyApproval.id"
    )


class CompanyManager(Base):
    """A CLA manager of a company, by GitHub id."""

    __tablename__ = "company_managers"
    __table_args__ = (
        UniqueConstraint("company_id", "github_id", name="uq_company_managers_company_github"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), index=True)
    github_id: Mapped[int] = mapped_column(BigInteger, index=True)
    login: Mapped[str] = mapped_column(String(100))

    company: Mapped[Company] = relationship(back_populates="managers")


class CompanyApproval(Base):
    """Who a company covers: an account (``value`` is its id), an organisation's members
    (the org login, lowercased) or an email domain (lowercased; only through addresses a
    person proved)."""

    __tablename__ = "company_approvals"
    __table_args__ = (
        UniqueConstraint("company_id", "kind", "value", name="uq_company_approvals_kind_value"),
        CheckConstraint("kind IN ('account', 'org', 'domain')", name="kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    company_id: Mapped[int] = mapped_column(ForeignKey("companies.id"), index=True)
    kind: Mapped[str] = mapped_column(String(10))
    value: Mapped[str] = mapped_column(String(255), index=True)
    # The login an account approval was given by, for display.
    label: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    company: Mapped[Company] = relationship(back_populates="approvals")
