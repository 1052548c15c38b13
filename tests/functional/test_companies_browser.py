"""A company signs a corporate agreement and its manager approves a domain, and an instance
admin accepts a company in the console, from a clean browser (headless Chromium, every page
scanned by axe-core, no CSP violation, no script error)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page
from tests.conftest import Live, LiveFactory, page_errors

from undersign.agreements.companies import CompanyService
from undersign.agreements.service import AgreementService

pytestmark = pytest.mark.browser

BOT = "undersign-bot"


def _sign_for(page: Page, live: Live, company: str, managers: str) -> None:
    """Sign in from the corporate CLA's sign page, then send its form for ``company``
    (signed by its CTO) naming ``managers``."""
    page.goto(f"{live.url}/sign/corporate-cla")
    page.get_by_role("link", name="Sign in with GitHub to sign for your company").click()
    page.wait_for_url(f"{live.url}/sign/corporate-cla")
    page.get_by_label("Company's legal name").fill(company)
    page.get_by_label("Company's address").fill("1 Main Street\nSpringfield")
    page.get_by_label("Your title").fill("CTO")
    page.get_by_label("Other CLA managers (GitHub logins)").fill(managers)
    page.get_by_label("I am authorised to sign for this company").check()
    page.get_by_role("button", name="Sign for the company").click()


def test_a_company_signs_and_approves_its_domain(
    live_factory: LiveFactory, audited_context: Callable[..., BrowserContext]
) -> None:
    state = live_factory.emulator.state
    state.add_user(BOT, name="undersign", email="bot@undersign.invalid")
    state.add_user("boss", name="Boss Person", email="boss@example.com")
    state.add_user("deputy", name="Deputy", email="deputy@example.com")
    live = live_factory(UNDERSIGN_GITHUB_TOKEN=state.issue_token(BOT))
    with live.database.session() as session:
        AgreementService(session).add_or_update("individual-cla", "Individual CLA", "I agree.")
        CompanyService(session).add_corporate_agreement(
            "corporate-cla",
            "Corporate CLA",
            "# Corporate CLA\n\nThe company agrees.",
            "individual-cla",
        )
    state.auto_approve_as = "boss"
    context = audited_context()
    page = context.new_page()
    problems = page_errors(page)

    _sign_for(page, live, "BigCorp Ltd", "deputy, no-such-login")
    error = page.locator("#managers-error")
    assert "no-such-login" in error.inner_text()
    assert page.get_by_label("Company's legal name").input_value() == "BigCorp Ltd"

    page.get_by_label("Other CLA managers (GitHub logins)").fill("deputy")
    page.get_by_label("I am authorised to sign for this company").check()
    page.get_by_role("button", name="Sign for the company").click()
    page.wait_for_url(f"{live.url}/companies/*")
    assert page.locator("main h1").inner_text() == "BigCorp Ltd"
    assert "has signed Corporate CLA" in page.get_by_role("status").inner_text()
    assert "deputy" in page.locator("main").inner_text()
    assert "Awaiting review" in page.locator("#company-status").inner_text()

    page.get_by_label("Kind").select_option("domain")
    page.get_by_label("Login, organisation or domain").fill("BigCorp.example")
    page.get_by_role("button", name="Approve").click()
    page.wait_for_url(f"{live.url}/companies/*")
    assert "bigcorp.example" in page.locator("#approvals").inner_text()
    page.get_by_role("button", name="Stop covering bigcorp.example").click()
    page.wait_for_url(f"{live.url}/companies/*")
    assert page.locator("#no-approvals").is_visible()
    context.close()
    # The one refused form answered 400 (Chromium logs every 4xx document); nothing else.
    assert [p for p in problems if "status of 400" not in p] == []
    assert len(problems) == 1


def test_an_instance_admin_accepts_a_company_in_the_console(
    live_factory: LiveFactory, audited_context: Callable[..., BrowserContext]
) -> None:
    state = live_factory.emulator.state
    state.add_user(BOT, name="undersign", email="bot@undersign.invalid")
    state.add_user("root", name="Root", email="root@example.com")
    state.add_user("boss", name="Boss Person", email="boss@example.com")
    root, boss = int(state.user("root")["id"]), int(state.user("boss")["id"])
    live = live_factory(UNDERSIGN_GITHUB_TOKEN=state.issue_token(BOT), UNDERSIGN_ADMINS=str(root))
    with live.database.session() as session:
        AgreementService(session).add_or_update("individual-cla", "Individual CLA", "I agree.")
        companies = CompanyService(session)
        companies.add_corporate_agreement(
            "corporate-cla", "Corporate CLA", "The company agrees.", "individual-cla"
        )
        company = companies.sign(
            "corporate-cla",
            github_id=boss,
            login="boss",
            version_sha256=companies.agreements.current_version("corporate-cla").text_sha256,
            agreed=True,
            company_name="BigCorp Ltd",
            address="1 Main Street",
            signatory_name="Boss Person",
            signatory_title="CTO",
            managers="",
            resolve_login=lambda login: None,
        )
        companies.approve(company, "domain", "bigcorp.example")
        company_id = company.id
    state.auto_approve_as = "root"
    context = audited_context()
    page = context.new_page()
    problems = page_errors(page)

    page.goto(f"{live.url}/admin/")
    page.wait_for_url(f"{live.url}/admin/")
    page.get_by_role("link", name="Individual CLA").click()
    table = page.locator("#pending-companies")
    assert "BigCorp Ltd" in table.inner_text() and "bigcorp.example" in table.inner_text()
    page.get_by_role("button", name="Accept BigCorp Ltd").click()
    page.wait_for_url(f"{live.url}/admin/agreements/individual-cla")
    assert "BigCorp Ltd is accepted" in page.locator(".notice").first.inner_text()
    assert page.locator("#pending-companies").count() == 0
    page.goto(f"{live.url}/companies/{company_id}")
    assert page.locator("#company-status").count() == 0
    context.close()
    assert problems == []


def test_a_manager_signs_a_material_version_again(
    live_factory: LiveFactory, audited_context: Callable[..., BrowserContext]
) -> None:
    state = live_factory.emulator.state
    state.add_user(BOT, name="undersign", email="bot@undersign.invalid")
    boss = state.add_user("boss", name="Boss Person", email="boss@example.com")
    live = live_factory(UNDERSIGN_GITHUB_TOKEN=state.issue_token(BOT))
    with live.database.session() as session:
        AgreementService(session).add_or_update("individual-cla", "Individual CLA", "I agree.")
        companies = CompanyService(session)
        companies.add_corporate_agreement(
            "corporate-cla", "Corporate CLA", "The company agrees.", "individual-cla"
        )
        company = companies.add_paper("corporate-cla", "BigCorp Ltd", [(boss["id"], "boss")])
        company_id = company.id
        companies.add_corporate_agreement(
            "corporate-cla", "Corporate CLA", "# Corporate CLA\n\nPatents too.", "individual-cla"
        )
    state.auto_approve_as = "boss"
    context = audited_context()
    page = context.new_page()
    problems = page_errors(page)

    page.goto(f"{live.url}/companies")
    page.get_by_role("link", name="BigCorp Ltd").click()
    section = page.locator("#sign-again")
    assert "Version 2 changed it materially" in section.inner_text()
    page.get_by_text("Read version 2").click()
    assert "Patents too." in page.locator("#agreement-text").inner_text()
    page.get_by_label("Your full name").fill("Boss Person")
    page.get_by_label("Your title").fill("CEO")
    page.get_by_label("I am authorised to sign for this company").check()
    page.get_by_role("button", name="Sign version 2 for the company").click()
    page.wait_for_url(f"{live.url}/companies/{company_id}")
    assert "has signed the current version" in page.get_by_role("status").inner_text()
    assert page.locator("#sign-again").count() == 0
    context.close()
    assert problems == []


def _paper_company(live_factory: LiveFactory, *, bot_token: bool = True) -> tuple[Live, int]:
    """The app (with the bot's token, unless ``bot_token`` is False: then neither a token
    nor a GitHub App) and BigCorp Ltd, signed on paper under a corporate CLA, with boss as
    its CLA manager (signed in when the emulator asks); deputy has an account too. The
    company's id."""
    state = live_factory.emulator.state
    state.add_user(BOT, name="undersign", email="bot@undersign.invalid")
    boss = state.add_user("boss", name="Boss Person", email="boss@example.com")
    state.add_user("deputy", name="Deputy", email="deputy@example.com")
    live = live_factory(UNDERSIGN_GITHUB_TOKEN=state.issue_token(BOT) if bot_token else "")
    with live.database.session() as session:
        AgreementService(session).add_or_update("individual-cla", "Individual CLA", "I agree.")
        companies = CompanyService(session)
        companies.add_corporate_agreement(
            "corporate-cla", "Corporate CLA", "The company agrees.", "individual-cla"
        )
        company_id = companies.add_paper("corporate-cla", "BigCorp Ltd", [(boss["id"], "boss")]).id
    state.auto_approve_as = "boss"
    return live, company_id


