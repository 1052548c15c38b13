"""CompanyService's coverage rules on a real database: which approval covers whom, and what
never does (a domain without a proven address, an org for a login GitHub's API did not give,
a company of an unrelated corporate agreement)."""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from pathlib import Path
from unittest import mock

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from undersign.accounts.models import ProvenEmail
from undersign.agreements.companies import (
    MAX_APPROVALS,
    MAX_MANAGERS,
    MAX_ORG_APPROVALS,
    ApprovalChange,
    CompanyService,
    LoginResolver,
    UnknownCompany,
    normalize_domain,
)
from undersign.agreements.errors import InvalidInput, ValidationErrors, VersionChanged
from undersign.agreements.models import AuditEntry, Company, CompanyApproval
from undersign.agreements.service import AgreementService, ChangeType
from undersign.db import Base, Database, utcnow
from undersign.migrations import load_models

ALICE, BOB, CAROL, MANAGER = 101, 102, 103, 900


def _setup(session: Session) -> tuple[CompanyService, int, int]:
    agreements = AgreementService(session)
    individual, _, _ = agreements.add_or_update("individual-cla", "Individual", "I agree.")
    other, _, _ = agreements.add_or_update("other-cla", "Other", "I agree too.")
    companies = CompanyService(session)
    companies.add_corporate_agreement("corporate-cla", "Corporate", "We agree.", "individual-cla")
    companies.add_corporate_agreement("other-corporate", "Other corp", "We agree.", "other-cla")
    company = companies.add_paper("corporate-cla", "BigCorp", [(MANAGER, "boss")])
    companies.approve(company, "domain", "bigcorp.example")
    companies.approve(company, "org", "BigCorp")
    unrelated = companies.add_paper("other-corporate", "Elsewhere", [(MANAGER, "boss")])
    companies.approve(unrelated, "account", str(CAROL))
    session.add(
        ProvenEmail(
            address="alice@bigcorp.example",
            github_id=ALICE,
            domain="bigcorp.example",
            proven_at=utcnow(),
        )
    )
    session.flush()
    return companies, individual.id, other.id


def test_who_a_company_covers(session: Session) -> None:
    companies, individual, other = _setup(session)
    asked: list[tuple[str, str]] = []

    def is_member(org: str, login: str) -> bool:
        asked.append((org, login))
        return login == "bob"

    people = [(ALICE, "alice"), (BOB, "bob"), (CAROL, "carol")]
    assert companies.covered_ids(individual, people, is_member) == {ALICE, BOB}
    assert ("bigcorp", "alice") not in asked  # covered by her proven address already
    asked.clear()
    # A login that did not come from GitHub's API is never asked about: bob is not covered.
    assert companies.covered_ids(individual, [(BOB, None)], is_member) == set()
    assert asked == []
    # Carol's approval belongs to a corporate agreement beside another individual one.
    assert companies.covered_ids(other, people, is_member) == {CAROL}


def test_names_are_checked(session: Session) -> None:
    companies, _, _ = _setup(session)
    company = companies.find("corporate-cla", "  bigcorp ")
    assert not companies.approve(company, "domain", "@BIGCORP.example.")  # the same domain
    for kind, value in (
        ("domain", "bigcorp"),
        ("domain", "a b.example"),
        ("account", "-1"),
        ("org", "no/slash"),
        ("team", "x"),
    ):
        with pytest.raises(InvalidInput):
            companies.approve(company, kind, value)
    with pytest.raises(InvalidInput, match="not a corporate agreement"):
        companies.add_paper("individual-cla", "Acme", [(MANAGER, "boss")])
    with pytest.raises(InvalidInput, match="has signed"):
        companies.add_paper("corporate-cla", "BIGCORP", [(MANAGER, "boss")])
    assert normalize_domain(" @Mail.BigCorp.Example ") == "mail.bigcorp.example"


