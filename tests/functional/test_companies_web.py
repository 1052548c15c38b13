"""A company signs a corporate agreement at /sign/<slug> and its managers keep whom it covers
at /companies/<id>, over HTTP against the GitHub emulator: per-field errors, CSRF, escaping,
and a manager of one company getting exactly the 404 of a missing company for another."""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from flask import Flask, before_render_template
from jinja2 import Template
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from tests.conftest import Live, LiveFactory, sign_in
from tests.support.companies import CORPORATE, company_form, domain_approvals
from tests.support.pages import csrf_token

from undersign.agreements.companies import MAX_APPROVALS, MAX_MANAGERS, CompanyService
from undersign.agreements.models import AuditEntry, Company, CompanyApproval, CompanyManager
from undersign.agreements.service import AgreementService
from undersign.cli import CLIContext, main

BOT = "undersign-bot"


@dataclass
class World:
    live: Live
    ids: dict[str, int]
    other_company: int


def _same_page(one: str, other: str) -> bool:
    """Two answers alike but for their CSRF tokens (signed with the second they were made in:
    two requests a second apart differ there)."""
    token = re.compile(r'name="csrf_token" value="[^"]+"')
    return token.sub("csrf", one) == token.sub("csrf", other)


def _make_world(live_factory: LiveFactory, *, bot_token: bool = True) -> World:
    """The app (with the bot's token, unless ``bot_token`` is False: then neither a token nor
    a GitHub App), a corporate agreement and Rival Inc, signed on paper."""
    state = live_factory.emulator.state
    state.add_user(BOT, name="undersign", email="bot@undersign.invalid")
    for login in ("boss", "deputy", "rival", "root"):
        state.add_user(login, name=login.title(), email=f"{login}@example.com")
    ids = {login: int(state.user(login)["id"]) for login in ("boss", "deputy", "rival", "root")}
    live = live_factory(
        UNDERSIGN_GITHUB_TOKEN=state.issue_token(BOT) if bot_token else "",
        UNDERSIGN_ADMINS=str(ids["root"]),
    )
    with live.database.session() as session:
        AgreementService(session).add_or_update("individual-cla", "Individual CLA", "I agree.")
        companies = CompanyService(session)
        companies.add_corporate_agreement(
            CORPORATE, "Corporate CLA", "The company agrees.", "individual-cla"
        )
        other = companies.add_paper(CORPORATE, "Rival Inc", [(ids["rival"], "rival")]).id
    return World(live, ids, other)


@pytest.fixture
def world(live_factory: LiveFactory) -> World:
    return _make_world(live_factory)


def _companies(live: Live) -> list[Company]:
    with live.database.session() as session:
        rows = list(session.scalars(select(Company).order_by(Company.id)))
        for row in rows:
            _ = row.managers, row.approvals
        session.expunge_all()
        return rows


def _sign(world: World, client: httpx.Client, **changes: str) -> httpx.Response:
    page = client.get(f"/sign/{CORPORATE}")
    assert page.status_code == 200
    assert 'id="company-sign-form"' in page.text
    return client.post(f"/sign/{CORPORATE}", data=company_form(page.text, **changes))