def test_a_manager_adds_and_removes_a_manager(
    live_factory: LiveFactory, audited_context: Callable[..., BrowserContext]
) -> None:
    live, company_id = _paper_company(live_factory)
    context = audited_context()
    page = context.new_page()
    problems = page_errors(page)

    page.goto(f"{live.url}/companies")
    page.get_by_role("link", name="BigCorp Ltd").click()
    managers = page.locator("#managers")
    assert managers.inner_text().strip() == "boss"
    assert managers.get_by_role("button").count() == 0  # the last manager stays
    page.get_by_label("GitHub login of a new CLA manager").fill("no-such-login")
    page.get_by_role("button", name="Add a manager").click()
    assert "GitHub has no user account 'no-such-login'" in page.get_by_role("alert").inner_text()

    page.get_by_label("GitHub login of a new CLA manager").fill("deputy")
    page.get_by_role("button", name="Add a manager").click()
    page.wait_for_url(f"{live.url}/companies/{company_id}")
    assert "deputy is now a CLA manager" in page.get_by_role("status").inner_text()
    assert "deputy" in managers.inner_text()
    page.get_by_role("button", name="Remove CLA manager deputy").click()
    page.wait_for_url(f"{live.url}/companies/{company_id}")
    assert "deputy is no longer a CLA manager" in page.get_by_role("status").inner_text()
    assert managers.inner_text().strip() == "boss"
    context.close()
    # The one refused form answered 400 (Chromium logs every 4xx document); nothing else.
    assert [p for p in problems if "status of 400" not in p] == []
    assert len(problems) == 1