def _web_company(companies: CompanyService, name: str, login: str = "boss") -> Company:
    """A company that signs on the web (no managers besides the signatory, so GitHub is
    never asked)."""
    version = companies.agreements.current_version("corporate-cla")

    def no_lookup(login: str) -> tuple[int, str] | None:
        raise AssertionError(f"GitHub asked about {login}")

    return companies.sign(
        "corporate-cla",
        github_id=MANAGER,
        login=login,
        version_sha256=version.text_sha256,
        agreed=True,
        company_name=name,
        address="1 Main Street",
        signatory_name="Boss Person",
        signatory_title="CTO",
        managers="",
        resolve_login=no_lookup,
    )


def test_a_company_signed_on_the_web_covers_nobody_until_accepted(session: Session) -> None:
    companies, individual, _ = _setup(session)
    heard: list[ApprovalChange] = []
    companies.on_change = heard.append
    squat = _web_company(companies, "Squat Inc")
    assert squat.status == "pending"
    assert companies.find("corporate-cla", "BigCorp").status == "accepted"  # paper
    companies.approve(squat, "account", str(CAROL))
    companies.approve(squat, "org", "everyone")
    companies.approve(squat, "org", "everyone-else")
    assert heard == []  # a pending company's approvals wake no pull request

    def is_member(org: str, login: str) -> bool:
        assert org == "bigcorp", f"a pending company's org {org} was asked about"
        return False

    people = [(CAROL, "carol")]
    assert companies.covered_ids(individual, people, is_member) == set()
    assert companies.awaiting_review_ids(individual, people) == {CAROL}
    heard.clear()
    assert companies.accept(squat)
    assert not companies.accept(squat)
    assert companies.covered_ids(individual, people, is_member) == {CAROL}
    assert companies.awaiting_review_ids(individual, people) == set()
    # One org change stands for both (it re-evaluates every open pull request already).
    assert [c.kind for c in heard] == ["account", "org"]


def test_a_rejected_company_covers_nobody_and_frees_its_name(session: Session) -> None:
    companies, individual, _ = _setup(session)
    squat = _web_company(companies, "Rival Ltd")
    companies.approve(squat, "account", str(CAROL))
    assert companies.pending_review(companies.agreements.get("individual-cla")) == [squat]
    assert companies.reject(squat)
    assert not companies.reject(squat)
    with pytest.raises(InvalidInput, match="was rejected"):
        companies.accept(squat)
    assert companies.covered_ids(individual, [(CAROL, None)], lambda org, login: False) == set()
    with pytest.raises(InvalidInput, match="was rejected by the maintainers"):
        companies.approve(squat, "domain", "rival.example")
    assert companies.unapprove(squat, "account", str(CAROL))  # removing is still allowed
    assert companies.pending_review(companies.agreements.get("individual-cla")) == []
    with pytest.raises(InvalidInput, match="no company"):
        companies.find("corporate-cla", "rival ltd")
    again = _web_company(companies, "RIVAL LTD")  # someone else may sign under the name
    assert companies.find("corporate-cla", "Rival Ltd").id == again.id != squat.id
    session.flush()
    actions = [
        row.action
        for row in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        if row.action in ("company.accept", "company.reject")
    ]
    assert actions == ["company.reject"]


def test_a_company_approves_at_most_200_and_20_organisations(session: Session) -> None:
    companies, _, _ = _setup(session)
    company = companies.find("corporate-cla", "BigCorp")  # one domain and one org already
    for number in range(MAX_ORG_APPROVALS - 1):
        assert companies.approve(company, "org", f"org-{number}")
    with pytest.raises(InvalidInput, match="approves 20 organisations, the most"):
        companies.approve(company, "org", "one-too-many")
    for number in range(MAX_APPROVALS - MAX_ORG_APPROVALS - 1):
        assert companies.approve(company, "account", str(1000 + number))
    with pytest.raises(InvalidInput, match="has 200 approvals, the most"):
        companies.approve(company, "domain", "more.example")
    assert not companies.approve(company, "account", "1000")  # approved already: no error
    assert companies.unapprove(company, "account", "1000")
    assert companies.approve(company, "domain", "more.example")


