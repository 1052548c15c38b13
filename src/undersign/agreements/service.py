"""The rules of agreements and signatures, for the web layer, the CLI and enforcement.

Services take a SQLAlchemy ``Session`` and plain values and only ever ``flush``: the caller
owns the unit of work (``Database.session()``), so a request either stores everything it
did or nothing.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import ipaddress
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from sqlalchemy import ColumnElement, Exists, Select, exists, func, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, aliased, joinedload

from undersign.accounts.models import User
from undersign.agreements.allowlist import allowlist_matches, normalize_allowlist_pattern
from undersign.agreements.errors import (
    InvalidInput,
    NoPublishedVersion,
    UnknownAgreement,
    UnknownSignature,
    VersionChanged,
)
from undersign.agreements.fields import (
    BIDI_CONTROLS,
    FieldDefinition,
    parse_field_definitions,
    text_problem,
    validate_submission,
)
from undersign.agreements.models import (
    LINK_MODES,
    Agreement,
    AgreementVersion,
    AllowlistEntry,
    AuditEntry,
    OrgLink,
    RepoLink,
    Signature,
)
from undersign.agreements.receipts import format_utc, receipt_filename, render_receipt
from undersign.db import utcnow

ChangeType = Literal["material", "editorial"]
ChangeEvent = Literal["signed", "revoked"]
AgreementRef = Agreement | str

SLUG_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?")
# GitHub account names: letters, digits and hyphens, not starting with a hyphen. Old accounts
# may end in or repeat hyphens, and Enterprise Managed Users have an underscore and a suffix
# (octocat_acme), so this is a sanity check, not GitHub's exact rule.
OWNER_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,99}")
REPO_RE = re.compile(r"[A-Za-z0-9._-]{1,100}")
MAX_TEXT_LENGTH = 500_000
MAX_TITLE_LENGTH = 200
MAX_REASON_LENGTH = 1000
MAX_USER_AGENT_LENGTH = 500
#: The ``actor`` of changes made from the command line (the console records a GitHub id).
CLI_ACTOR = "cli"
# SQLite's default limit is 32,766 bound parameters; stay well below it per statement.
IN_CHUNK = 5000


def text_sha256(text: str) -> str:
    """The hash a version, its signatures and its receipts are bound to (UTF-8 bytes)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalize_text(text: str) -> str:
    """Line endings unified so the same file saved on Windows is not a new version."""
    if text.startswith("\ufeff"):
        text = text[1:]
    return text.replace("\r\n", "\n").replace("\r", "\n")


def checked_text(text: str) -> str:
    """An agreement text as it would be stored (line endings unified), or ``InvalidInput``
    saying why it cannot be (a preview refuses what publishing would)."""
    text = normalize_text(text)
    if not text.strip():
        raise InvalidInput("the agreement text is empty")
    if len(text) > MAX_TEXT_LENGTH:
        raise InvalidInput(f"the agreement text is longer than {MAX_TEXT_LENGTH} characters")
    if "\x00" in text:
        raise InvalidInput("the agreement text contains a NUL character")
    return text


def text_diff(old: str, new: str, *, fromfile: str, tofile: str) -> str:
    """A unified diff between two agreement texts ("" when they are the same)."""
    return "".join(difflib.unified_diff(_lines(old), _lines(new), fromfile=fromfile, tofile=tofile))


def normalize_repo_full_name(value: str) -> str:
    """``Owner/Repo`` -> ``owner/repo``; raises ``InvalidInput`` for anything else."""
    owner, slash, repo = value.strip().partition("/")
    if (
        not slash
        or not OWNER_RE.fullmatch(owner)
        or not REPO_RE.fullmatch(repo)
        or repo in (".", "..")
    ):
        raise InvalidInput(f"{value!r} is not a repository name of the form OWNER/REPO")
    return f"{owner}/{repo}".lower()


def normalize_org(value: str) -> str:
    org = value.strip()
    if not OWNER_RE.fullmatch(org):
        raise InvalidInput(f"{value!r} is not a GitHub organization name")
    return org.lower()


_LinkT = TypeVar("_LinkT", RepoLink, OrgLink)


@dataclass(frozen=True)
class Coverage:
    """Which agreement applies to a repository, and who is exempt there."""

    agreement: Agreement
    source: Literal["repo", "org"]
    exempt_org_members: bool
    exempt_collaborators: bool
    # "enforce" or "report" (models.LINK_MODES); report mode comments only when asked to.
    mode: str = "enforce"
    report_comments: bool = False
    #: A corporate agreement stands beside the agreement: companies may cover people.
    corporate: bool = False

    @property
    def report_only(self) -> bool:
        return self.mode == "report"


@dataclass(frozen=True)
class SignResult:
    signature: Signature
    created: bool


@dataclass(frozen=True)
class Standing:
    """Where one person stands with one agreement, for the signing page."""

    current_version: AgreementVersion
    # The active signature that makes them covered (the newest one), if any.
    covering: Signature | None
    # When not covered: their newest active signature on a version before the last
    # material change, to show what changed since.
    outdated: Signature | None

    @property
    def covered(self) -> bool:
        return self.covering is not None


@functools.cache
def _has_corporate(link: type[RepoLink] | type[OrgLink]) -> Exists:
    """Whether a corporate agreement stands beside the agreement of a ``link``. Built once
    per process: an alias costs more to build than the query costs to run."""
    beside = aliased(Agreement)
    return exists().where(beside.for_agreement_id == link.agreement_id, beside.kind == "corporate")