def test_without_github_a_manager_reads_that_company_signing_is_unavailable(
    live_factory: LiveFactory, audited_context: Callable[..., BrowserContext]
) -> None:
    """No bot token and no App: a person signing for a company, and a CLA manager adding
    another, read that it is unavailable right now and what they can do (the form keeps what
    they typed), never the settings an operator must change."""
    live, company_id = _paper_company(live_factory, bot_token=False)
    context = audited_context()
    page = context.new_page()
    problems = page_errors(page)

    _sign_for(page, live, "Other Corp", "deputy")
    said = page.locator("#managers-error").inner_text()
    assert said == (
        "Company signing is unavailable right now; try again later or contact the maintainers."
    )
    assert page.get_by_label("Company's legal name").input_value() == "Other Corp"
    assert "UNDERSIGN_" not in page.locator("main").inner_text()

    page.goto(f"{live.url}/companies/{company_id}")
    page.get_by_label("GitHub login of a new CLA manager").fill("deputy")
    page.get_by_role("button", name="Add a manager").click()
    alert = page.get_by_role("alert")
    assert alert.inner_text() == (
        "Adding GitHub accounts is unavailable right now; try again later or contact the "
        "maintainers."
    )
    assert "UNDERSIGN_" not in page.locator("main").inner_text()
    context.close()
    # The two refused forms answered 409 (Chromium logs every 4xx document); nothing else.
    assert [p for p in problems if "status of 409" not in p] == []
    assert len(problems) == 2


def test_a_cla_manager_finds_their_company_from_the_header(
    live_factory: LiveFactory, audited_context: Callable[..., BrowserContext]
) -> None:
    """A company's page is the one place its manager keeps whom it covers (and learns of a
    version to sign again): the header links there for a manager, and for nobody else."""
    live, _ = _paper_company(live_factory)
    header_link = "header >> role=link[name='My companies']"
    problems: list[list[str]] = []
    for login in ("deputy", "boss"):  # deputy has an account and manages nothing
        live.emulator.state.auto_approve_as = login
        context = audited_context()
        page = context.new_page()
        problems.append(page_errors(page))
        page.goto(f"{live.url}/login")
        page.wait_for_url(f"{live.url}/")
        assert page.locator("header .who").inner_text() == login
        if login == "deputy":
            assert page.locator(header_link).count() == 0
            context.close()
    page.locator(header_link).click()
    page.wait_for_url(f"{live.url}/companies")
    page.get_by_role("link", name="BigCorp Ltd").click()
    page.wait_for_url(f"{live.url}/companies/*")
    assert page.locator("main h1").inner_text() == "BigCorp Ltd"
    # The address the manager sends the people an email domain should cover.
    proving = page.locator("#proving-url")
    assert proving.inner_text() == proving.get_attribute("href") == f"{live.url}/me/emails"
    context.close()
    assert problems == [[], []]