def test_a_company_signs_and_its_managers_approve(world: World) -> None:
    live = world.live
    with live.client() as client:
        sign_in(live, client, "boss")
        bad = _sign(world, client, company_name="", managers="deputy nobody-here", agree="")
        assert bad.status_code == 400
        assert 'id="company_name-error"' in bad.text
        assert 'id="agree-error"' in bad.text
        # GitHub is asked about the managers only once the rest of the form is right.
        assert 'id="managers-error"' not in bad.text
        unknown = _sign(world, client, managers="deputy nobody-here")
        assert unknown.status_code == 400
        assert 'id="managers-error"' in unknown.text and "nobody-here" in unknown.text
        assert len(_companies(live)) == 1  # nothing half written
        assert client.post(f"/sign/{CORPORATE}", data={"company_name": "X"}).status_code == 400

        signed = _sign(world, client)
        assert signed.status_code == 303, signed.text
        page = client.get(signed.headers["location"])
    assert page.status_code == 200
    assert "BigCorp &lt;b&gt;Ltd&lt;/b&gt;" in page.text and "<b>Ltd</b>" not in page.text
    company = _companies(live)[-1]
    assert company.signatory_github_id == world.ids["boss"]
    assert company.signatory_title == "CTO" and company.address == "1 Main Street\nSpringfield"
    assert {m.github_id for m in company.managers} == {world.ids["boss"], world.ids["deputy"]}

    with live.client() as client:
        sign_in(live, client, "deputy")
        page = client.get(f"/companies/{company.id}")
        assert page.status_code == 200
        token = csrf_token(page.text)
        url = f"/companies/{company.id}"
        bad = client.post(
            f"{url}/approve", data={"csrf_token": token, "kind": "domain", "value": "not a domain"}
        )
        assert bad.status_code == 400 and "is not an email domain" in bad.text
        nobody = client.post(
            f"{url}/approve", data={"csrf_token": token, "kind": "login", "value": "ghost-user"}
        )
        assert nobody.status_code == 400
        for kind, value in (("domain", "@BigCorp.example"), ("login", "boss"), ("org", "bigcorp")):
            done = client.post(
                f"{url}/approve", data={"csrf_token": token, "kind": kind, "value": value}
            )
            assert done.status_code == 303, done.text
        removed = client.post(
            f"{url}/unapprove", data={"csrf_token": token, "kind": "org", "value": "bigcorp"}
        )
        assert removed.status_code == 303
        again = client.post(
            f"{url}/unapprove", data={"csrf_token": token, "kind": "org", "value": "bigcorp"}
        )
        assert again.status_code == 404
    approvals = {(a.kind, a.value, a.label) for a in _companies(live)[-1].approvals}
    assert approvals == {
        ("domain", "bigcorp.example", ""),
        ("account", str(world.ids["boss"]), "boss"),
    }
    with live.database.session() as session:
        actions = [
            (r.action, r.actor)
            for r in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
            if r.action.startswith("company.")
        ]
    assert actions[0] == ("company.add", "cli")
    assert actions[1] == ("company.sign", str(world.ids["boss"]))
    assert [a for a, _ in actions[2:]] == ["company.approve"] * 3 + ["company.unapprove"]
    assert {actor for _, actor in actions[2:]} == {str(world.ids["deputy"])}


def test_a_manager_of_one_company_cannot_see_or_change_another(world: World) -> None:
    live = world.live
    with live.client() as client:
        sign_in(live, client, "boss")
        assert _sign(world, client).status_code == 303
        own = _companies(live)[-1].id
        token = csrf_token(client.get(f"/companies/{own}").text)
        missing = client.get("/companies/999999")
        foreign = client.get(f"/companies/{world.other_company}")
        assert missing.status_code == foreign.status_code == 404
        assert _same_page(missing.text, foreign.text)  # no existence leak
        for path in ("approve", "unapprove"):
            response = client.post(
                f"/companies/{world.other_company}/{path}",
                data={"csrf_token": token, "kind": "domain", "value": "rival.example"},
            )
            assert response.status_code == 404
        mine = client.get("/companies").text
        assert "BigCorp" in mine and "Rival Inc" not in mine
    with live.database.session() as session:
        assert session.scalars(select(CompanyApproval)).all() == []
    with live.client() as client:  # an instance admin may look after any company
        sign_in(live, client, "root")
        assert client.get(f"/companies/{world.other_company}").status_code == 200
        listed = client.get("/companies").text
        assert "BigCorp" in listed and "Rival Inc" in listed
    with live.client() as anonymous:
        assert anonymous.get(f"/companies/{own}").status_code in (302, 401)