def _link_state(link: RepoLink | OrgLink | None) -> dict[str, Any] | None:
    """A link as the audit log records it."""
    if link is None:
        return None
    return {
        "agreement": link.agreement.slug if link.agreement is not None else None,
        "exempt_org_members": link.exempt_org_members,
        "exempt_collaborators": link.exempt_collaborators,
        "mode": link.mode,
        "report_comments": link.report_comments,
    }


class AgreementService:
    """Agreements, their versions, and which repositories they cover.

    Every change is written to the audit log in the same transaction, by ``actor``: a
    GitHub user id (as text) from the console, ``cli`` from the command line.
    """

    def __init__(self, session: Session, *, actor: str = CLI_ACTOR) -> None:
        self.session = session
        self.actor = actor

    def audit(
        self,
        agreement: Agreement,
        action: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        """Append one row to the audit log (flushed with the change it records)."""
        self.session.add(
            AuditEntry(
                agreement_id=agreement.id,
                actor=self.actor[:40],
                action=action,
                before=before,
                after=after,
                created_at=utcnow(),
            )
        )
        self.session.flush()

    def audit_log(self, ref: AgreementRef, *, limit: int = 200) -> list[AuditEntry]:
        """The newest changes to one agreement first."""
        agreement = self.resolve(ref)
        return list(
            self.session.scalars(
                select(AuditEntry)
                .where(AuditEntry.agreement_id == agreement.id)
                .order_by(AuditEntry.id.desc())
                .limit(limit)
            )
        )

    def audit_page(
        self, ref: AgreementRef, *, offset: int = 0, limit: int = 50
    ) -> tuple[list[AuditEntry], int]:
        """One page of an agreement's audit log, newest first, and how many rows it has."""
        agreement = self.resolve(ref)
        condition = AuditEntry.agreement_id == agreement.id
        total = int(self.session.scalar(select(func.count(AuditEntry.id)).where(condition)) or 0)
        rows = self.session.scalars(
            select(AuditEntry)
            .where(condition)
            .order_by(AuditEntry.id.desc())
            .offset(max(offset, 0))
            .limit(limit)
        )
        return list(rows), total

    def audit_export(self, ref: AgreementRef) -> Iterator[dict[str, Any]]:
        """Every audit row of one agreement, oldest first, streamed (for its export)."""
        agreement = self.resolve(ref)
        query = (
            select(AuditEntry)
            .where(AuditEntry.agreement_id == agreement.id)
            .order_by(AuditEntry.id)
            .execution_options(yield_per=1000)
        )
        for entry in self.session.scalars(query):
            yield {
                "id": entry.id,
                "agreement": agreement.slug,
                "at": format_utc(entry.created_at),
                "actor": entry.actor,
                "action": entry.action,
                "before": entry.before,
                "after": entry.after,
            }

    def create(
        self, slug: str, title: str, text: str, fields: object = None
    ) -> tuple[Agreement, AgreementVersion]:
        """A new agreement with its first version; ``InvalidInput`` when the slug is taken
        (``add_or_update`` would quietly publish a new version of that one instead)."""
        if self.session.scalar(select(Agreement.id).where(Agreement.slug == slug)) is not None:
            raise InvalidInput(f"an agreement {slug!r} already exists")
        agreement, version, _ = self.add_or_update(slug, title, text, fields)
        return agreement, version

    def set_fields(self, ref: AgreementRef, fields: object) -> Agreement:
        """Replace the custom fields the sign page asks for (as ``agreement add --fields``
        does); audited when they change. Signatures already made keep their values."""
        agreement = self.individual_settings(ref, "custom fields")
        definitions = [d.to_json() for d in _parse_fields(fields)]
        before = list(agreement.field_definitions or [])
        if definitions != before:
            agreement.field_definitions = definitions
            self.session.flush()
            self.audit(agreement, "fields.set", {"fields": before}, {"fields": definitions})
        return agreement

    def _beside(self, agreement: Agreement) -> Agreement | None:
        """The individual agreement a corporate one stands beside (None for an individual)."""
        if agreement.for_agreement_id is None:
            return None
        return self.session.get(Agreement, agreement.for_agreement_id)

    def individual_settings(self, ref: AgreementRef, what: str) -> Agreement:
        """``ref`` resolved, when it holds settings that a pull request's verdict reads.

        A pull request is judged with the individual agreement's allowlist, bots, AI agents'
        policy, and its signers fill in that agreement's fields: on a corporate agreement
        they would be stored and never read, so ``InvalidInput`` names where ``what`` goes.
        """
        agreement = self.resolve(ref)
        if agreement.kind != "corporate":
            return agreement
        beside = self._beside(agreement)
        judged_with = f" {beside.slug!r}" if beside is not None else " beside it"
        raise InvalidInput(
            f"{agreement.slug!r} is a corporate agreement, whose {what} would never be read: "
            f"pull requests are judged with the individual agreement{judged_with} (companies' "
            "people included), so use that one"
        )

    def get(self, slug: str) -> Agreement:
        agreement = self.session.scalar(select(Agreement).where(Agreement.slug == slug.lower()))
        if agreement is None:
            raise UnknownAgreement(slug)
        return agreement

    def resolve(self, ref: AgreementRef) -> Agreement:
        return ref if isinstance(ref, Agreement) else self.get(ref)

    def list_agreements(self) -> list[Agreement]:
        return list(self.session.scalars(select(Agreement).order_by(Agreement.slug)))

    def add_or_update(
        self,
        slug: str,
        title: str,
        text: str,
        fields: object = None,
        change_type: ChangeType = "material",
    ) -> tuple[Agreement, AgreementVersion, bool]:
        """Create the agreement, or add a version when the text changed.

        Returns ``(agreement, version, created)``; ``created`` is False when the text is the
        same as the latest version's (the title and fields are still updated). ``fields``
        of None keeps the existing definitions. The first version is always material.
        """
        if not SLUG_RE.fullmatch(slug):
            raise InvalidInput(
                f"{slug!r} is not a valid slug: use 1-64 lowercase letters, digits and "
                "hyphens, not starting or ending with a hyphen"
            )
        title = " ".join(title.split())
        problem = text_problem(title, MAX_TITLE_LENGTH)
        if problem:
            raise InvalidInput(f"invalid title: {problem}")
        if change_type not in ("material", "editorial"):
            raise InvalidInput("change type must be 'material' or 'editorial'")
        text = checked_text(text)
        definitions = None if fields is None else _parse_fields(fields)

        agreement = self.session.scalar(select(Agreement).where(Agreement.slug == slug))
        if agreement is not None and definitions is not None:
            self.individual_settings(agreement, "custom fields")
        previous_title = None if agreement is None else agreement.title
        if agreement is None:
            agreement = Agreement(slug=slug, title=title, kind="individual", field_definitions=[])
            self.session.add(agreement)
        agreement.title = title
        previous_fields = list(agreement.field_definitions or [])
        if definitions is not None:
            agreement.field_definitions = [d.to_json() for d in definitions]
        self.session.flush()
        if previous_title is not None and agreement.field_definitions != previous_fields:
            self.audit(
                agreement,
                "fields.set",
                {"fields": previous_fields},
                {"fields": agreement.field_definitions},
            )

        latest = self.session.scalar(
            select(AgreementVersion)
            .where(AgreementVersion.agreement_id == agreement.id)
            .order_by(AgreementVersion.number.desc())
            .limit(1)
        )
        digest = text_sha256(text)
        if latest is not None and latest.text_sha256 == digest and latest.text == text:
            if previous_title != title:
                self.audit(
                    agreement, "agreement.title", {"title": previous_title}, {"title": title}
                )
            return agreement, latest, False

        now = utcnow()
        version = AgreementVersion(
            agreement=agreement,
            number=1 if latest is None else latest.number + 1,
            text=text,
            text_sha256=digest,
            change_type="material" if latest is None else change_type,
            created_at=now,
            published_at=now,
        )
        self.session.add(version)
        self.session.flush()
        self.audit(
            agreement,
            "version.publish",
            None
            if latest is None
            else {"title": previous_title, "version": latest.number, "sha256": latest.text_sha256},
            {
                "title": title,
                "version": version.number,
                "sha256": digest,
                "change_type": version.change_type,
            },
        )
        return agreement, version, True

    def current_version(self, ref: AgreementRef) -> AgreementVersion:
        """The newest published version: the one people sign now."""
        agreement = self.resolve(ref)
        version = self.session.scalar(
            select(AgreementVersion)
            .where(
                AgreementVersion.agreement_id == agreement.id,
                AgreementVersion.published_at.is_not(None),
            )
            .order_by(AgreementVersion.number.desc())
            .limit(1)
        )
        if version is None:
            raise NoPublishedVersion(agreement.slug)
        return version

    def version(self, ref: AgreementRef, number: int) -> AgreementVersion:
        agreement = self.resolve(ref)
        version = self.session.scalar(
            select(AgreementVersion).where(
                AgreementVersion.agreement_id == agreement.id, AgreementVersion.number == number
            )
        )
        if version is None:
            raise InvalidInput(f"agreement {agreement.slug!r} has no version {number}")
        return version

    # Which repositories an agreement covers.

    def link_repo(
        self,
        full_name: str,
        slug: str,
        *,
        exempt_org_members: bool = False,
        exempt_collaborators: bool = False,
        mode: str = "enforce",
        report_comments: bool = False,
    ) -> RepoLink:
        """Cover a repository with an agreement (replacing any earlier repo link).

        ``mode`` "report" publishes a passing status with the real count (a rollout);
        ``report_comments`` lets report mode comment on pull requests too."""
        name = normalize_repo_full_name(full_name)
        if name.endswith(".git"):
            # A clone URL's ending: GitHub strips it from a new repository's name, so such a
            # link would never match a pull request. (Unlinking one made earlier still works.)
            raise InvalidInput(
                f"{full_name.strip()!r} ends in .git, as a clone URL does; a GitHub repository "
                f"name never does: link {name[:-4]!r}"
            )
        link = self.session.scalar(select(RepoLink).where(RepoLink.full_name == name))
        before = _link_state(link)
        link = self._set_link(
            link or RepoLink(full_name=name),
            slug,
            exempt_org_members,
            exempt_collaborators,
            mode,
            report_comments,
        )
        self.audit(link.agreement, "repo.link", before, {"repo": name, **(_link_state(link) or {})})
        return link

    def unlink_repo(self, full_name: str) -> bool:
        name = normalize_repo_full_name(full_name)
        link = self.session.scalar(select(RepoLink).where(RepoLink.full_name == name))
        if link is None:
            return False
        self.audit(link.agreement, "repo.unlink", {"repo": name, **(_link_state(link) or {})}, None)
        self.session.delete(link)
        self.session.flush()
        return True

    def follow_repo_move(self, previous: str, current: str) -> bool:
        """GitHub renamed or transferred a linked repository: its link follows it to
        ``current`` (audited as ``repo.move``). Not when ``current`` has a link of its own:
        that one was made on purpose and wins. Returns whether a link moved."""
        old, new = normalize_repo_full_name(previous), normalize_repo_full_name(current)
        link = self.session.scalar(select(RepoLink).where(RepoLink.full_name == old))
        if link is None or old == new:
            return False
        if self.session.scalar(select(RepoLink.id).where(RepoLink.full_name == new)) is not None:
            return False
        state = _link_state(link) or {}
        link.full_name = new
        self.audit(link.agreement, "repo.move", {"repo": old, **state}, {"repo": new, **state})
        return True

    def follow_account_rename(self, previous: str, current: str) -> int:
        """GitHub renamed an account: its organisation link and the links of its
        repositories follow it to the new login (audited as ``org.move`` / ``repo.move``);
        a link made for the new name already wins. Returns how many links moved."""
        old, new = normalize_org(previous), normalize_org(current)
        if old == new:
            return 0
        moved = 0
        link = self.session.scalar(select(OrgLink).where(OrgLink.org == old))
        taken = self.session.scalar(select(OrgLink.id).where(OrgLink.org == new))
        if link is not None and taken is None:
            state = _link_state(link) or {}
            link.org = new
            self.audit(link.agreement, "org.move", {"org": old, **state}, {"org": new, **state})
            moved += 1
        repos = self.session.scalars(
            select(RepoLink.full_name).where(RepoLink.full_name.startswith(f"{old}/"))
        ).all()
        for name in repos:
            moved += self.follow_repo_move(name, f"{new}/{name.partition('/')[2]}")
        return moved

    def link_org(
        self,
        org: str,
        slug: str,
        *,
        exempt_org_members: bool = False,
        exempt_collaborators: bool = False,
        mode: str = "enforce",
        report_comments: bool = False,
    ) -> OrgLink:
        """Cover every repository of an organization (a repo link still wins); ``mode`` and
        ``report_comments`` as for ``link_repo``."""
        name = normalize_org(org)
        link = self.session.scalar(select(OrgLink).where(OrgLink.org == name))
        before = _link_state(link)
        link = self._set_link(
            link or OrgLink(org=name),
            slug,
            exempt_org_members,
            exempt_collaborators,
            mode,
            report_comments,
        )
        self.audit(link.agreement, "org.link", before, {"org": name, **(_link_state(link) or {})})
        return link

    def _set_link(
        self,
        link: _LinkT,
        slug: str,
        exempt_org_members: bool,
        exempt_collaborators: bool,
        mode: str,
        report_comments: bool,
    ) -> _LinkT:
        if mode not in LINK_MODES:
            raise InvalidInput(f"a link's mode is {' or '.join(LINK_MODES)}, not {mode!r}")
        agreement = self.get(slug)
        if agreement.kind == "corporate":
            # Its pull requests would ask every contributor to sign for a company, and a
            # company signed on the web covers nobody until reviewed: nobody could pass.
            beside = self._beside(agreement)
            instead = f"; link {beside.slug!r} instead" if beside is not None else ""
            raise InvalidInput(
                f"{agreement.slug!r} is a corporate agreement: companies sign it for their "
                f"people wherever the individual agreement beside it applies{instead}"
            )
        link.agreement = agreement
        link.exempt_org_members = exempt_org_members
        link.exempt_collaborators = exempt_collaborators
        link.mode = mode
        link.report_comments = report_comments
        self.session.add(link)
        self.session.flush()
        return link

    def unlink_org(self, org: str) -> bool:
        name = normalize_org(org)
        link = self.session.scalar(select(OrgLink).where(OrgLink.org == name))
        if link is None:
            return False
        self.audit(link.agreement, "org.unlink", {"org": name, **(_link_state(link) or {})}, None)
        self.session.delete(link)
        self.session.flush()
        return True

    def repo_links(self) -> list[RepoLink]:
        return list(self.session.scalars(select(RepoLink).order_by(RepoLink.full_name)))

    def org_links(self) -> list[OrgLink]:
        return list(self.session.scalars(select(OrgLink).order_by(OrgLink.org)))

    def coverage_for_repo(self, full_name: str) -> Coverage | None:
        """The agreement for ``owner/repo`` and its exemptions; a repo link wins. Whether a
        corporate agreement stands beside it comes with the link (no query of its own: this
        runs for every evaluation)."""
        name = normalize_repo_full_name(full_name)
        link: RepoLink | OrgLink | None
        link, corporate = self.session.execute(
            select(RepoLink, _has_corporate(RepoLink))
            .options(joinedload(RepoLink.agreement))
            .where(RepoLink.full_name == name)
        ).first() or (None, False)
        if link is None:
            link, corporate = self.session.execute(
                select(OrgLink, _has_corporate(OrgLink))
                .options(joinedload(OrgLink.agreement))
                .where(OrgLink.org == name.split("/", 1)[0])
            ).first() or (None, False)
        if link is None:
            return None
        return Coverage(
            link.agreement,
            "repo" if isinstance(link, RepoLink) else "org",
            link.exempt_org_members,
            link.exempt_collaborators,
            link.mode,
            link.report_comments,
            bool(corporate),
        )

    def agreement_for_repo(self, full_name: str) -> Agreement | None:
        coverage = self.coverage_for_repo(full_name)
        return coverage.agreement if coverage else None

    # Bots by id and the AI agent policy.

    def set_bot_policy(
        self,
        ref: AgreementRef,
        *,
        add: Iterable[int] = (),
        remove: Iterable[int] = (),
        defaults: Iterable[int] | None = None,
        reset: bool = False,
        all_bots: bool | None = None,
    ) -> Agreement:
        """Change which bot accounts (by numeric id) need no signature.

        The list starts as ``None`` (the documented default list, passed in as ``defaults``
        by the caller when it has to be edited); ``reset`` returns to it. ``all_bots`` is the
        explicit, risky opt-in that exempts every account GitHub types ``Bot``.
        """
        agreement = self.individual_settings(ref, "exempt bots")
        added, removed = [int(i) for i in add], [int(i) for i in remove]
        if any(i <= 0 or i > 2**63 - 1 for i in (*added, *removed)):
            raise InvalidInput("a bot id is a positive integer (the account's numeric id)")
        before = {"bot_ids": agreement.exempt_bot_ids, "all_bots": agreement.exempt_all_bots}
        if reset:
            agreement.exempt_bot_ids = None
        if added or removed:
            current = agreement.exempt_bot_ids
            ids = set(defaults or ()) if current is None else set(current)
            ids = (ids | set(added)) - set(removed)
            agreement.exempt_bot_ids = sorted(ids)
        if all_bots is not None:
            agreement.exempt_all_bots = all_bots
        self.session.flush()
        after = {"bot_ids": agreement.exempt_bot_ids, "all_bots": agreement.exempt_all_bots}
        if after != before:
            self.audit(agreement, "bots.set", before, after)
        return agreement

    def set_agent_policy(self, ref: AgreementRef, policy: str) -> Agreement:
        """``require-human`` (agent work needs the asking person covered) or ``refuse``."""
        if policy not in ("require-human", "refuse"):
            raise InvalidInput("the agent policy is 'require-human' or 'refuse'")
        agreement = self.individual_settings(ref, "AI agents' policy")
        before = agreement.agent_policy
        agreement.agent_policy = policy
        self.session.flush()
        if before != policy:
            self.audit(agreement, "agents.policy", {"policy": before}, {"policy": policy})
        return agreement

    # Allowlist: logins that need no signature.

    def allowlist_add(self, ref: AgreementRef, pattern: str, note: str = "") -> AllowlistEntry:
        agreement = self.individual_settings(ref, "allowlist")
        normalized = normalize_allowlist_pattern(pattern)
        note = " ".join(note.split())
        if note and text_problem(note, 500):
            raise InvalidInput("the note must be at most 500 printable characters")
        entry = self.session.scalar(
            select(AllowlistEntry).where(
                AllowlistEntry.agreement_id == agreement.id, AllowlistEntry.pattern == normalized
            )
        )
        before = None if entry is None else {"pattern": normalized, "note": entry.note}
        if entry is None:
            entry = AllowlistEntry(agreement=agreement, pattern=normalized)
            self.session.add(entry)
        entry.note = note
        self.session.flush()
        if before != {"pattern": normalized, "note": note}:
            self.audit(agreement, "allowlist.add", before, {"pattern": normalized, "note": note})
        return entry

    def allowlist_remove(self, ref: AgreementRef, pattern: str) -> bool:
        agreement = self.individual_settings(ref, "allowlist")
        normalized = normalize_allowlist_pattern(pattern)
        entry = self.session.scalar(
            select(AllowlistEntry).where(
                AllowlistEntry.agreement_id == agreement.id, AllowlistEntry.pattern == normalized
            )
        )
        if entry is None:
            return False
        self.audit(agreement, "allowlist.remove", {"pattern": normalized, "note": entry.note}, None)
        self.session.delete(entry)
        self.session.flush()
        return True

    def allowlist(self, ref: AgreementRef) -> list[AllowlistEntry]:
        agreement = self.resolve(ref)
        return list(
            self.session.scalars(
                select(AllowlistEntry)
                .where(AllowlistEntry.agreement_id == agreement.id)
                .order_by(AllowlistEntry.pattern)
            )
        )

    def is_allowlisted(self, ref: AgreementRef, login: str) -> bool:
        return allowlist_matches((entry.pattern for entry in self.allowlist(ref)), login)


class SignatureService:
    """Signing, coverage, revocation, receipts and exports.

    ``on_change(github_id, "signed" | "revoked")`` is called after the change is flushed
    (still inside the caller's transaction), so enforcement can re-evaluate every open pull
    request waiting on that person. It is not called when nothing changed.
    """

    def __init__(
        self,
        session: Session,
        on_change: Callable[[int, str], None] | None = None,
        *,
        actor: str = CLI_ACTOR,
    ) -> None:
        """``actor``: who the audit log names for a revocation (see ``AgreementService``)."""
        self.session = session
        self.on_change = on_change
        self.agreements = AgreementService(session, actor=actor)

    # Signing.

    def sign(
        self,
        slug: str,
        *,
        github_id: int,
        login: str,
        name: str | None,
        email: str | None,
        version_sha256: str,
        agreed: bool,
        field_values: Mapping[str, object] | None = None,
        ip_address: str | None = None,
        user_agent: str | None = None,
    ) -> SignResult:
        """Record that this person agrees to the current version; idempotent.

        ``version_sha256`` is the hash of the text the form showed. If it is not the current
        version's, ``VersionChanged`` is raised before anything else, so the person is
        shown the new text rather than binding them to one they did not read. Invalid
        fields raise ``ValidationErrors`` (one message per field) and store nothing.
        """
        agreement = self.agreements.get(slug)
        current = self.agreements.current_version(agreement)
        if version_sha256 != current.text_sha256:
            raise VersionChanged(current)
        clean = validate_submission(
            agreement.fields, name=name, email=email, field_values=field_values, agreed=agreed
        )
        existing = self._active_on(current.id, github_id)
        if existing is not None:
            return SignResult(existing, created=False)

        values: dict[str, Any] = {
            "version_id": current.id,
            "github_id": github_id,
            "login": login[:100],
            "name": clean.name,
            "email": clean.email,
            "field_values": clean.field_values,
            "text_sha256": current.text_sha256,
            "signed_at": utcnow(),
            "ip_address": _clean_ip(ip_address),
            "user_agent": _clean_user_agent(user_agent),
        }
        signature = self._insert_unless_active(values)
        if signature is None:
            # Someone (a double click, a second tab) signed between our check and insert.
            existing = self._active_on(current.id, github_id)
            assert existing is not None  # guaranteed by the unique index
            return SignResult(existing, created=False)
        self._notify(github_id, "signed")
        return SignResult(signature, created=True)

    def _insert_unless_active(self, values: dict[str, Any]) -> Signature | None:
        """INSERT ... ON CONFLICT DO NOTHING on the partial unique index: race-free without
        savepoints (which pysqlite handles badly by default)."""
        dialect = self.session.get_bind().dialect.name
        keys = ["version_id", "github_id"]
        active = Signature.revoked_at.is_(None)
        statement: postgresql.Insert | sqlite.Insert
        if dialect == "postgresql":
            statement = (
                postgresql.insert(Signature)
                .values(**values)
                .on_conflict_do_nothing(index_elements=keys, index_where=active)
            )
        elif dialect == "sqlite":
            statement = (
                sqlite.insert(Signature)
                .values(**values)
                .on_conflict_do_nothing(index_elements=keys, index_where=active)
            )
        else:
            signature = Signature(**values)
            self.session.add(signature)
            self.session.flush()
            return signature
        self.session.flush()
        return self.session.scalars(statement.returning(Signature)).first()

    def _active_on(self, version_id: int, github_id: int) -> Signature | None:
        return self.session.scalar(
            select(Signature).where(
                Signature.version_id == version_id,
                Signature.github_id == github_id,
                Signature.revoked_at.is_(None),
            )
        )

    # Coverage.

    def _valid_version_ids(self, agreement_id: int) -> Select[Any]:
        """Published versions since (and including) the last material change."""
        material = AgreementVersion.__table__.alias("material")
        baseline = (
            select(func.coalesce(func.max(material.c.number), 0))
            .where(
                material.c.agreement_id == agreement_id,
                material.c.published_at.is_not(None),
                material.c.change_type == "material",
            )
            .scalar_subquery()
        )
        return select(AgreementVersion.id).where(
            AgreementVersion.agreement_id == agreement_id,
            AgreementVersion.published_at.is_not(None),
            AgreementVersion.number >= baseline,
        )

    def covered_ids(self, ref: AgreementRef | int, github_ids: Iterable[int]) -> set[int]:
        """Which of these people hold a valid signature: one indexed query (per 5,000 ids).

        Valid means active, on a published version at or after the last material change.
        """
        agreement_id = self._agreement_id(ref)
        wanted = sorted(set(github_ids))
        covered: set[int] = set()
        for start in range(0, len(wanted), IN_CHUNK):
            chunk = wanted[start : start + IN_CHUNK]
            covered.update(self.session.scalars(self._coverage_statement(agreement_id, chunk)))
        return covered

    def _coverage_statement(self, agreement_id: int, github_ids: Sequence[int]) -> Select[Any]:
        # Shaped for the partial unique index (version_id, github_id) WHERE revoked_at IS NULL:
        # a few versions times the PR's contributors, each one index probe.
        return (
            select(Signature.github_id)
            .distinct()
            .where(
                Signature.version_id.in_(self._valid_version_ids(agreement_id)),
                Signature.github_id.in_(github_ids),
                Signature.revoked_at.is_(None),
            )
        )

    def signed_earlier_ids(self, ref: AgreementRef | int, github_ids: Iterable[int]) -> set[int]:
        """Which of these people hold an active signature of a version a material change has
        since replaced: pass those not covered (``covered_ids``), and these are the ones who
        signed and must sign again, not people who never signed. One query per 5,000 ids."""
        agreement_id = self._agreement_id(ref)
        wanted = sorted(set(github_ids))
        earlier: set[int] = set()
        for start in range(0, len(wanted), IN_CHUNK):
            chunk = wanted[start : start + IN_CHUNK]
            earlier.update(
                self.session.scalars(
                    select(Signature.github_id)
                    .distinct()
                    .join(Signature.version)
                    .where(
                        AgreementVersion.agreement_id == agreement_id,
                        AgreementVersion.id.not_in(self._valid_version_ids(agreement_id)),
                        Signature.github_id.in_(chunk),
                        Signature.revoked_at.is_(None),
                    )
                )
            )
        return earlier

    def is_covered(self, ref: AgreementRef | int, github_id: int) -> bool:
        return github_id in self.covered_ids(ref, [github_id])

    def standing(self, ref: AgreementRef, github_id: int) -> Standing:
        agreement = self.agreements.resolve(ref)
        current = self.agreements.current_version(agreement)
        valid = set(self.session.scalars(self._valid_version_ids(agreement.id)))
        active = list(
            self.session.scalars(
                select(Signature)
                .join(Signature.version)
                .options(joinedload(Signature.version))
                .where(
                    AgreementVersion.agreement_id == agreement.id,
                    Signature.github_id == github_id,
                    Signature.revoked_at.is_(None),
                )
                .order_by(AgreementVersion.number.desc(), Signature.id.desc())
            )
        )
        covering = next((s for s in active if s.version_id in valid), None)
        outdated = None if covering else next(iter(active), None)
        return Standing(current_version=current, covering=covering, outdated=outdated)

    # Reading signatures.

    def get_signature(self, signature_id: int, *, owner_github_id: int | None = None) -> Signature:
        """A signature by id; someone else's is reported as unknown, not forbidden."""
        signature = self.session.scalar(
            select(Signature)
            .options(joinedload(Signature.version).joinedload(AgreementVersion.agreement))
            .where(Signature.id == signature_id)
        )
        if signature is None or (
            owner_github_id is not None and signature.github_id != owner_github_id
        ):
            raise UnknownSignature(signature_id)
        return signature

    def signatures_of(self, github_id: int, *, include_revoked: bool = True) -> list[Signature]:
        """Everything one person signed, newest first (their own page)."""
        query = (
            select(Signature)
            .options(joinedload(Signature.version).joinedload(AgreementVersion.agreement))
            .where(Signature.github_id == github_id)
            .order_by(Signature.signed_at.desc(), Signature.id.desc())
        )
        if not include_revoked:
            query = query.where(Signature.revoked_at.is_(None))
        return list(self.session.scalars(query))

    def search_signatures(
        self, ref: AgreementRef, query: str = "", *, offset: int = 0, limit: int = 50
    ) -> tuple[list[Signature], int]:
        """One page of an agreement's signatures, newest first, and how many match.

        ``query`` matches a part of the login, name or email, case-insensitively (``%`` and
        ``_`` are taken literally).
        """
        agreement = self.agreements.resolve(ref)
        condition: ColumnElement[bool] = AgreementVersion.agreement_id == agreement.id
        needle = query.strip().lower()[:200]
        if needle:
            pattern = "%" + re.sub(r"([\\%_])", r"\\\1", needle) + "%"
            condition = condition & (
                func.lower(Signature.login).like(pattern, escape="\\")
                | func.lower(Signature.name).like(pattern, escape="\\")
                | func.lower(Signature.email).like(pattern, escape="\\")
            )
        total = int(
            self.session.scalar(
                select(func.count(Signature.id)).join(Signature.version).where(condition)
            )
            or 0
        )
        page = list(
            self.session.scalars(
                select(Signature)
                .join(Signature.version)
                .options(joinedload(Signature.version))
                .where(condition)
                .order_by(Signature.signed_at.desc(), Signature.id.desc())
                .offset(max(offset, 0))
                .limit(limit)
            )
        )
        return page, total

    def github_id_for_login(self, login: str) -> int | None:
        """Who a login means *now*: the most recent signature or sign-in that used it.

        Logins are case-insensitive and can be renamed and then reused by someone else,
        so the newest evidence wins.
        """
        lowered = login.strip().lower()
        candidates: list[tuple[Any, int]] = []
        row = self.session.execute(
            select(Signature.signed_at, Signature.github_id)
            .where(func.lower(Signature.login) == lowered)
            .order_by(Signature.signed_at.desc(), Signature.id.desc())
            .limit(1)
        ).first()
        if row is not None:
            candidates.append((row[0], row[1]))
        seen_at = func.coalesce(User.last_login_at, User.created_at)
        user_row = self.session.execute(
            select(seen_at, User.github_id)
            .where(func.lower(User.login) == lowered)
            .order_by(seen_at.desc())
            .limit(1)
        ).first()
        if user_row is not None and user_row[0] is not None:
            candidates.append((user_row[0], user_row[1]))
        if not candidates:
            return None
        return max(candidates, key=lambda item: item[0])[1]

    # Revocation.

    def revoke(
        self,
        target: int | tuple[str, str],
        *,
        by: str,
        reason: str,
        owner_github_id: int | None = None,
    ) -> list[Signature]:
        """Withdraw a person's agreement; returns the signatures revoked (empty if none were
        active).

        ``target`` is a signature id, or ``(slug, login)``. Revocation applies to the
        agreement, not one text: every active signature the person holds on that agreement
        is revoked, otherwise an older signature still valid after editorial changes would
        silently keep covering them. With ``owner_github_id`` the signature must be theirs.
        """
        reason = reason.strip()
        problem = text_problem(reason, MAX_REASON_LENGTH, allow="\n")
        if problem:
            raise InvalidInput(f"invalid reason: {problem}")
        by = " ".join(by.split())[:200] or "unknown"
        if isinstance(target, tuple):
            slug, login = target
            agreement = self.agreements.get(slug)
            github_id = self.github_id_for_login(login)
            if github_id is None:
                return []
        else:
            signature = self.get_signature(target, owner_github_id=owner_github_id)
            if signature.revoked_at is not None:
                return []
            agreement = signature.version.agreement
            github_id = signature.github_id

        signatures = list(
            self.session.scalars(
                select(Signature)
                .join(Signature.version)
                .where(
                    AgreementVersion.agreement_id == agreement.id,
                    Signature.github_id == github_id,
                    Signature.revoked_at.is_(None),
                )
                .order_by(Signature.id)
            )
        )
        if not signatures:
            return []
        now = utcnow()
        for signature in signatures:
            signature.revoked_at = now
            signature.revoked_by = by
            signature.revocation_reason = reason
        self.session.flush()
        self.agreements.audit(
            agreement,
            "signature.revoke",
            {"github_id": github_id, "signatures": [s.id for s in signatures], "active": True},
            {"github_id": github_id, "active": False, "by": by, "reason": reason},
        )
        self._notify(github_id, "revoked")
        return signatures

    # Receipts, differences and exports.

    def receipt_text(self, signature: Signature) -> str:
        """A Markdown file with the exact text, its hash, the time and the signer's identity."""
        version = signature.version
        return render_receipt(version.agreement, version, signature, version.agreement.fields)

    def receipt_filename(self, signature: Signature) -> str:
        version = signature.version
        return receipt_filename(version.agreement, version, signature)

    def diff_since(self, signature: Signature) -> str:
        """A unified diff from the text this person signed to the current text ("" if same)."""
        signed = signature.version
        current = self.agreements.current_version(signed.agreement)
        if current.id == signed.id:
            return ""
        slug = signed.agreement.slug
        return text_diff(
            signed.text,
            current.text,
            fromfile=f"{slug} version {signed.number} (you signed)",
            tofile=f"{slug} version {current.number} (current)",
        )

    def export(self, slug: str, version: int | None = None) -> Iterator[dict[str, Any]]:
        """Every signature (revoked ones included), oldest first, streamed from the database."""
        agreement = self.agreements.get(slug)
        condition: ColumnElement[bool] = AgreementVersion.agreement_id == agreement.id
        if version is not None:
            condition = AgreementVersion.id == self.agreements.version(agreement, version).id
        query = (
            select(Signature, AgreementVersion.number)
            .join(Signature.version)
            .where(condition)
            .order_by(Signature.signed_at, Signature.id)
            .execution_options(yield_per=1000)
        )
        for signature, number in self.session.execute(query):
            yield {
                "github_id": signature.github_id,
                "login": signature.login,
                "name": signature.name,
                "email": signature.email,
                "version": number,
                "text_sha256": signature.text_sha256,
                "signed_at": format_utc(signature.signed_at),
                "revoked_at": format_utc(signature.revoked_at) if signature.revoked_at else None,
                "revoked_by": signature.revoked_by,
                "revocation_reason": signature.revocation_reason,
                "ip_address": signature.ip_address,
                "user_agent": signature.user_agent,
                "fields": dict(signature.field_values or {}),
                # Provenance, added after the fields above (whose names never change): an
                # imported signature has no text hash, IP address or user agent of its own.
                "imported": signature.imported,
                "import_source": signature.import_source,
                "import_file_sha256": signature.import_file_sha256,
                "original_signed_at": (
                    format_utc(signature.original_signed_at)
                    if signature.original_signed_at
                    else None
                ),
                "imported_at": format_utc(signature.imported_at) if signature.imported_at else None,
                "import_record": signature.import_record,
            }

    # Helpers.

    def _agreement_id(self, ref: AgreementRef | int) -> int:
        if isinstance(ref, int):
            return ref
        return self.agreements.resolve(ref).id

    def _notify(self, github_id: int, event: ChangeEvent) -> None:
        if self.on_change is not None:
            self.on_change(github_id, event)


def _parse_fields(fields: object) -> list[FieldDefinition]:
    if isinstance(fields, Sequence) and not isinstance(fields, str | bytes):
        fields = [f.to_json() if isinstance(f, FieldDefinition) else f for f in fields]
    return parse_field_definitions(fields)


def _lines(text: str) -> list[str]:
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    return lines


def _clean_ip(value: str | None) -> str | None:
    if not value:
        return None
    try:
        return str(ipaddress.ip_address(value.strip()))
    except ValueError:
        return None


def _clean_user_agent(value: str | None) -> str | None:
    """Kept as evidence, but bounded and without control characters (PostgreSQL refuses NUL)."""
    if not value:
        return None
    cleaned = "".join(
        char
        for char in value
        if unicodedata.category(char) not in ("Cc", "Cs") and char not in BIDI_CONTROLS
    )
    return cleaned[:MAX_USER_AGENT_LENGTH] or None