def _race(
    database: Database, company_id: int, approvals: list[tuple[str, str]]
) -> list[bool | str]:
    """Each approval in its own thread and transaction, all counting before any inserts
    when nothing stops them (the gate after the count waits for every thread, or one
    second when a lock holds the others back)."""
    gate = threading.Barrier(len(approvals))
    count = CompanyService._check_room

    def counted_then_wait(self: CompanyService, company: Company, kind: str) -> None:
        count(self, company, kind)
        # Broken when the others wait on the lock instead: exactly what the fix does.
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(timeout=1)

    results: list[bool | str] = [False] * len(approvals)

    def approve(index: int, kind: str, value: str) -> None:
        try:
            with database.session() as session:
                company = session.get(Company, company_id)
                assert company is not None
                results[index] = CompanyService(session).approve(company, kind, value)
        except InvalidInput as exc:
            results[index] = str(exc)

    with mock.patch.object(CompanyService, "_check_room", counted_then_wait):
        threads = [
            threading.Thread(target=approve, args=(i, kind, value))
            for i, (kind, value) in enumerate(approvals)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    return results


def _one_short_of_each_cap(database: Database) -> int:
    """BigCorp, one organisation short of 20 and, with one more, one approval short of 200;
    its id."""
    with database.session() as session:
        companies, _, _ = _setup(session)  # one domain and one org approved
        company = companies.find("corporate-cla", "BigCorp")
        for number in range(MAX_ORG_APPROVALS - 2):
            companies.approve(company, "org", f"org-{number}")
        for number in range(MAX_APPROVALS - MAX_ORG_APPROVALS - 2):
            companies.approve(company, "account", str(1000 + number))
        return company.id


def _approval_counts(database: Database, company_id: int) -> dict[str, int]:
    with database.session() as session:
        rows = session.execute(
            select(CompanyApproval.kind, func.count())
            .where(CompanyApproval.company_id == company_id)
            .group_by(CompanyApproval.kind)
        ).all()
    return {str(kind): int(number) for kind, number in rows}


def test_concurrent_approvals_never_pass_the_caps(clean_database: Database) -> None:
    """Three managers approve at the same moment, each in their own transaction, once at
    19 organisations and once at 199 approvals: one wins each time (SQLite and PostgreSQL)."""
    company_id = _one_short_of_each_cap(clean_database)
    orgs = _race(clean_database, company_id, [("org", f"late-{n}") for n in range(3)])
    assert orgs.count(True) == 1, orgs
    assert _approval_counts(clean_database, company_id)["org"] == MAX_ORG_APPROVALS
    accounts = _race(clean_database, company_id, [("account", str(5000 + n)) for n in range(3)])
    assert accounts.count(True) == 1, accounts
    assert all("has 200 approvals" in str(r) for r in accounts if r is not True)
    assert sum(_approval_counts(clean_database, company_id).values()) == MAX_APPROVALS


def test_the_sqlite_lock_does_not_wait_for_the_driver_to_begin(tmp_path: Path) -> None:
    """Python's sqlite3 opens a transaction before a write only in its legacy mode. On a
    connection where it opens none (``isolation_level`` None: SQLAlchemy's AUTOCOMMIT, or
    its recipe for SAVEPOINTs), a write that changes nothing took SQLite's write lock and
    let it go at once, and three managers at 199 all counted 199. The lock begins the
    transaction itself, so one of them wins."""
    load_models()
    url = f"sqlite:///{tmp_path / 'autocommit.sqlite3'}"
    database = Database(url, isolation_level="AUTOCOMMIT")
    try:
        Base.metadata.create_all(database.engine)
        company_id = _one_short_of_each_cap(database)
        with database.session() as session:
            company = session.get(Company, company_id)
            assert company is not None
            assert CompanyService(session).approve(company, "account", "4999")  # at 199
        accounts = _race(database, company_id, [("account", str(5000 + n)) for n in range(3)])
        assert accounts.count(True) == 1, accounts
        assert sum(_approval_counts(database, company_id).values()) == MAX_APPROVALS
    finally:
        database.dispose()


def test_the_same_approval_at_the_same_moment_is_recorded_once(clean_database: Database) -> None:
    with clean_database.session() as session:
        companies, _, _ = _setup(session)
        company_id = companies.find("corporate-cla", "BigCorp").id
    results = _race(clean_database, company_id, [("domain", "new.example")] * 3)
    assert sorted(results, key=str) == [False, False, True]


def test_an_admin_reviews_only_the_companies_beside_their_agreement(session: Session) -> None:
    companies, _, _ = _setup(session)
    squat = _web_company(companies, "Squat Inc")
    elsewhere = companies.find("other-corporate", "Elsewhere")
    individual = companies.agreements.get("individual-cla")
    assert companies.for_review(individual, squat.id) is squat
    assert companies.for_review(companies.agreements.get("corporate-cla"), squat.id) is squat
    for agreement, company_id in (
        (individual, elsewhere.id),
        (companies.agreements.get("other-cla"), squat.id),
        (individual, 999_999),
    ):
        with pytest.raises(UnknownCompany):
            companies.for_review(agreement, company_id)


def _publish(companies: CompanyService, text: str, change: ChangeType) -> None:
    companies.add_corporate_agreement("corporate-cla", "Corporate", text, "individual-cla", change)


def test_a_material_version_stops_companies_that_signed_before_from_covering(
    session: Session,
) -> None:
    """The rule individual signatures follow: an editorial version changes nothing; after a
    material one, a company covers nobody until it signs the current version (a paper one
    until it is recorded again), and says whom it would cover meanwhile."""
    companies, individual, _ = _setup(session)
    paper = companies.find("corporate-cla", "BigCorp")  # covers alice by her proven domain
    web = _web_company(companies, "WebCorp")
    companies.approve(web, "account", str(BOB))
    assert companies.accept(web)
    heard: list[ApprovalChange] = []
    companies.on_change = heard.append
    people = {ALICE: "alice", BOB: "bob"}

    def nobody(org: str, login: str) -> bool:
        return False

    assert companies.covered_ids(individual, people.items(), nobody) == {ALICE, BOB}
    _publish(companies, "We agree (typo fixed).", "editorial")
    assert companies.covered_ids(individual, people.items(), nobody) == {ALICE, BOB}
    assert companies.must_sign_again(paper) is None

    _publish(companies, "We agree, and more.", "material")
    current = companies.agreements.current_version("corporate-cla")
    assert companies.covered_ids(individual, people.items(), nobody) == set()
    # A company that signs the new version covers at once (each company is judged by the
    # version it signed, not another's).
    later = _web_company(companies, "LaterCorp")
    companies.approve(later, "account", str(CAROL))
    assert companies.accept(later)
    assert companies.covered_ids(individual, [(CAROL, None)], nobody) == {CAROL}
    assert companies.must_sign_again(later) is None
    heard.clear()
    assert companies.coverage(individual, people).outdated == {ALICE, BOB}
    assert companies.must_sign_again(web) == companies.must_sign_again(paper) == current
    admin_view = companies.agreements.get("individual-cla")
    assert companies.signed_an_earlier_version(admin_view) == [paper, web]
    assert companies.must_sign_again_ids([paper, web]) == {paper.id, web.id}
    assert companies.versions_to_sign_again([paper, web, later]) == {
        paper.id: current.number,
        web.id: current.number,
    }

    with pytest.raises(VersionChanged):
        companies.sign_again(
            web,
            github_id=MANAGER,
            login="boss",
            version_sha256="0" * 64,
            agreed=True,
            signatory_name="Boss Person",
            signatory_title="CTO",
        )
    companies.sign_again(
        web,
        github_id=MANAGER,
        login="boss",
        version_sha256=current.text_sha256,
        agreed=True,
        signatory_name="Boss Person",
        signatory_title="CEO",
    )
    assert (web.version_id, web.status) == (current.id, "accepted")
    assert companies.covered_ids(individual, people.items(), nobody) == {BOB}
    assert [(c.kind, c.value) for c in heard] == [("account", str(BOB))]
    with pytest.raises(InvalidInput, match="signed the current version already"):
        companies.sign_again(
            web,
            github_id=MANAGER,
            login="boss",
            version_sha256=current.text_sha256,
            agreed=True,
            signatory_name="Boss Person",
            signatory_title="CEO",
        )
    # The operator records BigCorp's new paper signature under the same name.
    again = companies.add_paper("corporate-cla", "bigcorp", [(MANAGER, "boss"), (CAROL, "carol")])
    assert again.id == paper.id and len(again.approvals) == 2
    assert {m.login for m in again.managers} == {"boss", "carol"}
    assert companies.covered_ids(individual, people.items(), nobody) == {ALICE, BOB}
    with pytest.raises(InvalidInput, match="has signed 'corporate-cla' already"):
        companies.add_paper("corporate-cla", "BigCorp", [(MANAGER, "boss")])
    actions = session.scalars(
        select(AuditEntry.action).where(AuditEntry.action == "company.sign_again")
    ).all()
    assert len(actions) == 2


def test_a_paper_signature_counts_for_the_version_it_was_recorded_against(
    session: Session,
) -> None:
    """A paper signature keeps the version the operator recorded it for, as a web one does,
    and is judged by it: not by when it was recorded. A material version published at the
    very instant of the record, or by a clock behind the one that recorded it, asked
    nobody to sign again."""
    companies, individual, _ = _setup(session)
    first = companies.agreements.current_version("corporate-cla")
    paper = companies.find("corporate-cla", "BigCorp")
    assert (paper.version_id, paper.text_sha256) == (first.id, first.text_sha256)
    moment = utcnow()
    with mock.patch("undersign.agreements.companies.utcnow", return_value=moment):
        same = companies.add_paper("corporate-cla", "Same Instant", [(MANAGER, "boss")])
    later = moment + dt.timedelta(hours=1)  # the operator's clock runs an hour ahead
    with mock.patch("undersign.agreements.companies.utcnow", return_value=later):
        ahead = companies.add_paper("corporate-cla", "Clock Ahead", [(MANAGER, "boss")])
    for company in (same, ahead):
        companies.approve(company, "account", str(BOB))
    assert companies.covered_ids(individual, [(BOB, None)], lambda org, login: False) == {BOB}

    with mock.patch("undersign.agreements.service.utcnow", return_value=moment):
        _publish(companies, "We agree, and more.", "material")
    current = companies.agreements.current_version("corporate-cla")
    assert companies.must_sign_again(same) == companies.must_sign_again(ahead) == current
    assert companies.must_sign_again_ids([paper, same, ahead]) == {paper.id, same.id, ahead.id}
    assert companies.coverage(individual, [BOB]).outdated == {BOB}
    again = companies.add_paper("corporate-cla", "Clock Ahead", [(MANAGER, "boss")])
    assert (again.id, again.version_id) == (ahead.id, current.id)
    assert companies.must_sign_again(again) is None


def test_the_operator_names_the_version_a_paper_signature_is_for(session: Session) -> None:
    """``version``: the company signed an earlier text on paper. It counts while no material
    version followed it; one that a material version replaced is refused (it would cover
    nobody), as is a version that does not exist."""
    companies, _, _ = _setup(session)
    _publish(companies, "We agree (typo fixed).", "editorial")  # version 2
    old = companies.add_paper("corporate-cla", "Old Paper", [(MANAGER, "boss")], version=1)
    assert old.version_id == companies.agreements.version("corporate-cla", 1).id
    assert companies.must_sign_again(old) is None
    with pytest.raises(InvalidInput, match="has no version 9"):
        companies.add_paper("corporate-cla", "Nine Inc", [(MANAGER, "boss")], version=9)

    _publish(companies, "We agree, and more.", "material")  # version 3
    current = companies.agreements.current_version("corporate-cla")
    assert companies.must_sign_again(old) == current
    for number, name in ((2, "Late Paper"), (1, "Old Paper")):
        with pytest.raises(InvalidInput, match=f"version {number} .* material version 3"):
            companies.add_paper("corporate-cla", name, [(MANAGER, "boss")], version=number)
    assert companies.must_sign_again(old) == current  # the refused record changed nothing
    again = companies.add_paper("corporate-cla", "Old Paper", [(MANAGER, "boss")], version=3)
    assert again.id == old.id and companies.must_sign_again(again) is None


def test_a_paper_signature_recorded_without_its_version_counts_only_if_recorded_later(
    session: Session,
) -> None:
    """Paper signatures recorded before the version was kept name none: they count if
    recorded after the last material version was published, and a material version
    published at the same instant asks the company to sign again."""
    companies, _, _ = _setup(session)
    paper = companies.find("corporate-cla", "BigCorp")
    paper.version_id = paper.text_sha256 = None  # as the previous release recorded it
    session.flush()
    assert companies.must_sign_again(paper) is None
    with mock.patch("undersign.agreements.service.utcnow", return_value=paper.signed_at):
        _publish(companies, "We agree, and more.", "material")
    current = companies.agreements.current_version("corporate-cla")
    assert companies.must_sign_again(paper) == current
    assert companies.must_sign_again_ids([paper]) == {paper.id}


def test_signing_again_as_a_new_company_points_to_the_company_page(session: Session) -> None:
    """After a material version, the sign form's "signed already" would send a manager in a
    circle: it says where the current version is signed instead."""
    companies, _, _ = _setup(session)
    _web_company(companies, "WebCorp")
    with pytest.raises(ValidationErrors) as signed:
        _web_company(companies, "WebCorp")
    assert signed.value.errors["company_name"] == (
        "This company has signed already; ask its CLA managers."
    )
    _publish(companies, "We agree, and more.", "material")
    with pytest.raises(ValidationErrors) as outdated:
        _web_company(companies, "WebCorp")
    assert "signs the current one on the company's page" in outdated.value.errors["company_name"]


def _resolver(accounts: dict[str, int], asked: list[str] | None = None) -> LoginResolver:
    """GitHub as a dict of login -> id (any case; spelled as the dict spells it)."""

    def resolve(login: str) -> tuple[int, str] | None:
        if asked is not None:
            asked.append(login)
        for known, github_id in accounts.items():
            if known.casefold() == login.casefold():
                return github_id, known
        return None

    return resolve


def _manager_actions(session: Session) -> list[tuple[str, object, object]]:
    return [
        (row.action, row.before, row.after)
        for row in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
        if row.action.startswith("company.manager_")
    ]


def test_a_company_adds_and_removes_managers_but_keeps_one(session: Session) -> None:
    """Managers change after signing, by GitHub id, each change audited as approvals are;
    adding one twice changes nothing, and the last one stays."""
    companies, _, _ = _setup(session)
    company = companies.find("corporate-cla", "BigCorp")  # managed by boss alone
    asked: list[str] = []
    github = _resolver({"Deputy": ALICE, "carol": CAROL}, asked)
    with pytest.raises(InvalidInput, match="last CLA manager of BigCorp"):
        companies.remove_manager(company, MANAGER)
    manager, added = companies.add_manager(company, " @deputy ", github)
    assert added and (manager.github_id, manager.login) == (ALICE, "Deputy")
    assert asked == ["deputy"]
    again, added = companies.add_manager(company, "DEPUTY", github)
    assert not added and again.id == manager.id
    assert {m.github_id for m in company.managers} == {MANAGER, ALICE}
    assert [c.id for c in companies.managed_by(ALICE)] == [company.id]
    with pytest.raises(InvalidInput, match="GitHub has no user account 'ghost'"):
        companies.add_manager(company, "ghost", github)
    asked.clear()
    for bad in ("", "two words", "-dash", "x" * 40, "a/b"):
        with pytest.raises(InvalidInput, match="is not a GitHub login"):
            companies.add_manager(company, bad, github)
    assert asked == []  # a malformed login costs no GitHub call

    assert companies.manager_named(company, "BOSS") is not None
    assert companies.manager_named(company, "nobody") is None
    removed = companies.remove_manager(company, MANAGER)
    assert removed is not None and removed.login == "boss"
    assert companies.remove_manager(company, MANAGER) is None  # not a manager any more
    assert [m.github_id for m in company.managers] == [ALICE]
    assert companies.managed_by(MANAGER) == [companies.find("other-corporate", "Elsewhere")]
    with pytest.raises(InvalidInput, match="Deputy is the last CLA manager"):
        companies.remove_manager(company, ALICE)
    assert [m.github_id for m in company.managers] == [ALICE]
    state = {"company_id": company.id, "company": "BigCorp"}
    assert _manager_actions(session) == [
        ("company.manager_add", None, {**state, "github_id": ALICE, "login": "Deputy"}),
        ("company.manager_remove", {**state, "github_id": MANAGER, "login": "boss"}, None),
    ]


def test_a_manager_is_found_by_the_login_kept_then_by_github(session: Session) -> None:
    """``company manager-remove LOGIN``: the login as the company's page shows it, asking
    GitHub only when no kept login answers (a manager renamed their account)."""
    companies, _, _ = _setup(session)
    company = companies.find("corporate-cla", "BigCorp")
    companies.add_manager(company, "carol", _resolver({"carol": CAROL}))

    def no_lookup(login: str) -> tuple[int, str] | None:
        raise AssertionError(f"GitHub asked about {login}")

    found = companies.manager_named(company, "@Carol", no_lookup)
    assert found is not None and found.github_id == CAROL
    renamed = companies.manager_named(company, "carol-new", _resolver({"carol-new": CAROL}))
    assert renamed is not None and renamed.github_id == CAROL
    assert companies.manager_named(company, "alice", _resolver({"alice": ALICE})) is None
    assert companies.manager_named(company, "bad login", no_lookup) is None


def test_a_rejected_company_gets_no_new_manager_and_the_cap_holds(session: Session) -> None:
    """Managers follow approvals: none added to a rejected company (removing still works),
    and at most the sign form's number: the signatory and MAX_MANAGERS others."""
    companies, _, _ = _setup(session)
    company = companies.find("corporate-cla", "BigCorp")
    accounts = {f"person-{n}": 2000 + n for n in range(MAX_MANAGERS + 1)}
    github = _resolver(accounts)
    for login in list(accounts)[:MAX_MANAGERS]:
        assert companies.add_manager(company, login, github)[1]
    with pytest.raises(InvalidInput, match=f"has {MAX_MANAGERS + 1} CLA managers; a company"):
        companies.add_manager(company, f"person-{MAX_MANAGERS}", github)
    assert not companies.add_manager(company, "person-0", github)[1]  # a manager already: fine
    assert companies.reject(company)
    with pytest.raises(InvalidInput, match="was rejected by the maintainers"):
        companies.add_manager(company, f"person-{MAX_MANAGERS}", github)
    assert companies.remove_manager(company, 2000) is not None


def test_two_managers_removing_each_other_at_once_leave_one(clean_database: Database) -> None:
    """Each removal in its own thread and transaction, both counting two before either
    deletes when nothing stops them: the company would be left with no manager. The lock
    makes the second count one, and refuse (SQLite and PostgreSQL)."""
    with clean_database.session() as session:
        companies, _, _ = _setup(session)
        company = companies.find("corporate-cla", "BigCorp")
        companies.add_manager(company, "deputy", _resolver({"deputy": ALICE}))
        company_id = company.id
    gate = threading.Barrier(2)
    count = CompanyService._manager_count

    def counted_then_wait(self: CompanyService, company: Company) -> int:
        number = count(self, company)
        # Broken when the other waits on the lock instead: exactly what the lock does.
        with contextlib.suppress(threading.BrokenBarrierError):
            gate.wait(timeout=1)
        return number

    results: dict[int, str] = {}

    def remove(github_id: int) -> None:
        try:
            with clean_database.session() as session:
                company = session.get(Company, company_id)
                assert company is not None
                removed = CompanyService(session).remove_manager(company, github_id)
                results[github_id] = "removed" if removed else "none"
        except InvalidInput as exc:
            results[github_id] = str(exc)

    with mock.patch.object(CompanyService, "_manager_count", counted_then_wait):
        threads = [threading.Thread(target=remove, args=(who,)) for who in (MANAGER, ALICE)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
    assert list(results.values()).count("removed") == 1, results
    assert any("last CLA manager" in result for result in results.values()), results
    with clean_database.session() as session:
        left = session.get(Company, company_id)
        assert left is not None and len(left.managers) == 1
