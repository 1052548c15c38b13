"""A company that signs a corporate agreement on the web waits for the maintainers' review:
its approvals cover nobody until an instance admin or an admin of the individual agreement
accepts it in the console (or ``undersign company accept``). End to end: the console and the
workers on one database and queue, GitHub the emulator; no mocks."""

from __future__ import annotations

import json
import re

import httpx
from sqlalchemy import select
from tests.conftest import (
    AGREEMENT_SLUG,
    BOT_LOGIN,
    CLAFactory,
    CLAService,
    Live,
    LiveFactory,
    sign_in,
)
from tests.support.cli import undersign
from tests.support.companies import CORPORATE, domain_approvals
from tests.support.console import console_for
from tests.support.pages import csrf_token, field_value
from tests.support.pulls import REPO, pr_authored_as, settles_on

from undersign.agreements.companies import MAX_APPROVALS, MAX_ORG_APPROVALS, CompanyService
from undersign.agreements.models import AuditEntry, Company
from undersign.agreements.service import AgreementService

CONSOLE_PAGE = f"/admin/agreements/{AGREEMENT_SLUG}"


def _corporate(cla: CLAService) -> None:
    with cla.database.session() as session:
        CompanyService(session).add_corporate_agreement(
            CORPORATE, "Corporate CLA", "Your company licenses it.", AGREEMENT_SLUG
        )


def _sign_on_the_web(live: Live, client: httpx.Client, name: str) -> int:
    """The signed-in person signs the corporate agreement for company ``name``; its id."""
    page = client.get(f"/sign/{CORPORATE}")
    assert page.status_code == 200
    signed = client.post(
        f"/sign/{CORPORATE}",
        data={
            "csrf_token": csrf_token(page.text),
            "version_sha256": field_value(page.text, "version_sha256"),
            "company_name": name,
            "address": "1 Main Street",
            "signatory_name": "Someone Important",
            "signatory_title": "CEO",
            "managers": "",
            "agree": "yes",
        },
    )
    assert signed.status_code == 303, signed.text
    match = re.fullmatch(r".*/companies/(\d+)", signed.headers["location"])
    assert match is not None
    return int(match.group(1))


def _approve_on_the_web(client: httpx.Client, company_id: int, kind: str, value: str) -> str:
    page = client.get(f"/companies/{company_id}")
    response = client.post(
        f"/companies/{company_id}/approve",
        data={"csrf_token": csrf_token(page.text), "kind": kind, "value": value},
    )
    assert response.status_code == 303, response.text
    return client.get(f"/companies/{company_id}").text


def _review(client: httpx.Client, company_id: int, verb: str) -> httpx.Response:
    page = client.get("/companies")  # any page of the person's session carries the token
    return client.post(
        f"{CONSOLE_PAGE}/companies/{company_id}/{verb}", data={"csrf_token": csrf_token(page.text)}
    )


def _reviews(cla: CLAService) -> list[tuple[str, str | None]]:
    with cla.database.session() as session:
        rows = session.scalars(
            select(AuditEntry)
            .where(AuditEntry.action.in_(["company.accept", "company.reject"]))
            .order_by(AuditEntry.id)
        )
        return [(row.action, row.actor) for row in rows]


def _bot_comment(cla: CLAService, number: int) -> str:
    bodies = [
        str(c["body"]) for c in cla.state.comments(REPO, number) if c["user"]["login"] == BOT_LOGIN
    ]
    return bodies[-1] if bodies else ""


