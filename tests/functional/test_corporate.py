"""Corporate agreements (issue 14), end to end: a company's approvals cover its people by
account, organisation membership or a *proven* email domain, and every spoof of a commit
email stays red. The live app, the GitHub emulator and a real queue consumer; no mocks."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from typing import Any

from sqlalchemy import event, select
from tests.conftest import AGREEMENT_SLUG, BOT_LOGIN, CLAFactory, CLAService, sign_in
from tests.support.cli import undersign
from tests.support.companies import CORPORATE
from tests.support.emails import link_emails
from tests.support.pulls import REPO, pr_authored_as, settles_on

from undersign.accounts.models import ProvenEmail
from undersign.agreements.companies import CompanyService
from undersign.agreements.models import AuditEntry, Company
from undersign.agreements.service import AgreementService
from undersign.enforcement import service
from undersign.enforcement.contributors import Contributor
from undersign.jobs.context import JobContext

DOMAIN = "bigcorp.example"


def _setup_company(cla: CLAService, *approvals: tuple[str, str]) -> int:
    """BigCorp signs the corporate agreement on paper, with ``maint`` as its manager."""
    maint = cla.state.user("maint")
    with cla.database.session() as session:
        companies = CompanyService(session)
        companies.add_corporate_agreement(
            CORPORATE, "Corporate CLA", "Your company licenses it.", AGREEMENT_SLUG
        )
        company = companies.add_paper(CORPORATE, "BigCorp Ltd", [(maint["id"], "maint")])
        company_id = company.id
    for kind, value in approvals:
        _approve(cla, company_id, kind, value)
    return company_id


def _approve(
    cla: CLAService, company_id: int, kind: str, value: str, *, undo: bool = False
) -> None:
    with cla.database.session() as session:
        companies = CompanyService(session, on_change=cla.runtime.approval_hook(session))
        company = session.get(Company, company_id)
        assert company is not None
        if undo:
            assert companies.unapprove(company, kind, value)
        else:
            assert companies.approve(company, kind, value)


def test_domain_covers_only_through_a_proven_address(cla: CLAService) -> None:
    """The demo's story: red, the manager approves the domain (still red: nothing proven),
    the employee proves the address: green. Unapproving turns it red again."""
    company_id = _setup_company(cla)
    cla.state.add_email("dave", f"dave@{DOMAIN}", verified=True)
    number, sha = pr_authored_as(cla, "dave", f"dave@{DOMAIN}")
    settles_on(cla, sha, "failure")
    [comment] = [c for c in cla.state.comments(REPO, number) if c["user"]["login"] == BOT_LOGIN]
    assert "Please sign the" in comment["body"]
    assert "ask your company's CLA manager" in comment["body"]
    assert f"]({cla.live.url}/me/emails)" in comment["body"]

    _approve(cla, company_id, "domain", f"@{DOMAIN.upper()}")
    settles_on(cla, sha, "failure")  # the domain alone proves nothing
    with cla.live.client() as client:
        sign_in(cla.live, client, "dave")
        link_emails(cla.live, client, "dave")
    settles_on(cla, sha, "success")

    _approve(cla, company_id, "domain", DOMAIN, undo=True)
    settles_on(cla, sha, "failure")
    with cla.database.session() as session:
        rows = session.scalars(select(AuditEntry).where(AuditEntry.action.like("company.%")))
        actions = [(r.action, (r.after or r.before or {}).get("value")) for r in rows]
    assert actions == [
        ("company.add", None),
        ("company.approve", DOMAIN),
        ("company.unapprove", DOMAIN),
    ]


def test_a_commit_on_the_domain_that_nobody_proved_stays_red(cla: CLAService) -> None:
    _setup_company(cla, ("domain", DOMAIN))
    _number, sha = pr_authored_as(cla, "erin", f"ceo@{DOMAIN}")
    settles_on(cla, sha, "failure")


def test_an_address_listed_but_unverified_on_github_proves_nothing(cla: CLAService) -> None:
    """GitHub attributes the commit to erin (her settings list the address) although she
    never verified it; proving at /me/emails stores nothing, so the domain covers nobody."""
    _setup_company(cla, ("domain", DOMAIN))
    cla.state.add_email("erin", f"erin@{DOMAIN}", verified=False)
    _number, sha = pr_authored_as(cla, "erin", f"erin@{DOMAIN}", linked=True)
    with cla.live.client() as client:
        sign_in(cla.live, client, "erin")
        link_emails(cla.live, client, "erin")
    with cla.database.session() as session:
        domains = {row.domain for row in session.scalars(select(ProvenEmail))}
    assert domains and DOMAIN not in domains  # her verified addresses only
    settles_on(cla, sha, "failure")


def test_an_address_proven_by_one_account_does_not_cover_another(cla: CLAService) -> None:
    """dave proved his work address; erin authors a commit with it and opens the pull
    request. The commit counts as dave's (covered), but erin, the opener, is not."""
    _setup_company(cla, ("domain", DOMAIN))
    cla.state.add_email("dave", f"dave@{DOMAIN}", verified=True)
    with cla.live.client() as client:
        sign_in(cla.live, client, "dave")
        link_emails(cla.live, client, "dave")
    _number, sha = pr_authored_as(cla, "erin", f"dave@{DOMAIN}")
    settles_on(cla, sha, "failure")
    _number, own = pr_authored_as(cla, "dave", f"dave@{DOMAIN}")
    settles_on(cla, own, "success")