def test_the_lists_say_which_companies_must_sign_again(world: World) -> None:
    """After a material version of the corporate agreement, ``company list`` and /companies
    mark each company that signed before with the version it must sign; not one recorded
    again on paper since, nor a rejected one. One query finds them for the whole list."""
    live, ids = world.live, world.ids
    with live.database.session() as session:
        companies = CompanyService(session)
        companies.add_paper(CORPORATE, "BigCorp Ltd", [(ids["boss"], "boss")])
        gone = companies.add_paper(CORPORATE, "Gone Co", [(ids["boss"], "boss")])
        companies.reject(gone)
        version = AgreementService(session).current_version(CORPORATE)
        web = companies.sign(
            CORPORATE,
            github_id=ids["deputy"],
            login="deputy",
            version_sha256=version.text_sha256,
            agreed=True,
            company_name="Web Co",
            address="1 Main Street",
            signatory_name="Deputy",
            signatory_title="CEO",
            managers="boss",
            resolve_login=lambda login: (ids[login], login),
        ).id
        companies.add_corporate_agreement(
            CORPORATE, "Corporate CLA", "The company agrees, patents too.", "individual-cla"
        )
        companies.add_paper(CORPORATE, "BigCorp Ltd", [(ids["boss"], "boss")])  # counts again

    listed = CliRunner().invoke(
        main,
        ["company", "list", CORPORATE],
        obj=CLIContext(_settings=live.settings, _database=live.database),
    )
    assert listed.exit_code == 0, listed.output
    lines = {line.split("\t")[1]: line.split("\t")[5:] for line in listed.output.splitlines()}
    assert lines == {
        "BigCorp Ltd": ["accepted"],
        "Gone Co": ["rejected"],
        "Rival Inc": ["accepted", "must sign version 2 again"],
        "Web Co": ["pending", "must sign version 2 again"],
    }

    statements: list[str] = []

    def executed(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    engine = live.database.engine
    with live.client() as client:  # an instance admin sees every company
        sign_in(live, client, "root")
        event.listen(engine, "before_cursor_execute", executed)
        try:
            page = client.get("/companies")
        finally:
            event.remove(engine, "before_cursor_execute", executed)
    assert page.status_code == 200
    items = {
        re.sub(r"<[^>]+>", "", item).split(" (")[0]: re.sub(r"<[^>]+>", "", item)
        for item in re.findall(r"<li>(.*?)</li>", page.text)
        if "/companies/" in item
    }
    assert items["Rival Inc"].endswith("(Corporate CLA) — must sign version 2 again")
    assert items["Web Co"].endswith("— awaiting review — must sign version 2 again")
    assert items["BigCorp Ltd"].endswith("(Corporate CLA)")
    assert items["Gone Co"].endswith("— rejected")
    assert len([s for s in statements if "agreement_versions" in s]) == 1, statements
    with live.client() as client:  # a manager sees the mark on the companies they manage
        sign_in(live, client, "boss")
        mine = client.get("/companies").text
    assert f'href="/companies/{web}">Web Co</a>' in mine
    assert mine.count("must sign version 2 again") == 1


def _audited(live: Live, prefix: str) -> list[tuple[str, str]]:
    with live.database.session() as session:
        return [
            (row.action, row.actor)
            for row in session.scalars(select(AuditEntry).order_by(AuditEntry.id))
            if row.action.startswith(prefix)
        ]


def test_managers_add_and_remove_managers_on_the_company_page(world: World) -> None:
    """A manager adds another by login and removes one, who loses access at once; the last
    manager stays; bad input is a 4xx naming what is wrong; anyone who does not manage the
    company gets the 404 of a missing one; every form is CSRF-checked."""
    live, ids = world.live, world.ids
    with live.database.session() as session:
        paper = CompanyService(session).add_paper(CORPORATE, "BigCorp Ltd", [(ids["boss"], "boss")])
        company_id = paper.id
    url = f"/companies/{company_id}"
    add, remove = f"{url}/managers/add", f"{url}/managers/remove"
    with live.client() as boss, live.client() as deputy, live.client() as rival:
        sign_in(live, boss, "boss")
        page = boss.get(url)
        assert 'id="add-manager-form"' in page.text
        assert "Remove CLA manager boss" not in page.text  # the last one has no button
        token = csrf_token(page.text)
        assert boss.post(add, data={"login": "deputy"}).status_code == 400  # no CSRF token
        last = boss.post(remove, data={"csrf_token": token, "github_id": str(ids["boss"])})
        assert last.status_code == 400
        assert "boss is the last CLA manager of BigCorp Ltd" in last.text
        for login, problem in (
            ("ghost-user", "GitHub has no user account &#39;ghost-user&#39;"),
            ("not/a/login", "is not a GitHub login"),
            ("", "Name the GitHub login of the new manager."),
        ):
            refused = boss.post(add, data={"csrf_token": token, "login": login})
            assert refused.status_code == 400 and problem in refused.text, refused.text
        for raw in ("", "x", "-1", str(2**63)):
            refused = boss.post(remove, data={"csrf_token": token, "github_id": raw})
            assert refused.status_code == 400 and "Choose a CLA manager" in refused.text
        stranger = boss.post(remove, data={"csrf_token": token, "github_id": str(ids["rival"])})
        assert stranger.status_code == 404 and "That is not a CLA manager." in stranger.text

        sign_in(live, deputy, "deputy")
        assert deputy.get(url).status_code == 404  # not a manager yet
        added = boss.post(add, data={"csrf_token": token, "login": "@Deputy"})
        assert added.status_code == 303 and added.headers["location"].endswith(url)
        page = boss.get(url)
        assert "deputy is now a CLA manager of BigCorp Ltd." in page.text
        assert 'aria-label="Remove CLA manager boss"' in page.text
        assert 'aria-label="Remove CLA manager deputy"' in page.text
        again = boss.post(add, data={"csrf_token": token, "login": "deputy"})
        assert again.status_code == 303
        assert "deputy is a CLA manager already." in boss.get(url).text

        # rival manages another company: the same 404 as for a company that does not exist.
        sign_in(live, rival, "rival")
        rival_token = csrf_token(rival.get(f"/companies/{world.other_company}").text)
        for path, data in (
            ("managers/add", {"login": "rival"}),
            ("managers/remove", {"github_id": str(ids["boss"])}),
        ):
            form = {"csrf_token": rival_token, **data}
            foreign = rival.post(f"{url}/{path}", data=form)
            missing = rival.post(f"/companies/999999/{path}", data=form)
            assert foreign.status_code == missing.status_code == 404
            assert _same_page(foreign.text, missing.text)

        # deputy removes boss, whose next request finds nothing there.
        deputy_token = csrf_token(deputy.get(url).text)
        removed = deputy.post(
            remove, data={"csrf_token": deputy_token, "github_id": str(ids["boss"])}
        )
        assert removed.status_code == 303 and removed.headers["location"].endswith(url)
        assert "boss is no longer a CLA manager of BigCorp Ltd." in deputy.get(url).text
        assert boss.get(url).status_code == 404
        assert boss.post(add, data={"csrf_token": token, "login": "boss"}).status_code == 404
        assert "BigCorp Ltd" not in boss.get("/companies").text
    with live.client() as root:  # an instance admin manages any company's managers
        sign_in(live, root, "root")
        root_token = csrf_token(root.get(url).text)
        assert root.post(add, data={"csrf_token": root_token, "login": "boss"}).status_code == 303
    with live.client() as deputy:  # removing oneself leads to one's list of companies
        sign_in(live, deputy, "deputy")
        gone = deputy.post(
            remove,
            data={"csrf_token": csrf_token(deputy.get(url).text), "github_id": str(ids["deputy"])},
        )
        assert gone.status_code == 303 and gone.headers["location"].endswith("/companies")
        listed = deputy.get("/companies").text
        assert "deputy is no longer a CLA manager of BigCorp Ltd." in listed
        assert deputy.get(url).status_code == 404
    with live.database.session() as session:
        company = session.get(Company, company_id)
        assert company is not None
        assert [(m.github_id, m.login) for m in company.managers] == [(ids["boss"], "boss")]
    boss_id, deputy_id, root_id = (str(ids[login]) for login in ("boss", "deputy", "root"))
    assert _audited(live, "company.manager_") == [
        ("company.manager_add", boss_id),
        ("company.manager_remove", deputy_id),
        ("company.manager_add", root_id),
        ("company.manager_remove", deputy_id),
    ]


def _company_lock_free(live: Live, company_id: int) -> bool:
    """Whether another connection takes the lock a company change takes, without waiting:
    SQLite's write lock (``BEGIN IMMEDIATE``), PostgreSQL's lock on the company's row."""
    url = live.database.engine.url
    if url.get_backend_name() == "sqlite":
        other = sqlite3.connect(str(url.database), timeout=0, isolation_level=None)
        try:
            other.execute("BEGIN IMMEDIATE")
            other.execute("ROLLBACK")
        except sqlite3.OperationalError:  # database is locked
            return False
        finally:
            other.close()
        return True
    with live.database.engine.connect() as connection:
        try:
            connection.execute(
                select(Company.id).where(Company.id == company_id).with_for_update(nowait=True)
            )
        except OperationalError:  # could not obtain lock
            return False
    return True


def test_a_refused_change_lets_go_of_the_company_before_its_page_renders(world: World) -> None:
    """Removing the last manager, approving past the cap and adding a manager past the cap
    are refused after the company is locked (so that two managers cannot both see room):
    the page saying so is rendered once that is rolled back, not holding the lock (on SQLite,
    the whole database's) until the answer is sent, and nothing is half written."""
    live, ids = world.live, world.ids
    with live.database.session() as session:
        paper = CompanyService(session).add_paper(CORPORATE, "BigCorp Ltd", [(ids["boss"], "boss")])
        company_id = paper.id
    url = f"/companies/{company_id}"
    free_while_rendering: list[bool] = []

    def probe(_app: Flask, template: Template, **_context: Any) -> None:
        if template.name == "companies/company.html":
            free_while_rendering.append(_company_lock_free(live, company_id))

    before_render_template.connect(probe, live.app)
    try:
        with live.client() as boss:
            sign_in(live, boss, "boss")
            token = csrf_token(boss.get(url).text)
            assert free_while_rendering == [True]
            last = boss.post(
                f"{url}/managers/remove", data={"csrf_token": token, "github_id": str(ids["boss"])}
            )
            assert last.status_code == 400 and "is the last CLA manager" in last.text
            assert free_while_rendering[-1:] == [True], "the last manager's removal"

            with live.database.session() as session:
                session.add_all(domain_approvals(company_id, MAX_APPROVALS))
                session.add_all(
                    CompanyManager(company_id=company_id, github_id=10_000 + n, login=f"m{n}")
                    for n in range(MAX_MANAGERS)
                )
            full = boss.post(
                f"{url}/approve",
                data={"csrf_token": token, "kind": "domain", "value": "more.example"},
            )
            assert full.status_code == 400 and "the most a company may have" in full.text
            assert free_while_rendering[-1:] == [True], "an approval past the cap"
            crowded = boss.post(
                f"{url}/managers/add", data={"csrf_token": token, "login": "deputy"}
            )
            assert crowded.status_code == 400 and "remove one first" in crowded.text
            assert free_while_rendering[-1:] == [True], "a manager past the cap"
    finally:
        before_render_template.disconnect(probe, live.app)
    assert len(free_while_rendering) == 4
    company = _companies(live)[-1]
    assert len(company.approvals) == MAX_APPROVALS
    assert len(company.managers) == MAX_MANAGERS + 1


def test_a_company_signing_twice_at_the_same_moment_is_told_so_not_a_500(world: World) -> None:
    """Two people sign for the same company at once: both pass the check that it has not
    signed, and the second one's insert (flushed inside the sign) finds the first one's
    row. That answer is the sign page saying the company has signed already (a 409), not a
    500: rendered once the session is rolled back (it refuses every query until then), with
    SQLite's write lock free while it renders, and nothing of the second sign stored."""
    live, ids = world.live, world.ids
    engine = live.database.engine
    first: list[int] = []

    def sign_first(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.lstrip().upper().startswith("INSERT INTO COMPANIES") and not first:
            first.append(0)  # the insert below runs this hook too
            with live.database.session() as session:
                other = CompanyService(session).add_paper(
                    CORPORATE, "BigCorp Ltd", [(ids["deputy"], "deputy")]
                )
                first[0] = other.id

    free_while_rendering: list[bool] = []

    def probe(_app: Flask, template: Template, **_context: Any) -> None:
        if template.name == "companies/sign.html" and first:
            free_while_rendering.append(_company_lock_free(live, first[0]))

    with live.client() as client:
        sign_in(live, client, "boss")
        event.listen(engine, "before_cursor_execute", sign_first)
        before_render_template.connect(probe, live.app)
        try:
            answer = _sign(world, client, company_name="BigCorp Ltd")
        finally:
            before_render_template.disconnect(probe, live.app)
            event.remove(engine, "before_cursor_execute", sign_first)
    assert answer.status_code == 409, answer.text[:500]
    assert "This company has signed already; ask its CLA managers." in answer.text
    assert free_while_rendering == [True]
    companies = _companies(live)
    assert [(c.name, c.source) for c in companies] == [
        ("Rival Inc", "paper"),
        ("BigCorp Ltd", "paper"),
    ]
    assert [m.login for m in companies[-1].managers] == ["deputy"]
    assert _audited(live, "company.sign") == []


def test_without_a_token_or_an_app_lookups_are_a_409_naming_the_settings(
    live_factory: LiveFactory, caplog: pytest.LogCaptureFixture
) -> None:
    """With neither a bot token nor a GitHub App, signing for a company, approving an account
    and adding a manager cannot look the login up: a 409, not a 503 (no retry mends it until
    an operator acts), and nothing is written. An instance admin reads what an operator must
    set; a CLA manager, who cannot set it, reads that it is unavailable and what they can do,
    and the reason goes to the log instead."""
    world = _make_world(live_factory, bot_token=False)
    live = world.live
    with live.database.session() as session:
        paper = CompanyService(session).add_paper(
            CORPORATE, "BigCorp Ltd", [(world.ids["boss"], "boss")]
        )
        company_id = paper.id
    url = f"/companies/{company_id}"
    operator = (
        "an operator must set UNDERSIGN_GITHUB_TOKEN, or the GitHub App&#39;s "
        "UNDERSIGN_GITHUB_APP_ID and UNDERSIGN_GITHUB_APP_PRIVATE_KEY."
    )
    plain = "is unavailable right now; try again later or contact the maintainers."
    caplog.set_level(logging.WARNING, logger="undersign.web.companies")
    for login in ("boss", "root"):
        caplog.clear()
        with live.client() as client:
            sign_in(live, client, login)
            token = csrf_token(client.get(url).text)
            answers = {
                "sign": _sign(world, client, company_name="Other Corp"),
                "approve": client.post(
                    f"{url}/approve",
                    data={"csrf_token": token, "kind": "login", "value": "deputy"},
                ),
                "add manager": client.post(
                    f"{url}/managers/add", data={"csrf_token": token, "login": "deputy"}
                ),
            }
        for what, answer in answers.items():
            assert answer.status_code == 409, (login, what, answer.text[:500])
            if login == "root":  # an instance admin: what an operator must set
                assert "UNDERSIGN_GITHUB_TOKEN is not set" in answer.text, what
                assert operator in answer.text, what
                assert "try again" not in answer.text, what
            else:
                assert "UNDERSIGN_GITHUB_TOKEN" not in answer.text, what
                assert "operator" not in answer.text, what
                thing = "Company signing" if what == "sign" else "Adding GitHub accounts"
                assert f"{thing} {plain}" in answer.text, what
        logged = [r.getMessage() for r in caplog.records]
        assert len(logged) == 3, logged
        for line in logged:
            assert "UNDERSIGN_GITHUB_TOKEN is not set" in line and "\n" not in line, line
    companies = _companies(live)
    assert [c.name for c in companies] == ["Rival Inc", "BigCorp Ltd"]
    assert companies[-1].approvals == []
    assert [m.login for m in companies[-1].managers] == ["boss"]
