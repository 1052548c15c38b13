"""CompanyService's coverage rules on a real database: which approval covers whom, and what
never does (a domain without a proven address, an org for a login GitHub's API did not give,
a company of an unrelated corporate agreement)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session

from undersign.accounts.models import ProvenEmail
from undersign.agreements.companies import CompanyService, normalize_domain
from undersign.agreements.errors import InvalidInput
from undersign.agreements.service import AgreementService
from undersign.db import utcnow

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