def test_account_and_org_approvals(cla: CLAService) -> None:
    cla.state.add_org("bigcorp", members=["erin", BOT_LOGIN])
    company_id = _setup_company(cla)
    _number, erin_sha = pr_authored_as(cla, "erin", "erin@example.com", linked=True)
    _number, dave_sha = pr_authored_as(cla, "dave", "dave@example.com", linked=True)
    settles_on(cla, erin_sha, "failure")
    settles_on(cla, dave_sha, "failure")
    _approve(cla, company_id, "org", "BigCorp")
    settles_on(cla, erin_sha, "success")  # a private member: the bot is asked and answers
    assert cla.status_state(REPO, dave_sha) == "failure"
    _approve(cla, company_id, "account", str(cla.state.user("dave")["id"]))
    settles_on(cla, dave_sha, "success")
    _approve(cla, company_id, "org", "bigcorp", undo=True)
    settles_on(cla, erin_sha, "failure")


def test_the_command_line_records_a_paper_company_and_its_approvals(
    cla: CLAService, tmp_path: Path
) -> None:
    text, pdf = tmp_path / "corporate.md", tmp_path / "signed.pdf"
    text.write_text("Your company licenses it.\n")
    pdf.write_bytes(b"%PDF-1.4 signed")
    add = ["agreement", "add", CORPORATE, "--title", "Corporate CLA", "--file", str(text)]
    assert (
        "--kind corporate and --for" in undersign(cla, *add, "--kind", "corporate", ok=False).output
    )
    unknown = undersign(cla, *add, "--kind", "corporate", "--for", "nope", ok=False)
    assert "no agreement with slug 'nope'" in unknown.output
    undersign(cla, *add, "--kind", "corporate", "--for", AGREEMENT_SLUG)
    add[2] = "second-corporate"
    chained = undersign(cla, *add, "--kind", "corporate", "--for", CORPORATE, ok=False)
    assert "is not an individual agreement" in chained.output
    name = "BigCorp Ltd"
    missing = undersign(
        cla, "company", "add", CORPORATE, name, "--manager", "no-such-person", ok=False
    )
    assert "GitHub has no user account" in missing.output
    paper = ["company", "add", CORPORATE, name, "--manager", "maint"]
    assert "has no version 9" in undersign(cla, *paper, "--version", "9", ok=False).output
    recorded = undersign(cla, *paper, "--version", "1", "--document", str(pdf))
    assert "BigCorp Ltd: recorded version 1, managers maint" in recorded.output
    again = undersign(
        cla, "company", "add", CORPORATE, "bigcorp  ltd", "--manager", "maint", ok=False
    )
    assert "has signed" in again.output

    _number, sha = pr_authored_as(cla, "dave", "dave@example.com", linked=True)
    settles_on(cla, sha, "failure")
    both = undersign(
        cla, "company", "approve", CORPORATE, name, "--login", "dave", "--org", "x", ok=False
    )
    assert "exactly one of" in both.output
    assert (
        "no company"
        in undersign(
            cla, "company", "approve", CORPORATE, "Nobody", "--domain", DOMAIN, ok=False
        ).output
    )
    assert (
        "not an email domain"
        in undersign(
            cla, "company", "approve", CORPORATE, name, "--domain", "bad domain", ok=False
        ).output
    )
    undersign(cla, "company", "approve", CORPORATE, name, "--login", "dave")
    settles_on(cla, sha, "success")
    listed = json.loads(undersign(cla, "company", "list", CORPORATE, "--json").output)
    [company] = listed
    assert company["name"] == name and company["source"] == "paper"
    with cla.database.session() as session:  # the version it signed, as for a web signature
        signed = AgreementService(session).version(CORPORATE, 1).text_sha256
    assert company["text_sha256"] == signed
    assert company["document_sha256"] == hashlib.sha256(b"%PDF-1.4 signed").hexdigest()
    assert company["managers"] == [{"github_id": cla.state.user("maint")["id"], "login": "maint"}]
    dave = str(cla.state.user("dave")["id"])
    assert [(a["kind"], a["value"], a["label"]) for a in company["approvals"]] == [
        ("account", dave, "dave")
    ]
    undersign(cla, "company", "unapprove", CORPORATE, name, "--login", "dave")
    settles_on(cla, sha, "failure")
    assert "BigCorp Ltd" in undersign(cla, "company", "list", CORPORATE).output


