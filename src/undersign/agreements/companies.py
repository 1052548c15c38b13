"""Corporate agreements: companies sign once, their CLA managers say whom they cover.

A corporate agreement stands beside one individual agreement (``Agreement.for_agreement_id``).
A contributor is covered where the individual agreement applies if they signed it, or if a
company that signed the corporate one approves them:

* an **account**, by GitHub id;
* an **organisation**'s members, as GitHub answers for that org (private membership only
  when the bot can see it); the caller asks GitHub, paced, and only for verified logins;
* an email **domain**, only through an address the person *proved* at ``/me/emails``
  (``accounts.models.ProvenEmail``). The email in a commit proves nothing: anyone can
  author a commit as someone@bigcorp.com, and GitHub attributes a commit to an account that
  merely lists the address. So a commit address on an approved domain that nobody proved
  covers nobody, and an address covers only the account that proved it.

A company that signs on the web is **pending**: its managers may keep its approvals, but they
cover nobody until an instance admin or an admin of the individual agreement accepts it
(anyone signed in can sign under any name, and an unchecked org approval would make the bot
ask GitHub about every uncovered person). A rejected company covers nobody and frees its name.
A paper signature recorded from the command line is accepted at once. A company holds at most
``MAX_APPROVALS`` approvals, ``MAX_ORG_APPROVALS`` of them organisations.

A company's CLA managers are not fixed when it signs: its managers (or an instance admin, or
the operator) add one by GitHub login, kept by id as at signing, and remove one, who loses
access at once. A company always keeps one manager; the removal locks the company as an
approval does, so two managers removing each other at the same moment leave one.

A company's signature follows the rule individual signatures follow: after a *material*
version of the corporate agreement, a company that signed an earlier one (on the web, or on
paper: the version the operator recorded it for) covers nobody until one of its CLA managers
signs the current version (``sign_again``) or the operator records a new paper signature;
its approvals and review are kept. An *editorial* version changes nothing.

Every company, its signatory, managers, review and approval change is an ``audit_log`` row of
the corporate agreement, in the transaction of the change; ``on_change`` hears each change
to what an accepted company covers (all of its approvals when it is accepted or rejected),
so exactly the open pull requests it can affect are evaluated again. A pending company's
approval changes are not heard: they cover nobody, and cost the bot nothing.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import Session, aliased, selectinload

from undersign.accounts.models import ProvenEmail
from undersign.agreements.errors import (
    AgreementError,
    InvalidInput,
    ValidationErrors,
    VersionChanged,
)
from undersign.agreements.fields import clean_person_name, text_problem
from undersign.agreements.models import (
    APPROVAL_KINDS,
    Agreement,
    AgreementVersion,
    Company,
    CompanyApproval,
    CompanyManager,
)
from undersign.agreements.receipts import format_utc
from undersign.agreements.service import (
    CLI_ACTOR,
    AgreementService,
    ChangeType,
    normalize_org,
)
from undersign.db import utcnow

__all__ = [
    "MAX_APPROVALS",
    "MAX_MANAGERS",
    "MAX_ORG_APPROVALS",
    "ApprovalChange",
    "ApprovalHook",
    "CompanyCoverage",
    "CompanyService",
    "LoginResolver",
    "UnknownCompany",
    "normalize_domain",
    "signature_current",
]

MAX_MANAGERS = 20
MAX_APPROVALS = 200
MAX_ORG_APPROVALS = 20
MAX_ADDRESS_LENGTH = 1000
_DOMAIN_RE = re.compile(r"(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z0-9-]{2,63}")
_LOGIN_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,38}")

#: login -> (GitHub id, login as GitHub spells it), or None when no such account exists.
LoginResolver = Callable[[str], tuple[int, str] | None]


class UnknownCompany(AgreementError):
    """No such company, or not one this person manages: the same answer (no existence leak)."""

    def __init__(self) -> None:
        super().__init__("no such company")


@dataclass(frozen=True)
class ApprovalChange:
    """One approval added or removed; what re-evaluation needs to find the pull requests."""

    individual_agreement_id: int
    kind: str
    value: str


ApprovalHook = Callable[[ApprovalChange], None]


@dataclass(frozen=True)
class CompanyCoverage:
    """What companies say about some people before GitHub is asked anything: who an
    accepted company covers by account or proven domain, who a pending one would (the pull
    request comment says so), and the organisations accepted companies approve."""

    covered: frozenset[int] = frozenset()
    awaiting_review: frozenset[int] = frozenset()
    orgs: tuple[str, ...] = ()
    #: Whom a company would cover (by account or proven domain) had it signed the current
    #: version: its signature predates a material change, so it covers nobody now.
    outdated: frozenset[int] = frozenset()

    def with_org_members(
        self, people: Mapping[int, str | None], is_org_member: Callable[[str, str], bool]
    ) -> set[int]:
        """``covered``, and those of ``people`` (GitHub id -> *verified* login or None) not
        covered otherwise who belong to an approved organisation; GitHub is asked only for
        them, and not at all when no accepted company approves an organisation."""
        covered = set(self.covered)
        if not self.orgs:
            return covered
        for github_id in sorted(set(people) - covered):
            login = people[github_id]
            if login and any(is_org_member(org, login) for org in self.orgs):
                covered.add(github_id)
        return covered


def normalize_domain(raw: str) -> str:
    """``@BigCorp.com`` -> ``bigcorp.com``; ``InvalidInput`` when it is no domain name."""
    domain = raw.strip().lstrip("@").rstrip(".").casefold()
    if len(domain) > 253 or not _DOMAIN_RE.fullmatch(domain):
        raise InvalidInput(f"{raw!r} is not an email domain (for example: example.com)")
    return domain


@functools.cache
def signature_current() -> ColumnElement[bool]:
    """Whether a company's signature still counts, the rule individual signatures follow:
    no *material* version of its corporate agreement was published after the one it
    signed (editorial versions change nothing), on the web or on paper (the version the
    operator recorded it for).

    Paper signatures recorded before the version was kept name none: they count if
    recorded strictly after the last material version was published. A version published
    at the same instant (two processes' clocks, or a coarse one) asks the company to sign
    again rather than count for a text it may not have signed. Built once per process (an
    immutable expression): its aliases cost more to build than to run."""
    material = aliased(AgreementVersion)
    signed = aliased(AgreementVersion)
    # Correlated by name: two levels down, automatic correlation does not reach the
    # enclosing query's company, and the subquery would read every company.
    signed_number = (
        select(signed.number)
        .where(signed.id == Company.version_id)
        .correlate(Company)
        .scalar_subquery()
    )
    return ~exists().where(
        material.agreement_id == Company.agreement_id,
        material.published_at.is_not(None),
        material.change_type == "material",
        or_(
            and_(Company.version_id.is_not(None), material.number > signed_number),
            and_(Company.version_id.is_(None), material.published_at >= Company.signed_at),
        ),
    )


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _clean_signatory(
    name: str | None, title: str | None, errors: dict[str, str]
) -> tuple[str, str]:
    """The signatory's cleaned name and title; what is wrong with either goes into
    ``errors`` under its form field."""
    person = ""
    try:
        person = clean_person_name(name)
    except ValueError as exc:
        errors["signatory_name"] = str(exc)
    clean_title, problem = _clean_text(title, 200)
    if problem:
        errors["signatory_title"] = problem
    return person, clean_title


def _clean_text(value: str | None, limit: int, *, allow: str = "") -> tuple[str, str | None]:
    text = (value or "").strip()
    if allow:
        text = "\n".join(" ".join(line.split()) for line in text.splitlines() if line.strip())
    else:
        text = " ".join(text.split())
    return text, text_problem(text, limit, allow)


def _parse_logins(raw: str | Sequence[str]) -> list[str]:
    items = raw.replace(",", " ").split() if isinstance(raw, str) else list(raw)
    seen: dict[str, str] = {}
    for item in items:
        login = item.strip().lstrip("@")
        if login:
            seen.setdefault(login.casefold(), login)
    return list(seen.values())


class CompanyService:
    """Companies, their managers and approvals; the coverage they give."""

    def __init__(
        self,
        session: Session,
        on_change: ApprovalHook | None = None,
        *,
        actor: str = CLI_ACTOR,
    ) -> None:
        self.session = session
        self.on_change = on_change
        self.agreements = AgreementService(session, actor=actor)

    # Corporate agreements.

    def add_corporate_agreement(
        self,
        slug: str,
        title: str,
        text: str,
        for_slug: str,
        change_type: ChangeType = "material",
    ) -> tuple[Agreement, AgreementVersion, bool]:
        """Create or update corporate agreement ``slug`` standing beside individual
        agreement ``for_slug``. A changed text is ``material`` (companies that signed
        before must sign again, as people must for an individual agreement) or
        ``editorial``."""
        individual = self.agreements.get(for_slug)
        if individual.kind != "individual":
            raise InvalidInput(f"{for_slug!r} is not an individual agreement")
        existing = self.session.scalar(select(Agreement).where(Agreement.slug == slug))
        if existing is not None and existing.kind != "corporate":
            raise InvalidInput(f"{slug!r} is an individual agreement already")
        if existing is not None and existing.for_agreement_id != individual.id:
            raise InvalidInput(f"{slug!r} stands beside another individual agreement")
        agreement, version, created = self.agreements.add_or_update(
            slug, title, text, change_type=change_type
        )
        if existing is None:
            agreement.kind = "corporate"
            agreement.for_agreement_id = individual.id
            self.session.flush()
            self.agreements.audit(agreement, "agreement.corporate", None, {"for": individual.slug})
        return agreement, version, created

    # Companies.

    def sign(
        self,
        slug: str,
        *,
        github_id: int,
        login: str,
        version_sha256: str,
        agreed: bool,
        company_name: str | None,
        address: str | None,
        signatory_name: str | None,
        signatory_title: str | None,
        managers: str | Sequence[str],
        resolve_login: LoginResolver,
        ip_address: str | None = None,
    ) -> Company:
        """A company signs on the web. Every field is checked before anything is stored;
        ``ValidationErrors`` names each bad field. The signatory is a manager too."""
        agreement = self._corporate(slug)
        current = self.agreements.current_version(agreement)
        if version_sha256 != current.text_sha256:
            raise VersionChanged(current)
        errors: dict[str, str] = {}
        name, problem = _clean_text(company_name, 200)
        if problem:
            errors["company_name"] = problem
        elif (existing := self._by_name(agreement, name)) is not None:
            errors["company_name"] = (
                "This company signed an earlier version; one of its CLA managers signs the "
                "current one on the company's page."
                if self.must_sign_again(existing) is not None
                else "This company has signed already; ask its CLA managers."
            )
        clean_address, problem = _clean_text(address, MAX_ADDRESS_LENGTH, allow="\n")
        if problem:
            errors["address"] = problem
        person, title = _clean_signatory(signatory_name, signatory_title, errors)
        people: list[tuple[int, str]] = [(github_id, login)]
        logins = _parse_logins(managers)
        bad = [item for item in logins if not _LOGIN_RE.fullmatch(item)]
        if bad:
            errors["managers"] = f"Not a GitHub login: {bad[0][:40]}"
        elif len(logins) > MAX_MANAGERS:
            errors["managers"] = f"Name at most {MAX_MANAGERS} managers."
        if agreed is not True:
            errors["agree"] = "You must tick this box to sign."
        if errors:
            raise ValidationErrors(errors)
        # GitHub is asked only about a form that is otherwise right: an invalid one costs
        # the bot's rate limit nothing.
        for item in logins:
            found = resolve_login(item)
            if found is None:
                raise ValidationErrors({"managers": f"GitHub has no account {item}."})
            people.append(found)
        company = Company(
            agreement_id=agreement.id,
            name=name,
            name_key=_name_key(name),
            address=clean_address,
            source="web",
            status="pending",
            version_id=current.id,
            text_sha256=current.text_sha256,
            signatory_github_id=github_id,
            signatory_login=login[:100],
            signatory_name=person,
            signatory_title=title,
            signed_at=utcnow(),
            ip_address=(ip_address or None) and ip_address[:45],
        )
        return self._store(agreement, company, people, "company.sign")

    def add_paper(
        self,
        slug: str,
        name: str,
        managers: Sequence[tuple[int, str]],
        *,
        version: int | None = None,
        document: bytes | None = None,
        document_name: str | None = None,
    ) -> Company:
        """Record a company that signed version ``version`` (default: the current one) on
        paper (the command line). The signature counts for that version, as a web one
        does for the version signed: not for whatever was newest when it was recorded."""
        agreement = self._corporate(slug)
        clean, problem = _clean_text(name, 200)
        if problem:
            raise InvalidInput(f"invalid company name: {problem}")
        if not managers:
            raise InvalidInput("name at least one manager (--manager LOGIN)")
        signed = self._paper_version(agreement, version)
        existing = self._by_name(agreement, clean)
        if existing is not None and self.must_sign_again(existing) is None:
            raise InvalidInput(f"{clean!r} has signed {slug!r} already")
        if existing is not None:
            return self._paper_again(existing, signed, managers, document, document_name)
        company = Company(
            agreement_id=agreement.id,
            name=clean,
            name_key=_name_key(clean),
            address="",
            source="paper",
            status="accepted",
            reviewed_at=utcnow(),
            version_id=signed.id,
            text_sha256=signed.text_sha256,
            document_sha256=hashlib.sha256(document).hexdigest() if document is not None else None,
            document_name=(document_name or None) and document_name[-255:],
            signed_at=utcnow(),
        )
        return self._store(agreement, company, list(managers), "company.add")

    def _paper_version(self, agreement: Agreement, number: int | None) -> AgreementVersion:
        """The version a paper signature is recorded for: ``number``, or the current one.
        ``InvalidInput`` for a version never published, or one a material version replaced
        (the company would cover nobody until it signs the current one)."""
        if number is None:
            return self.agreements.current_version(agreement)
        version = self.agreements.version(agreement, number)
        if version.published_at is None:
            raise InvalidInput(f"version {number} of {agreement.slug!r} is not published")
        replaced_by = self.session.scalar(
            select(func.min(AgreementVersion.number)).where(
                AgreementVersion.agreement_id == agreement.id,
                AgreementVersion.published_at.is_not(None),
                AgreementVersion.change_type == "material",
                AgreementVersion.number > number,
            )
        )
        if replaced_by is not None:
            raise InvalidInput(
                f"version {number} of {agreement.slug!r} was replaced by material version "
                f"{replaced_by}: a paper signature of it covers nobody; the company must sign "
                "the current version"
            )
        return version

    def _store(
        self,
        agreement: Agreement,
        company: Company,
        managers: Sequence[tuple[int, str]],
        action: str,
    ) -> Company:
        self.session.add(company)
        self.session.flush()
        seen: set[int] = set()
        for manager_id, manager_login in managers:
            if manager_id in seen:
                continue
            seen.add(manager_id)
            self.session.add(
                CompanyManager(company_id=company.id, github_id=manager_id, login=manager_login)
            )
        self.session.flush()
        self.session.refresh(company)
        self.agreements.audit(agreement, action, None, self.describe(company))
        return company

    def _paper_again(
        self,
        company: Company,
        signed: AgreementVersion,
        managers: Sequence[tuple[int, str]],
        document: bytes | None,
        document_name: str | None,
    ) -> Company:
        """A company whose signature predates a material change signed ``signed`` on
        paper: recorded as ``add_paper`` records one (accepted: an operator recorded it),
        keeping its approvals and managers; new managers are added."""
        before = self.describe(company)
        company.source = "paper"
        company.status = "accepted"
        company.reviewed_at = company.reviewed_at or utcnow()
        company.version_id = signed.id
        company.text_sha256 = signed.text_sha256
        company.document_sha256 = (
            hashlib.sha256(document).hexdigest() if document is not None else None
        )
        company.document_name = (document_name or None) and document_name[-255:]
        company.signed_at = utcnow()
        known = {m.github_id for m in company.managers}
        for manager_id, manager_login in managers:
            if manager_id not in known:
                known.add(manager_id)
                self.session.add(
                    CompanyManager(company_id=company.id, github_id=manager_id, login=manager_login)
                )
        return self._signed_again(company, before)

    def sign_again(
        self,
        company: Company,
        *,
        github_id: int,
        login: str,
        version_sha256: str,
        agreed: bool,
        signatory_name: str | None,
        signatory_title: str | None,
        ip_address: str | None = None,
    ) -> Company:
        """One of its CLA managers signs the current version for a company whose signature
        predates a material change (``InvalidInput`` when it does not, or it was rejected).
        Its review stands: an accepted company covers again at once, a pending one still
        waits for the maintainers."""
        if company.status == "rejected":
            raise InvalidInput(f"{company.name} was rejected; it may sign again as a new company")
        if self.must_sign_again(company) is None:
            raise InvalidInput(f"{company.name} has signed the current version already")
        current = self.agreements.current_version(company.agreement)
        if version_sha256 != current.text_sha256:
            raise VersionChanged(current)
        errors: dict[str, str] = {}
        person, title = _clean_signatory(signatory_name, signatory_title, errors)
        if agreed is not True:
            errors["agree"] = "You must tick this box to sign."
        if errors:
            raise ValidationErrors(errors)
        before = self.describe(company)
        # Signed on the web now, whatever it was before (the audit keeps the paper record).
        company.source = "web"
        company.document_sha256 = company.document_name = None
        company.version_id = current.id
        company.text_sha256 = current.text_sha256
        company.signatory_github_id = github_id
        company.signatory_login = login[:100]
        company.signatory_name = person
        company.signatory_title = title
        company.signed_at = utcnow()
        company.ip_address = (ip_address or None) and ip_address[:45]
        return self._signed_again(company, before)

    def _signed_again(self, company: Company, before: dict[str, Any]) -> Company:
        self.session.flush()
        self.session.refresh(company)
        after = self.describe(company)
        self.agreements.audit(company.agreement, "company.sign_again", before, after)
        approvals = [(row.kind, row.value) for row in company.approvals]
        # An accepted company covers again: every pull request its approvals can affect is
        # looked at. A pending one covers nobody yet, but the comments that said it must
        # sign again should now say it awaits review (organisations are never named there).
        accepted = company.status == "accepted"
        self._notify(company, approvals if accepted else [a for a in approvals if a[0] != "org"])
        return company

    def must_sign_again(self, company: Company) -> AgreementVersion | None:
        """The version to sign when the company's signature predates a material change of
        its corporate agreement (it covers nobody until it signs); None when it counts."""
        current = self.session.scalar(select(signature_current()).where(Company.id == company.id))
        if current:
            return None
        return self.agreements.current_version(company.agreement)

    def must_sign_again_ids(self, companies: Iterable[Company]) -> set[int]:
        """Of these companies, the ids of those whose signature predates a material change."""
        return set(self.versions_to_sign_again(companies))

    def versions_to_sign_again(self, companies: Iterable[Company]) -> dict[int, int]:
        """Of these companies, those whose signature predates a material change, each with
        the number of the version one of its CLA managers must sign now. One query for the
        whole list, however many companies and corporate agreements it holds: listings
        show it beside every company."""
        ids = [company.id for company in companies]
        if not ids:
            return {}
        current = (
            select(func.max(AgreementVersion.number))
            .where(
                AgreementVersion.agreement_id == Company.agreement_id,
                AgreementVersion.published_at.is_not(None),
            )
            .correlate(Company)
            .scalar_subquery()
        )
        rows = self.session.execute(
            select(Company.id, current).where(Company.id.in_(ids), ~signature_current())
        )
        return {int(company_id): int(number) for company_id, number in rows}

    def describe(self, company: Company) -> dict[str, Any]:
        """The company as the audit log and the export record it."""
        return {
            "company_id": company.id,
            "agreement": company.agreement.slug,
            "name": company.name,
            "address": company.address,
            "source": company.source,
            "status": company.status,
            "text_sha256": company.text_sha256,
            "signatory_github_id": company.signatory_github_id,
            "signatory_login": company.signatory_login,
            "signatory_name": company.signatory_name,
            "signatory_title": company.signatory_title,
            "document_sha256": company.document_sha256,
            "document_name": company.document_name,
            "signed_at": format_utc(company.signed_at),
            "managers": [{"github_id": m.github_id, "login": m.login} for m in company.managers],
        }

    def _corporate(self, slug: str) -> Agreement:
        agreement = self.agreements.get(slug)
        if agreement.kind != "corporate" or agreement.for_agreement_id is None:
            raise InvalidInput(f"{slug!r} is not a corporate agreement")
        return agreement

    def _by_name(self, agreement: Agreement, name: str) -> Company | None:
        return self.session.scalar(
            select(Company).where(
                Company.agreement_id == agreement.id,
                Company.name_key == _name_key(name),
                Company.status != "rejected",
            )
        )

    def find(self, slug: str, name: str) -> Company:
        """The company of this corporate agreement with this name (any case), not rejected."""
        company = self._by_name(self._corporate(slug), name)
        if company is None:
            raise InvalidInput(f"no company {name!r} signed {slug!r}")
        return company

    def list_companies(self, slug: str) -> list[Company]:
        agreement = self._corporate(slug)
        return list(
            self.session.scalars(
                select(Company)
                .where(Company.agreement_id == agreement.id)
                .options(selectinload(Company.managers), selectinload(Company.approvals))
                .order_by(Company.name_key)
            )
        )

    def for_manager(self, company_id: int, github_id: int, *, admin: bool = False) -> Company:
        """The company if this person manages it (or is an instance admin); otherwise
        ``UnknownCompany``, the same as for a company that does not exist."""
        company = self.session.get(Company, company_id)
        if company is None:
            raise UnknownCompany()
        if admin or any(m.github_id == github_id for m in company.managers):
            return company
        raise UnknownCompany()

    def all_companies(self) -> list[Company]:
        """Every company of every corporate agreement (for instance admins)."""
        return list(self.session.scalars(select(Company).order_by(Company.name_key)))

    def manages_any(self, github_id: int) -> bool:
        """Whether this person is a CLA manager of any company (one indexed lookup)."""
        return bool(
            self.session.scalar(select(exists().where(CompanyManager.github_id == github_id)))
        )

    def managed_by(self, github_id: int) -> list[Company]:
        return list(
            self.session.scalars(
                select(Company)
                .join(CompanyManager)
                .where(CompanyManager.github_id == github_id)
                .order_by(Company.name_key)
            )
        )

    # Managers.

    def add_manager(
        self, company: Company, login: str, resolve_login: LoginResolver
    ) -> tuple[CompanyManager, bool]:
        """Make the account holding ``login`` on GitHub now a CLA manager of the company, kept
        by its id as the sign form and ``company add --manager`` keep theirs (a login can
        pass to another account). The manager, and whether it was added (False: it was one
        already). ``InvalidInput`` for a malformed or unknown login, a rejected company, or
        one at the cap; GitHub is asked only about a well-formed login."""
        clean = login.strip().lstrip("@")
        if not _LOGIN_RE.fullmatch(clean):
            raise InvalidInput(f"{clean[:40]!r} is not a GitHub login")
        if company.status == "rejected":
            raise InvalidInput(f"{company.name} was rejected by the maintainers; it covers nobody")
        found = resolve_login(clean)
        if found is None:
            raise InvalidInput(f"GitHub has no user account {clean!r}")
        github_id, spelled = found
        if (row := self._manager(company, github_id)) is not None:
            return row, False
        # As for approvals: count only once no other transaction can add to this company.
        self._lock(company)
        if (row := self._manager(company, github_id)) is not None:
            return row, False  # added meanwhile by the transaction we waited for
        # The sign form's cap: the signatory and MAX_MANAGERS others.
        if (count := self._manager_count(company)) > MAX_MANAGERS:
            raise InvalidInput(
                f"{company.name} has {count} CLA managers; a company may have at most "
                f"{MAX_MANAGERS + 1}: remove one first"
            )
        row = CompanyManager(company_id=company.id, github_id=github_id, login=spelled[:100])
        self.session.add(row)
        self.session.flush()
        self.session.expire(company, ["managers"])
        self.agreements.audit(
            company.agreement, "company.manager_add", None, self._manager_state(company, row)
        )
        return row, True

    def remove_manager(self, company: Company, github_id: int) -> CompanyManager | None:
        """Account ``github_id`` no longer manages the company: at once, since its page and
        every form check the managers on each request. The manager removed, or None when it
        was none. ``InvalidInput`` for the last one: a company always keeps a manager, or
        nobody but an instance admin could keep whom it covers or sign a new version."""
        if self._manager(company, github_id) is None:
            return None
        # Count only once no other transaction can change this company's managers: two
        # managers removing each other at the same moment would both see two, and leave none.
        self._lock(company)
        row = self._manager(company, github_id)
        if row is None:
            return None  # removed meanwhile by the transaction we waited for
        if self._manager_count(company) <= 1:
            raise InvalidInput(
                f"{row.login} is the last CLA manager of {company.name}; a company keeps at "
                "least one: add another first"
            )
        before = self._manager_state(company, row)
        self.session.delete(row)
        self.session.flush()
        self.session.expire(company, ["managers"])
        self.agreements.audit(company.agreement, "company.manager_remove", before, None)
        return row

    def manager_named(
        self, company: Company, login: str, resolve_login: LoginResolver | None = None
    ) -> CompanyManager | None:
        """The manager ``login`` names: the one kept under that login (as ``company list``
        and the company's page show it), or else, when ``resolve_login`` is given, the account
        holding the login on GitHub now (a manager who renamed their account). GitHub is
        not asked when the kept logins answer, so a manager whose account is gone can still
        be removed."""
        clean = login.strip().lstrip("@")
        kept = [m for m in company.managers if m.login.casefold() == clean.casefold()]
        if len(kept) == 1:
            return kept[0]
        # None kept, or two (a login one manager gave up and another took): ask GitHub.
        if resolve_login is None or not _LOGIN_RE.fullmatch(clean):
            return None
        found = resolve_login(clean)
        return None if found is None else self._manager(company, found[0])

    def _manager(self, company: Company, github_id: int) -> CompanyManager | None:
        return self.session.scalar(
            select(CompanyManager).where(
                CompanyManager.company_id == company.id, CompanyManager.github_id == github_id
            )
        )

    def _manager_count(self, company: Company) -> int:
        return int(
            self.session.scalar(
                select(func.count())
                .select_from(CompanyManager)
                .where(CompanyManager.company_id == company.id)
            )
            or 0
        )

    @staticmethod
    def _manager_state(company: Company, row: CompanyManager) -> dict[str, Any]:
        return {
            "company_id": company.id,
            "company": company.name,
            "github_id": row.github_id,
            "login": row.login,
        }

    # Approvals.

    def approve(self, company: Company, kind: str, value: str, *, label: str = "") -> bool:
        """Cover an account (``value``: its GitHub id; ``label``: its login), an org's
        members or a domain; False when it was approved already."""
        kind, clean = self._clean_approval(kind, value)
        if self._approval(company, kind, clean) is not None:
            return False
        if company.status == "rejected":
            raise InvalidInput(f"{company.name} was rejected by the maintainers; it covers nobody")
        # Count only once no other transaction can add to this company: two managers
        # approving at the same moment at 199 would otherwise both see room and reach 201.
        self._lock(company)
        if self._approval(company, kind, clean) is not None:
            return False  # approved meanwhile by the transaction we waited for
        self._check_room(company, kind)
        row = CompanyApproval(
            company_id=company.id, kind=kind, value=clean, label=label[:255], created_at=utcnow()
        )
        self.session.add(row)
        self.session.flush()
        self._changed(company, "company.approve", None, self._approval_state(company, row))
        return True

    def unapprove(self, company: Company, kind: str, value: str) -> bool:
        """Stop covering; False when it was not approved."""
        kind, clean = self._clean_approval(kind, value)
        row = self._approval(company, kind, clean)
        if row is None:
            return False
        before = self._approval_state(company, row)
        self.session.delete(row)
        self.session.flush()
        self._changed(company, "company.unapprove", before, None)
        return True

    def _lock(self, company: Company) -> None:
        """Hold the company against other writers until this transaction ends.

        PostgreSQL locks the company's row (``SELECT ... FOR UPDATE``); a concurrent
        approval of the same company waits here, then counts what the first committed.

        SQLite has one writer per database, and this takes its write lock before the count.
        With no transaction open on the connection, ``BEGIN IMMEDIATE`` opens one holding
        the lock (waiting for another writer, up to the busy timeout). Python's sqlite3
        opens a transaction itself only before a write, and not at all in autocommit mode,
        where a write that changed nothing took the lock and let it go at once: three
        approvals at 199 all counted 199. Inside an open transaction, a write that changes
        nothing takes the lock for the rest of it, or fails (``database is locked``) when
        another writer committed since the transaction first read: never a stale count."""
        connection = self.session.connection()
        if connection.dialect.name != "sqlite":
            self.session.execute(
                select(Company.id).where(Company.id == company.id).with_for_update()
            )
        elif not connection.connection.dbapi_connection.in_transaction:  # type: ignore[union-attr]
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            self.session.execute(
                update(Company).where(Company.id == company.id).values(status=Company.status),
                execution_options={"synchronize_session": False},
            )

    def _check_room(self, company: Company, kind: str) -> None:
        """``InvalidInput`` when one more approval of ``kind`` would pass a cap."""
        counts = dict(
            self.session.execute(
                select(CompanyApproval.kind, func.count())
                .where(CompanyApproval.company_id == company.id)
                .group_by(CompanyApproval.kind)
            ).all()
        )
        if sum(counts.values()) >= MAX_APPROVALS:
            raise InvalidInput(
                f"{company.name} has {MAX_APPROVALS} approvals, the most a company may have: "
                "remove one first, or approve an organisation or domain instead of accounts"
            )
        if kind == "org" and counts.get("org", 0) >= MAX_ORG_APPROVALS:
            raise InvalidInput(
                f"{company.name} approves {MAX_ORG_APPROVALS} organisations, the most a "
                "company may: remove one first"
            )

    def _clean_approval(self, kind: str, value: str) -> tuple[str, str]:
        if kind not in APPROVAL_KINDS:
            raise InvalidInput(f"approve an account, org or domain, not {kind!r}")
        if kind == "account":
            if not value.isascii() or not value.isdigit() or not 0 < int(value) < 2**63:
                raise InvalidInput("an account is approved by its GitHub id")
            return kind, str(int(value))
        if kind == "org":
            return kind, normalize_org(value)
        return kind, normalize_domain(value)

    def _approval(self, company: Company, kind: str, value: str) -> CompanyApproval | None:
        return self.session.scalar(
            select(CompanyApproval).where(
                CompanyApproval.company_id == company.id,
                CompanyApproval.kind == kind,
                CompanyApproval.value == value,
            )
        )

    @staticmethod
    def _approval_state(company: Company, row: CompanyApproval) -> dict[str, Any]:
        return {
            "company_id": company.id,
            "company": company.name,
            "kind": row.kind,
            "value": row.value,
            "label": row.label,
        }

    def _changed(
        self,
        company: Company,
        action: str,
        before: dict[str, Any] | None,
        after: dict[str, Any] | None,
    ) -> None:
        agreement = company.agreement
        self.agreements.audit(agreement, action, before, after)
        state = after or before or {}
        # A pending company's approvals cover nobody, so they wake no pull request: anyone
        # signed in can make a company, and its approvals must cost the bot nothing.
        if company.status == "accepted":
            self._notify(company, [(str(state["kind"]), str(state["value"]))])

    def _notify(self, company: Company, approvals: Iterable[tuple[str, str]]) -> None:
        """Tell ``on_change`` what coverage changed; one org change stands for all (it
        re-evaluates every open pull request of the individual agreement)."""
        individual_id = company.agreement.for_agreement_id
        if self.on_change is None or individual_id is None:
            return
        seen_org = False
        for kind, value in approvals:
            if kind == "org":
                if seen_org:
                    continue
                seen_org = True
            self.on_change(ApprovalChange(individual_id, kind, value))

    # Review.

    def accept(self, company: Company) -> bool:
        """A pending company's approvals start to cover; the open pull requests they can
        affect are evaluated again. False when it was accepted already; ``InvalidInput``
        for a rejected one (its name may belong to another company now)."""
        if company.status == "accepted":
            return False
        if company.status != "pending":
            raise InvalidInput(f"{company.name} was rejected; it may sign again")
        return self._review(company, "accepted", "company.accept")

    def reject(self, company: Company) -> bool:
        """The company covers nobody from now on and its name is free again. False when it
        was rejected already; an accepted company's coverage ends (pull requests are
        evaluated again)."""
        if company.status == "rejected":
            return False
        return self._review(company, "rejected", "company.reject")

    def _review(self, company: Company, status: str, action: str) -> bool:
        before = {"company_id": company.id, "company": company.name, "status": company.status}
        covered = company.status == "accepted" or status == "accepted"
        company.status = status
        company.reviewed_at = utcnow()
        self.session.flush()
        self.agreements.audit(company.agreement, action, before, {**before, "status": status})
        approvals = [(row.kind, row.value) for row in company.approvals]
        # Coverage changes with every approval; a pending company rejected covered nobody,
        # but the comments that said its accounts and domains await review are now wrong.
        self._notify(company, approvals if covered else [a for a in approvals if a[0] != "org"])
        return True

    @staticmethod
    def _reviewed_by(agreement: Agreement) -> ColumnElement[bool]:
        """Which companies an admin of ``agreement`` reviews: those that signed it (a
        corporate agreement) or a corporate agreement beside it (an individual one)."""
        if agreement.kind == "corporate":
            return Company.agreement_id == agreement.id
        beside = select(Agreement.id).where(
            Agreement.for_agreement_id == agreement.id, Agreement.kind == "corporate"
        )
        return Company.agreement_id.in_(beside)

    def pending_review(self, agreement: Agreement) -> list[Company]:
        """The companies awaiting review that an admin of ``agreement`` reviews, oldest
        first."""
        return list(
            self.session.scalars(
                select(Company)
                .where(self._reviewed_by(agreement), Company.status == "pending")
                .options(selectinload(Company.managers), selectinload(Company.approvals))
                .order_by(Company.signed_at, Company.id)
            )
        )

    def signed_an_earlier_version(self, agreement: Agreement) -> list[Company]:
        """The companies an admin of ``agreement`` reviews whose signature predates a
        material change of their corporate agreement: they cover nobody until they sign
        the current version."""
        return list(
            self.session.scalars(
                select(Company)
                .where(
                    self._reviewed_by(agreement),
                    Company.status != "rejected",
                    ~signature_current(),
                )
                .options(selectinload(Company.managers))
                .order_by(Company.name_key)
            )
        )

    def for_review(self, agreement: Agreement, company_id: int) -> Company:
        """Company ``company_id`` if an admin of ``agreement`` reviews it; otherwise
        ``UnknownCompany``, the same as for a company that does not exist."""
        company = self.session.scalar(
            select(Company).where(Company.id == company_id, self._reviewed_by(agreement))
        )
        if company is None:
            raise UnknownCompany()
        return company

    # Coverage.

    def covered_ids(
        self,
        individual_id: int,
        people: Iterable[tuple[int, str | None]],
        is_org_member: Callable[[str, str], bool],
    ) -> set[int]:
        """Which of these people (GitHub id, *verified* login or None) a company that signed
        a corporate agreement beside ``individual_id`` covers. Org membership is asked of
        GitHub (``is_org_member(org, login)``) only for those not covered otherwise, once per
        distinct organisation however many companies approve it."""
        wanted = {int(github_id): login for github_id, login in people}
        return self.coverage(individual_id, wanted).with_org_members(wanted, is_org_member)

    def awaiting_review_ids(
        self, individual_id: int, people: Iterable[tuple[int, str | None]]
    ) -> set[int]:
        """Which of these people a *pending* company would cover by account or proven email
        domain (what the pull request comment says awaits review). Organisations are not
        asked about: a company nobody accepted costs the bot no GitHub call."""
        wanted = [int(github_id) for github_id, _ in people]
        return set(self.coverage(individual_id, wanted, everyone=True).awaiting_review)

    def coverage(
        self, individual_id: int, github_ids: Iterable[int], *, everyone: bool = False
    ) -> CompanyCoverage:
        """What accepted and pending companies beside ``individual_id`` say about these
        people, in one query for the approvals and at most one for proven addresses, and
        without asking GitHub (the caller asks about ``orgs`` once its session is closed).
        A company whose signature a material version outdated covers nobody: whom it would
        cover is ``outdated``. ``awaiting_review`` and ``outdated`` leave out people an
        accepted company covers already, unless ``everyone``."""
        wanted = set(github_ids)
        if not wanted:
            return CompanyCoverage()
        current = signature_current()
        approvals = self.session.execute(
            select(
                # "outdated" whatever the review: signing again comes first either way.
                case((current, Company.status), else_=literal("outdated")),
                CompanyApproval.kind,
                CompanyApproval.value,
            )
            .join(Company, CompanyApproval.company_id == Company.id)
            .join(Agreement, Company.agreement_id == Agreement.id)
            .where(
                Agreement.for_agreement_id == individual_id,
                Agreement.kind == "corporate",
                Company.status.in_(("accepted", "pending")),
            )
        ).all()
        if not approvals:
            return CompanyCoverage()
        accounts: dict[str, set[int]] = {"accepted": set(), "pending": set(), "outdated": set()}
        domains: dict[str, set[str]] = {"accepted": set(), "pending": set(), "outdated": set()}
        for state, kind, value in approvals:
            if kind == "account":
                accounts[state].add(int(value))
            elif kind == "domain":
                domains[state].add(value)
        found = {state: wanted & ids for state, ids in accounts.items()}
        rest = sorted(wanted if everyone else wanted - found["accepted"])
        every_domain = set().union(*domains.values())
        if rest and every_domain:
            for github_id, domain in self.session.execute(
                select(ProvenEmail.github_id, ProvenEmail.domain)
                .where(
                    ProvenEmail.github_id.in_(rest), ProvenEmail.domain.in_(sorted(every_domain))
                )
                .distinct()
            ):
                for state, names in domains.items():
                    if domain in names:
                        found[state].add(int(github_id))
        covered = found["accepted"]
        awaiting, outdated = found["pending"], found["outdated"]
        if not everyone:
            awaiting -= covered
            outdated -= covered
        orgs = {value for state, kind, value in approvals if state == "accepted" and kind == "org"}
        return CompanyCoverage(
            covered=frozenset(covered),
            awaiting_review=frozenset(awaiting),
            orgs=tuple(sorted(orgs)),
            outdated=frozenset(outdated),
        )

    def people_on_domain(self, domain: str) -> list[int]:
        """Everyone who proved an address on this domain."""
        return [
            int(github_id)
            for github_id in self.session.scalars(
                select(ProvenEmail.github_id).where(ProvenEmail.domain == domain).distinct()
            )
        ]

    # Export.

    def export(self, slug: str) -> Iterator[dict[str, Any]]:
        """Every company of a corporate agreement with its managers and approvals."""
        companies = self.list_companies(slug)
        outdated = self.must_sign_again_ids(companies)
        for company in companies:
            yield {
                **self.describe(company),
                # Its signature predates a material change: it covers nobody until it signs.
                "must_sign_again": company.id in outdated,
                "approvals": [
                    {
                        "kind": row.kind,
                        "value": row.value,
                        "label": row.label,
                        "approved_at": format_utc(row.created_at),
                    }
                    for row in company.approvals
                ],
            }