def test_a_pending_company_covers_nobody_until_an_agreement_admin_accepts_it(
    cla_factory: CLAFactory, live_factory: LiveFactory
) -> None:
    cla, console = console_for(cla_factory, live_factory)
    _corporate(cla)
    number, sha = pr_authored_as(cla, "dave", "dave@example.com", linked=True)
    settles_on(cla, sha, "failure")

    with console.client() as erin:
        sign_in(console, erin, "erin")
        company_id = _sign_on_the_web(console, erin, "Squat Inc")
        own = _approve_on_the_web(erin, company_id, "login", "dave")
        assert 'id="company-status"' in own and "Awaiting review" in own
        assert "awaiting review" in erin.get("/companies").text
        # A manager cannot accept their own company: the console answers 404.
        assert _review(erin, company_id, "accept").status_code == 404
    # A pending company's approvals wake no pull request; the next evaluation (a push, a
    # re-check) tells the contributor their company awaits review.
    cla.wait_idle()
    assert "Awaiting review" not in _bot_comment(cla, number)
    status, _ = cla.deliver("pull_request", cla.state.pull_request_event(REPO, number))
    assert status == 202
    cla.wait_for(lambda: "Awaiting review" in _bot_comment(cla, number), what="the comment")
    settles_on(cla, sha, "failure")  # a pending company covers nobody
    assert "@dave" in _bot_comment(cla, number).split("Awaiting review")[1]

    with console.client() as dave:
        sign_in(console, dave, "dave")
        assert _review(dave, company_id, "accept").status_code == 404
        assert dave.get(CONSOLE_PAGE).status_code == 404
    with console.client() as maint:  # owns octo-org, so administers the individual CLA
        sign_in(console, maint, "maint")
        page = maint.get(CONSOLE_PAGE)
        assert page.status_code == 200
        assert 'id="pending-companies"' in page.text and "Squat Inc" in page.text
        no_token = maint.post(f"{CONSOLE_PAGE}/companies/{company_id}/accept")
        assert no_token.status_code == 400  # CSRF
        assert _review(maint, 999_999, "accept").status_code == 404
        accepted = _review(maint, company_id, "accept")
        assert accepted.status_code == 303
        after = maint.get(CONSOLE_PAGE).text
        assert "Squat Inc is accepted" in after and 'id="pending-companies"' not in after
    settles_on(cla, sha, "success")
    assert "All contributors have signed" in _bot_comment(cla, number)
    assert _reviews(cla) == [("company.accept", str(cla.state.user("maint")["id"]))]


def test_a_rejected_company_covers_nobody_and_its_name_may_be_signed_again(
    cla_factory: CLAFactory, live_factory: LiveFactory
) -> None:
    cla, console = console_for(cla_factory, live_factory)
    _corporate(cla)
    _number, sha = pr_authored_as(cla, "dave", "dave@example.com", linked=True)
    settles_on(cla, sha, "failure")
    with console.client() as erin:
        sign_in(console, erin, "erin")
        squat = _sign_on_the_web(console, erin, "BigCorp Ltd")
        _approve_on_the_web(erin, squat, "login", "dave")
    with console.client() as maint:
        sign_in(console, maint, "maint")
        assert _review(maint, squat, "reject").status_code == 303
        assert "BigCorp Ltd is rejected" in maint.get(CONSOLE_PAGE).text
        assert _review(maint, squat, "accept").status_code == 409  # rejected stays rejected
    cla.wait_idle()
    settles_on(cla, sha, "failure")
    with console.client() as erin:
        sign_in(console, erin, "erin")
        assert "Rejected by the maintainers" in erin.get(f"/companies/{squat}").text
    with console.client() as dave:  # the real BigCorp may sign under its name now
        sign_in(console, dave, "dave")
        real = _sign_on_the_web(console, dave, "bigcorp ltd")
    assert real != squat
    listed = json.loads(undersign(cla, "company", "list", CORPORATE, "--json").output)
    assert sorted((c["company_id"], c["status"]) for c in listed) == [
        (squat, "rejected"),
        (real, "pending"),
    ]
    assert [action for action, _ in _reviews(cla)] == ["company.reject"]


def test_the_command_line_accepts_and_rejects(cla: CLAService) -> None:
    """``company accept|reject``; a paper signature (``company add``) is accepted at once."""
    _corporate(cla)
    _number, sha = pr_authored_as(cla, "dave", "dave@example.com", linked=True)
    settles_on(cla, sha, "failure")
    dave = cla.state.user("dave")
    with cla.database.session() as session:
        companies = CompanyService(session, on_change=cla.runtime.approval_hook(session))
        version = AgreementService(session).current_version(CORPORATE)
        web = companies.sign(
            CORPORATE,
            github_id=int(cla.state.user("erin")["id"]),
            login="erin",
            version_sha256=version.text_sha256,
            agreed=True,
            company_name="Web Co",
            address="1 Main Street",
            signatory_name="Erin",
            signatory_title="CEO",
            managers="",
            resolve_login=lambda login: None,
        )
        companies.approve(web, "account", str(dave["id"]))
    cla.wait_idle()
    settles_on(cla, sha, "failure")
    undersign(cla, "company", "add", CORPORATE, "Paper Co", "--manager", "maint")
    exported = json.loads(undersign(cla, "company", "list", CORPORATE, "--json").output)
    listed = {c["name"]: c for c in exported}
    assert (listed["Web Co"]["status"], listed["Paper Co"]["status"]) == ("pending", "accepted")
    assert "\tpending" in undersign(cla, "company", "list", CORPORATE).output

    assert "accepted" in undersign(cla, "company", "accept", CORPORATE, "web co").output
    settles_on(cla, sha, "success")
    assert "already" in undersign(cla, "company", "accept", CORPORATE, "Web Co").output
    assert "rejected" in undersign(cla, "company", "reject", CORPORATE, "Web Co").output
    settles_on(cla, sha, "failure")  # an accepted company rejected stops covering
    missing = undersign(cla, "company", "accept", CORPORATE, "Web Co", ok=False)
    assert "no company 'Web Co'" in missing.output
    assert [action for action, actor in _reviews(cla) if actor == "cli"] == [
        "company.accept",
        "company.reject",
    ]