def test_the_command_line_adds_and_removes_a_company_s_managers(
    cla_factory: CLAFactory,
) -> None:
    """``company manager-add``/``manager-remove``: a login looked up on GitHub and kept by
    id, as ``company add --manager`` keeps it; the last manager stays; each change audited."""
    cla = cla_factory(start=False)
    _setup_company(cla)  # BigCorp Ltd, managed by maint
    name = "BigCorp Ltd"
    last = undersign(cla, "company", "manager-remove", CORPORATE, name, "maint", ok=False)
    assert "maint is the last CLA manager of BigCorp Ltd" in last.output
    unknown = undersign(cla, "company", "manager-add", CORPORATE, name, "no-such-person", ok=False)
    assert "GitHub has no user account 'no-such-person'" in unknown.output
    cla.state.add_org("bigcorp-eng")  # an account GitHub knows, but no person
    org = undersign(cla, "company", "manager-add", CORPORATE, name, "bigcorp-eng", ok=False)
    assert "GitHub has no user account 'bigcorp-eng'" in org.output
    malformed = undersign(cla, "company", "manager-add", CORPORATE, name, "not/a/login", ok=False)
    assert "is not a GitHub login" in malformed.output
    nobody = undersign(cla, "company", "manager-add", CORPORATE, "Nobody", "dave", ok=False)
    assert "no company 'Nobody'" in nobody.output
    added = undersign(cla, "company", "manager-add", CORPORATE, "bigcorp ltd", "@DAVE")
    assert "BigCorp Ltd: dave is now a CLA manager" in added.output
    again = undersign(cla, "company", "manager-add", CORPORATE, name, "dave")
    assert "BigCorp Ltd: dave was a CLA manager already" in again.output
    dave, maint = (cla.state.user(login)["id"] for login in ("dave", "maint"))
    [company] = json.loads(undersign(cla, "company", "list", CORPORATE, "--json").output)
    assert company["managers"] == [
        {"github_id": dave, "login": "dave"},
        {"github_id": maint, "login": "maint"},
    ]
    assert "\tdave,maint\t" in undersign(cla, "company", "list", CORPORATE).output

    # dave renamed his account: the kept login no longer names him, GitHub's answer does.
    cla.state.rename_user("dave", "dave-lister")
    removed = undersign(cla, "company", "manager-remove", CORPORATE, name, "dave-lister")
    assert "BigCorp Ltd: dave is no longer a CLA manager" in removed.output
    not_one = undersign(cla, "company", "manager-remove", CORPORATE, name, "erin")
    assert "BigCorp Ltd: erin was not a CLA manager" in not_one.output
    [company] = json.loads(undersign(cla, "company", "list", CORPORATE, "--json").output)
    assert company["managers"] == [{"github_id": maint, "login": "maint"}]
    with cla.database.session() as session:
        changes = [
            (row.action, row.actor, (row.before or row.after or {}).get("github_id"))
            for row in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
            if row.action.startswith("company.manager_")
        ]
    assert changes == [
        ("company.manager_add", "cli", dave),
        ("company.manager_remove", "cli", dave),
    ]