def test_the_caps_on_approvals_are_clear_on_the_form_and_the_command_line(
    cla_factory: CLAFactory, live_factory: LiveFactory
) -> None:
    cla, console = console_for(cla_factory, live_factory)
    _corporate(cla)
    undersign(cla, "company", "add", CORPORATE, "BigCorp Ltd", "--manager", "maint")
    for number in range(MAX_ORG_APPROVALS):
        undersign(cla, "company", "approve", CORPORATE, "BigCorp Ltd", "--org", f"org-{number}")
    too_many_orgs = undersign(
        cla, "company", "approve", CORPORATE, "BigCorp Ltd", "--org", "org-x", ok=False
    )
    assert "approves 20 organisations, the most a company may" in too_many_orgs.output
    with cla.database.session() as session:
        company = session.scalar(select(Company).where(Company.name == "BigCorp Ltd"))
        assert company is not None
        company_id = company.id
        session.add_all(domain_approvals(company_id, MAX_APPROVALS - MAX_ORG_APPROVALS))
    with console.client() as maint:
        sign_in(console, maint, "maint")
        page = maint.get(f"/companies/{company_id}")
        refused = maint.post(
            f"/companies/{company_id}/approve",
            data={"csrf_token": csrf_token(page.text), "kind": "domain", "value": "more.example"},
        )
    assert refused.status_code == 400
    assert "has 200 approvals, the most a company may have" in refused.text
    too_many = undersign(
        cla, "company", "approve", CORPORATE, "BigCorp Ltd", "--domain", "more.example", ok=False
    )
    assert "has 200 approvals" in too_many.output


def test_one_evaluation_asks_github_once_per_org_and_person(cla: CLAService) -> None:
    """Three companies approve octo-org, whose members the link exempts too: dave (no
    member) costs one membership call, however many companies and rules ask. A pending
    company's organisation costs nothing."""
    _corporate(cla)
    cla.state.add_org_member("octo-org", BOT_LOGIN)  # it sees members: GitHub answers at once
    with cla.database.session() as session:
        AgreementService(session).link_org("octo-org", AGREEMENT_SLUG, exempt_org_members=True)
    maint = cla.state.user("maint")
    with cla.database.session() as session:
        companies = CompanyService(session)
        for name in ("One", "Two", "Three"):
            company = companies.add_paper(CORPORATE, name, [(maint["id"], "maint")])
            companies.approve(company, "org", "octo-org")
        pending = companies.add_paper(CORPORATE, "Pending", [(maint["id"], "maint")])
        pending.status = "pending"
        companies.approve(pending, "org", "elsewhere")
    cla.wait_idle()
    cla.state.clear_requests()
    _number, sha = pr_authored_as(cla, "dave", "dave@example.com", linked=True)
    settles_on(cla, sha, "failure")
    asked = [r.rest_path for r in cla.state.api_calls("GET", "/orgs/")]
    assert asked == ["/orgs/octo-org/members/dave"]


def test_the_console_lists_the_companies_that_must_sign_again(
    cla_factory: CLAFactory, live_factory: LiveFactory
) -> None:
    cla, console = console_for(cla_factory, live_factory)
    _corporate(cla)
    with cla.database.session() as session:
        companies = CompanyService(session)
        companies.add_paper(CORPORATE, "BigCorp Ltd", [(cla.state.user("dave")["id"], "dave")])
        companies.add_paper(CORPORATE, "Later Inc", [(cla.state.user("dave")["id"], "dave")])
    with console.client() as maint:
        sign_in(console, maint, "maint")
        assert 'id="companies-signed-earlier"' not in maint.get(CONSOLE_PAGE).text
        with cla.database.session() as session:
            CompanyService(session).add_corporate_agreement(
                CORPORATE, "Corporate CLA", "Patents too.", AGREEMENT_SLUG, "material"
            )
        with cla.database.session() as session:  # recorded again on paper: it counts
            CompanyService(session).add_paper(
                CORPORATE, "Later Inc", [(cla.state.user("dave")["id"], "dave")]
            )
        page = maint.get(CONSOLE_PAGE).text
        listed = page.split('id="companies-signed-earlier"')[1].split("</table>")[0]
        assert "BigCorp Ltd" in listed and "Later Inc" not in listed