def test_one_evaluation_reads_signatures_and_companies_in_one_session(
    cla_factory: CLAFactory,
) -> None:
    """Who is covered, by a signature, an accepted company or (for the comment) a pending
    one, costs one session of three statements; which agreement applies, and whether
    companies may cover anyone there, one session of three. Counted on the engine, so a new
    query or session per evaluation shows up here."""
    cla = cla_factory(start=False)
    cla.state.add_org("bigcorp", members=["erin", BOT_LOGIN])
    _setup_company(cla, ("domain", DOMAIN), ("org", "bigcorp"))
    users = {login: cla.state.user(login) for login in ("dave", "erin", "maint")}
    with cla.database.session() as session:
        pending = CompanyService(session).sign(
            CORPORATE,
            github_id=users["maint"]["id"],
            login="maint",
            version_sha256=AgreementService(session).current_version(CORPORATE).text_sha256,
            agreed=True,
            company_name="Small Startup",
            address="1 Road",
            signatory_name="Mae Maint",
            signatory_title="CEO",
            managers="",
            resolve_login=lambda login: None,
        )
        CompanyService(session).approve(pending, "account", str(users["dave"]["id"]))
    cla.sign("alice")
    people = [
        Contributor(
            kind="github",
            github_id=int(users[login]["id"]) if login != "alice" else cla.state.user(login)["id"],
            login=login,
            login_verified=True,
        )
        for login in ("alice", "dave", "erin")
    ]
    ctx = JobContext.from_settings(cla.settings, cla.database)
    log: list[str] = []  # "checkout" for each connection taken, else the statement

    def executed(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        log.append(" ".join(statement.split()))

    def checked_out(*_args: Any) -> None:
        log.append("checkout")

    engine = cla.database.engine
    event.listen(engine, "before_cursor_execute", executed)
    event.listen(engine.pool, "checkout", checked_out)
    try:
        coverage = service._coverage(ctx, REPO)
        assert coverage is not None and coverage.corporate
        # One session: no repo link, the org link (with whether a corporate agreement
        # stands beside its agreement), the allowlist.
        assert log[0] == "checkout" and len(log) == 4, log
        assert "FROM org_links" in log[2] and "FROM allowlist_entries" in log[3]
        log.clear()
        verdict, notes = service._verdict(ctx, coverage, "octo-org", "widgets", people, None)
    finally:
        event.remove(engine, "before_cursor_execute", executed)
        event.remove(engine.pool, "checkout", checked_out)
    assert [c.login for c in verdict.signed] == ["alice", "erin"]  # erin: the approved org
    assert [c.login for c in verdict.unsigned] == ["dave"]
    assert notes.awaiting_review == {users["dave"]["id"]}  # Small Startup awaits review
    # One session reads signatures, every company approval (accepted and pending at once),
    # proven addresses and who signed a replaced version (dave is unsigned); it is closed
    # before GitHub is asked whether erin is in bigcorp (the client's own rate bookkeeping
    # is all that follows).
    reads, rest = log[:5], log[5:]
    assert reads[0] == "checkout", log
    assert ["FROM signatures" in reads[1], "FROM company_approvals" in reads[2]] == [True, True]
    assert "FROM proven_emails" in reads[3], log
    assert "FROM signatures" in reads[4], log
    assert rest and all(item == "checkout" or "github_" in item for item in rest), rest


def test_a_deferred_comment_is_judged_with_what_companies_say(cla_factory: CLAFactory) -> None:
    """An evaluation that defers comment writes (a burst) compares the stored comment with
    the one companies' notes make: a comment naming both ways out is current, so nothing is
    left for a later evaluation."""
    cla = cla_factory(start=False)
    _setup_company(cla)
    number, _sha = pr_authored_as(cla, "dave", f"dave@{DOMAIN}")
    ctx = JobContext.from_settings(cla.settings, cla.database)
    assert service.evaluate_pull_request(ctx, REPO, number).state == "failure"
    [comment] = [c for c in cla.state.comments(REPO, number) if c["user"]["login"] == BOT_LOGIN]
    assert "ask your company's CLA manager" in comment["body"]
    again = service.evaluate_pull_request(ctx, REPO, number, defer_comment=True)
    assert (again.state, again.comment_deferred) == ("failure", False)


def test_a_material_version_asks_companies_to_sign_again(cla: CLAService, tmp_path: Path) -> None:
    """BigCorp (on paper) covers dave. An editorial version of the corporate agreement
    changes nothing; a material one turns his pull request red, its comment says his
    company must sign again, and it is green once BigCorp's manager signs on its page."""
    company_id = _setup_company(cla)
    _approve(cla, company_id, "account", str(cla.state.user("dave")["id"]))
    number, sha = pr_authored_as(cla, "dave", "dave@example.com", linked=True)
    settles_on(cla, sha, "success")
    text = tmp_path / "corporate.md"
    add = ["agreement", "add", CORPORATE, "--title", "Corporate CLA", "--file", str(text)]
    add += ["--kind", "corporate", "--for", AGREEMENT_SLUG]
    text.write_text("Your company licenses it (typo fixed).\n")
    assert "(editorial)" in undersign(cla, *add, "--editorial").output
    cla.wait_idle()
    assert cla.status_state(REPO, sha) == "success"

    text.write_text("Your company licenses it, patents included.\n")
    published = undersign(cla, *add).output
    assert "cover nobody until they sign this one" in published
    assert "re-evaluating 1 open pull request" in published
    settles_on(cla, sha, "failure")
    [comment] = [c for c in cla.state.comments(REPO, number) if c["user"]["login"] == BOT_LOGIN]
    assert "**Your company must sign again:**" in comment["body"]
    listed = json.loads(undersign(cla, "company", "list", CORPORATE, "--json").output)
    assert [c["must_sign_again"] for c in listed] == [True]

    with cla.live.client() as client:
        sign_in(cla.live, client, "dave")  # not a manager: sees no form, may not sign
        assert client.get(f"/companies/{company_id}").status_code == 404
    with cla.live.client() as client:
        sign_in(cla.live, client, "maint")
        page = client.get(f"/companies/{company_id}").text
        assert 'id="sign-again-form"' in page and "Sign version 3 for the company" in page
        token = re.search(r'name="csrf_token" value="([^"]+)"', page)
        digest = re.search(r'name="version_sha256" value="([0-9a-f]{64})"', page)
        assert token and digest
        form = {
            "csrf_token": token.group(1),
            "version_sha256": digest.group(1),
            "signatory_name": "Mae Maint",
            "signatory_title": "CTO",
        }
        refused = client.post(f"/companies/{company_id}/sign", data=form)
        assert refused.status_code == 400 and "tick this box" in refused.text
        signed = client.post(f"/companies/{company_id}/sign", data={**form, "agree": "yes"})
        assert signed.status_code == 303, signed.text
        assert 'id="sign-again-form"' not in client.get(f"/companies/{company_id}").text
    settles_on(cla, sha, "success")
    with cla.database.session() as session:
        company = session.get(Company, company_id)
        assert company is not None
        assert (company.source, company.signatory_login, company.status) == (
            "web",
            "maint",
            "accepted",
        )
