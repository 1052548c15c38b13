"""GitHub App mode end to end: the live app, the emulator acting as GitHub (JWT checks,
installation tokens, check runs), a real Huey consumer. What GitHub sees is read back from
the emulator; nothing is mocked."""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select, text
from tests.conftest import (
    AGREEMENT_SLUG,
    CLAService,
    LiveFactory,
    sign_in,
    sign_quietly,
)
from tests.support.cli import agreement_commands, run_reconcile
from tests.support.companies import company_form
from tests.support.pages import csrf_token

from undersign.agreements.companies import CompanyService
from undersign.agreements.models import Company, Signature
from undersign.agreements.service import AgreementService
from undersign.db import Base, Database
from undersign.emulator import EmulatorServer
from undersign.github.app import installed_repositories
from undersign.github.models import AppInstallation
from undersign.jobs.queue import start_embedded_consumer
from undersign.runtime import build_runtime

APP_ID = 313131
APP_SLUG = "undersign-cla"
APP_CLIENT_ID = "Iv23liAppModeTest001"
APP_SECRET = "app-mode-client-secret-0123456789abcdef"
REPO = "octo-org/widgets"


@pytest.fixture(scope="module")
def app_key() -> tuple[str, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


@pytest.fixture
def instance_admins() -> tuple[str, ...]:
    """Logins ``app_cla`` makes instance admins (UNDERSIGN_ADMINS): none, unless a test
    parametrizes this."""
    return ()


@pytest.fixture
def app_cla(
    live_factory: LiveFactory,
    emulator: EmulatorServer,
    database: Database,
    app_key: tuple[str, bytes],
    instance_admins: tuple[str, ...],
) -> Iterator[CLAService]:
    """undersign in app mode; octo-org (widgets, gadgets) covered by an org link; the app is
    registered on the emulator but not installed yet."""
    state = emulator.state
    for login in ("dave", "maint", *instance_admins):
        state.add_user(login, name=login.title(), email=f"{login}@example.com")
    admins = ",".join(str(state.user(login)["id"]) for login in instance_admins)
    state.add_org("octo-org", members=["maint"])
    for repo in (REPO, "octo-org/gadgets"):
        state.add_repo(repo)
    with database.session() as session:
        agreements = AgreementService(session)
        agreements.add_or_update(AGREEMENT_SLUG, "Individual CLA", "You agree to license it.")
        agreements.link_org("octo-org", AGREEMENT_SLUG)
    # The app, not an OAuth app, signs people in: registered below with the app's callback.
    live = live_factory(
        oauth_secret=None,
        UNDERSIGN_GITHUB_CLIENT_ID=APP_CLIENT_ID,
        UNDERSIGN_GITHUB_CLIENT_SECRET=APP_SECRET,
        UNDERSIGN_GITHUB_APP_ID=str(APP_ID),
        UNDERSIGN_GITHUB_APP_PRIVATE_KEY=app_key[0],
        UNDERSIGN_ADMINS=admins,
    )
    state.apps.register_app(
        APP_SLUG,
        app_key[1],
        owner_login="octo-org",
        app_id=APP_ID,
        client_id=APP_CLIENT_ID,
        client_secret=APP_SECRET,
        callback_urls=[live.settings.callback_url],
    )
    workers = live.settings.replace(job_retry_base_ms=50, job_max_attempts=3, job_lease=30)
    runtime = build_runtime(workers, database)
    consumer = start_embedded_consumer(runtime.queue, workers=2)
    yield CLAService(live, workers, consumer, runtime)
    consumer.stop()
    runtime.queue.huey.flush()  # no keys left in Redis
    runtime.close()


def install(
    cla: CLAService, repositories: list[str] | None = None, account: str = "octo-org"
) -> int:
    """The app installed on ``account`` (and undersign told so by webhook)."""
    state = cla.state
    installation = int(state.apps.install(APP_ID, account, repositories=repositories)["id"])
    status, _ = cla.deliver(
        "installation",
        state.apps.installation_event(installation, "created"),
        target_type="integration",
        target_id=APP_ID,
    )
    assert status == 202
    cla.wait_idle()
    return installation


def check_runs(cla: CLAService, sha: str) -> list[dict[str, Any]]:
    state = cla.state
    return list(state.apps.list_check_runs(REPO, sha))


def quietly_sign(cla: CLAService, login: str) -> None:
    """A signature no trigger hears of (so only a re-check can notice it)."""
    user = cla.live.emulator.state.user(login)
    sign_quietly(cla.database, AGREEMENT_SLUG, login, user["id"])


def test_installing_the_app_enforces_open_pull_requests_with_a_check_run(
    app_cla: CLAService,
) -> None:
    state = app_cla.state
    pr = state.add_pull_request(REPO, user_login="alice", n_commits=2)
    sha = pr["head"]["sha"]
    assert app_cla.status(REPO, sha) is None  # nobody told undersign yet

    installation = install(app_cla)

    status = app_cla.status(REPO, sha)
    assert status is not None and status["state"] == "failure"
    assert status["creator"]["login"] == f"{APP_SLUG}[bot]"  # acting as the app
    [run] = check_runs(app_cla, sha)
    sign_page = f"{app_cla.live.url}/sign/{AGREEMENT_SLUG}?repo={REPO}&pr={pr['number']}"
    assert run["name"] == "license/cla"
    assert run["conclusion"] == "action_required"
    assert run["details_url"] == sign_page
    assert "@alice" in run["output"]["summary"]
    assert run["output"]["title"] == status["description"]
    assert state.apps.check_runs[run["id"]].actions == [
        {
            "label": "Re-check",
            "description": "Check the CLA signatures again",
            "identifier": "recheck",
        }
    ]
    # One token for the installation, stored encrypted: the token itself is nowhere in it.
    assert state.apps.token_requests == {installation: 1}
    tokens = [t for t in state.tokens if t.startswith("ghs_")]
    with app_cla.database.session() as session:
        stored = session.execute(text("SELECT token_encrypted FROM app_installation_tokens"))
        [encrypted] = [row[0] for row in stored]
    assert tokens and all(t not in encrypted for t in tokens)
    assert installed_repositories(app_cla.database) == ["octo-org/gadgets", "octo-org/widgets"]

    # Signing turns both green: the same check run, updated in place.
    app_cla.sign("alice")
    app_cla.wait_for(lambda: app_cla.status_state(REPO, sha) == "success", what="green")
    app_cla.wait_idle()
    [run] = check_runs(app_cla, sha)
    assert run["conclusion"] == "success"
    assert [h["method"] for h in state.apps.check_run_history(run["id"])] == ["POST", "PATCH"]
    assert state.apps.token_requests == {installation: 1}


def test_rerequested_and_recheck_action_re_evaluate(app_cla: CLAService) -> None:
    state = app_cla.state
    installation = install(app_cla)
    first = state.add_pull_request(REPO, user_login="alice", n_commits=1, head_ref="a")
    second = state.add_pull_request(REPO, user_login="bob", n_commits=1, head_ref="b")
    for pr in (first, second):
        app_cla.deliver(
            "pull_request",
            state.pull_request_event(REPO, pr["number"], installation_id=installation),
        )
    app_cla.wait_idle()
    [run_a] = check_runs(app_cla, first["head"]["sha"])
    [run_b] = check_runs(app_cla, second["head"]["sha"])
    assert run_a["conclusion"] == run_b["conclusion"] == "action_required"

    quietly_sign(app_cla, "alice")
    quietly_sign(app_cla, "bob")
    other = state.apps.check_run_event(run_a["id"], "rerequested", sender_login="alice")
    other["action"] = "requested_action"
    other["requested_action"] = {"identifier": "something-else"}
    status, _ = app_cla.deliver("check_run", other)
    assert status == 202
    app_cla.wait_idle()
    assert check_runs(app_cla, first["head"]["sha"])[0]["conclusion"] == "action_required"

    pressed = state.apps.check_run_event(
        run_a["id"], "requested_action", sender_login="alice", identifier="recheck"
    )
    assert app_cla.deliver("check_run", pressed)[0] == 202
    rerun = state.apps.check_run_event(run_b["id"], "rerequested", sender_login="bob")
    assert app_cla.deliver("check_run", rerun)[0] == 202
    app_cla.wait_idle()
    for pr in (first, second):
        [run] = check_runs(app_cla, pr["head"]["sha"])
        assert run["conclusion"] == "success"
        assert app_cla.status_state(REPO, pr["head"]["sha"]) == "success"


def test_repositories_added_later_are_enforced(app_cla: CLAService) -> None:
    state = app_cla.state
    installation = install(app_cla, repositories=["octo-org/gadgets"])
    pr = state.add_pull_request(REPO, user_login="alice", n_commits=1)
    state.apps.add_repositories(installation, [REPO])
    payload = state.apps.installation_repositories_event(installation, "added", [REPO])
    assert app_cla.deliver("installation_repositories", payload)[0] == 202
    app_cla.wait_idle()
    assert app_cla.status_state(REPO, pr["head"]["sha"]) == "failure"
    state.apps.remove_repositories(installation, [REPO])
    payload = state.apps.installation_repositories_event(installation, "removed", [REPO])
    assert app_cla.deliver("installation_repositories", payload)[0] == 202
    app_cla.wait_idle()
    assert installed_repositories(app_cla.database) == ["octo-org/gadgets"]


def test_token_mode_never_calls_the_checks_api(cla: CLAService) -> None:
    state = cla.state
    pr = state.add_pull_request(REPO, user_login="alice", n_commits=1)
    assert cla.deliver("pull_request", state.pull_request_event(REPO, pr["number"]))[0] == 202
    cla.wait_idle()
    assert cla.status_state(REPO, pr["head"]["sha"]) == "failure"
    assert state.api_calls(path_prefix=f"/repos/{REPO}/check-runs") == []
    assert not any("check-runs" in r.path for r in state.requests)


def test_sign_in_through_the_github_app_with_expiring_tokens(app_cla: CLAService) -> None:
    live = app_cla.live
    with live.client() as client:
        page = sign_in(live, client, "alice")
        assert page.status_code == 200
        assert "alice" in page.text
    state = app_cla.state
    user_tokens = [t for t in state.tokens if t.startswith("ghu_")]
    assert len(user_tokens) == 1
    info = state.apps.tokens[user_tokens[0]]
    assert info.refresh_token is not None and info.refresh_token.startswith("ghr_")
    # Neither the user token nor its refresh token is kept anywhere.
    secrets = (user_tokens[0], info.refresh_token)
    with app_cla.database.session() as session:
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)):
                flat = " ".join(str(value) for value in row)
                assert not any(secret in flat for secret in secrets), table.name


def test_the_console_asks_github_through_the_installation(app_cla: CLAService) -> None:
    """App mode: who administers what is asked with the installation's token (an org
    owner, a repository admin), not a personal token."""
    state = app_cla.state
    state.add_org_member("octo-org", "maint", admin=True)
    state.add_collaborator("octo-org/gadgets", "dave", "admin")
    with app_cla.database.session() as session:
        agreements = AgreementService(session)
        agreements.add_or_update("gadgets-cla", "Gadgets CLA", "You agree to gadgets.")
        agreements.link_repo("octo-org/gadgets", "gadgets-cla")
    install(app_cla)
    live = app_cla.live
    with live.client() as owner, live.client() as repo_admin:
        page = sign_in(live, owner, "maint", next_path="/admin/")
        assert page.status_code == 200, page.text
        assert "Individual CLA" in page.text and "Gadgets CLA" in page.text
        page = sign_in(live, repo_admin, "dave", next_path="/admin/")
        assert page.status_code == 200, page.text
        assert "Gadgets CLA" in page.text and "Individual CLA" not in page.text
        assert repo_admin.get(f"/admin/agreements/{AGREEMENT_SLUG}").status_code == 404
        assert repo_admin.get("/admin/agreements/gadgets-cla/signatures").status_code == 200


def test_report_mode_concludes_the_check_run_neutral(app_cla: CLAService) -> None:
    with app_cla.database.session() as session:
        AgreementService(session).link_org("octo-org", AGREEMENT_SLUG, mode="report")
    pr = app_cla.state.add_pull_request(REPO, user_login="alice", n_commits=1)
    sha = pr["head"]["sha"]
    install(app_cla)
    status = app_cla.status(REPO, sha)
    assert status is not None and status["state"] == "success"
    assert status["description"] == "report only: 0 of 1 have signed"
    [run] = check_runs(app_cla, sha)
    assert run["conclusion"] == "neutral"  # never blocks a merge, even when required
    assert run["output"]["title"] == status["description"]
    assert "@alice" in run["output"]["summary"]
    assert app_cla.state.comments(REPO, pr["number"]) == []


def test_the_check_run_tells_an_unknown_author_where_to_prove_the_email(
    app_cla: CLAService,
) -> None:
    """An author whose commit email GitHub links to no account reads, in the check run as in
    the token mode comment, where to prove the address to undersign."""
    state = app_cla.state
    sha = state.add_commit(
        REPO,
        author={"name": "Nobody Known", "email": "nobody@elsewhere.example"},
        author_field="null",
    )
    pr = state.add_pull_request(REPO, user_login="alice", commits=[sha])
    install(app_cla)
    [run] = check_runs(app_cla, pr["head"]["sha"])
    assert run["conclusion"] == "action_required"
    summary = run["output"]["summary"]
    assert "`nobody@elsewhere.example`" in summary
    assert (
        "if this address is yours, verify it on your GitHub account, then "
        f"[link it to undersign]({app_cla.live.url}/me/emails) and sign."
    ) in summary


def test_after_a_material_version_the_check_run_and_status_say_sign_the_new_version(
    app_cla: CLAService,
) -> None:
    """alice signed, then a material version replaced what she signed: the check run's title
    and summary, and the status, tell her what the comment does (the agreement changed, sign
    the new version), not that she never signed."""
    app_cla.sign("alice")
    pr = app_cla.state.add_pull_request(REPO, user_login="alice", n_commits=1)
    sha = pr["head"]["sha"]
    install(app_cla)
    assert app_cla.status_state(REPO, sha) == "success"

    with app_cla.database.session() as session:
        AgreementService(session).add_or_update(
            AGREEMENT_SLUG, "Individual CLA", "You agree to license it, and to more now."
        )
        app_cla.runtime.requeue_open_pull_requests(session, repos=(REPO,))
    app_cla.wait_for(lambda: app_cla.status_state(REPO, sha) == "failure", what="red")
    app_cla.wait_idle()
    status = app_cla.status(REPO, sha)
    assert status is not None and status["context"] == "license/cla"
    assert status["description"] == (
        "0 of 1 contributor has signed the current CLA; 1 signed an earlier version and must "
        "sign the new version."
    )
    [run] = check_runs(app_cla, sha)
    assert run["conclusion"] == "action_required"
    assert run["output"]["title"] == status["description"]
    assert (
        "**The agreement has changed:** @alice signed an earlier version, and the current "
        "version changed it materially; the sign page shows what changed."
    ) in run["output"]["summary"]


#: dave is a person; octo-org, an organisation, can sign nothing.
PEOPLE = b"login\ndave\nocto-org\n"


def check_people(client: httpx.Client, page: str) -> tuple[int, str]:
    """Check ``PEOPLE`` in the console's import (nothing stored): the answer's status and
    its text, unescaped. ``page`` is any console page, for its CSRF token."""
    answer = client.post(
        f"/admin/agreements/{AGREEMENT_SLUG}/import",
        data={"source": "csv", "csrf_token": csrf_token(page)},
        files={"file": ("people.csv", PEOPLE, "text/csv")},
    )
    return answer.status_code, html.unescape(answer.text)


def imported_logins(cla: CLAService) -> list[str]:
    with cla.database.session() as session:
        return list(
            session.scalars(select(Signature.login).where(Signature.import_source.is_not(None)))
        )


def test_undersign_import_looks_logins_up_through_an_installation(app_cla: CLAService) -> None:
    """``GET /users/{login}`` is a public read, so the command asks it with the token of an
    installation the app has (nothing in the path names one); installed nowhere, it says so
    and imports nothing."""
    command = build_runtime(app_cla.settings, app_cla.database)  # a process of its own
    try:

        def run_import() -> Any:
            return CliRunner().invoke(
                agreement_commands,
                ["import", "csv", "-", "--agreement", AGREEMENT_SLUG],
                obj=SimpleNamespace(database=app_cla.database, runtime=command),
                input=PEOPLE,
            )

        refused = run_import()
        assert refused.exit_code == 1, refused.output
        assert "could not look up 'dave' on GitHub: the GitHub App is not installed on any " in (
            refused.output
        )
        assert "install the app on an organisation or account first" in refused.output
        assert imported_logins(app_cla) == []
        install(app_cla)
        result = run_import()
        assert result.exit_code == 1, result.output  # octo-org's line is a problem
        assert "line 3: not-a-person: 'octo-org' is an organisation" in result.stdout
        assert "imported 1, already present 0, problems 1 (2 GitHub lookup(s))" in result.stdout
        assert imported_logins(app_cla) == ["dave"]
    finally:
        command.queue.huey.flush()
        command.close()


def test_the_console_import_looks_logins_up_through_an_installation(
    app_cla: CLAService,
) -> None:
    app_cla.state.add_org_member("octo-org", "maint", admin=True)
    install(app_cla)
    live = app_cla.live
    with live.client() as client:
        page = sign_in(live, client, "maint", next_path="/admin/")
        assert page.status_code == 200, page.text
        status, said = check_people(client, page.text)
    assert status == 200, said[:500]
    assert "would import 1, already present 0, problems 1 (2 GitHub lookup(s))" in said
    assert "'octo-org' is an organisation, not a person" in said


def test_an_agreement_admin_reads_plainly_that_github_cannot_be_asked(
    app_cla: CLAService, caplog: pytest.LogCaptureFixture
) -> None:
    """maint owns octo-org, so administers its agreement, but is no instance admin: with
    octo-org's installation suspended the console cannot ask GitHub what they administer;
    once in, the app removed on GitHub (the webhook missed, their answer still fresh) leaves
    an import with logins nothing to look them up with. Both pages tell them plainly that it
    is unavailable and what they can do, with nothing imported; why (suspended, installed
    nowhere) is for whoever runs undersign, in the log."""
    app_cla.state.add_org_member("octo-org", "maint", admin=True)
    live = app_cla.live
    caplog.set_level(logging.WARNING, logger="undersign.web.console")
    installation = install(app_cla)
    suspend(app_cla, installation)
    with live.client() as client:
        landing = sign_in(live, client, "maint", next_path="/admin/")
        said = html.unescape(landing.text)
        assert landing.status_code == 503, said[:500]
        assert "The console is unavailable right now" in said
        assert "suspended" not in said and "What went wrong" not in said
    suspend(app_cla, installation, "unsuspend")
    with live.client() as client:
        page = sign_in(live, client, "maint", next_path="/admin/")
        assert page.status_code == 200, page.text[:500]
        app_cla.state.apps.uninstall(installation)
        status, said = check_people(client, page.text)
    assert status == 409, said[:500]
    assert "looking them up on GitHub is unavailable right now. Nothing was imported" in said
    assert "GitHub App" not in said and "install" not in said
    assert imported_logins(app_cla) == []
    logged = [r.getMessage() for r in caplog.records]
    assert any(f"installation {installation} is suspended" in line for line in logged), logged
    assert "the GitHub App is not installed on any account" in logged[-1], logged


def recorded_installations(cla: CLAService) -> list[int]:
    with cla.database.session() as session:
        return list(session.scalars(select(AppInstallation.id).order_by(AppInstallation.id)))


def test_an_installation_removed_on_github_is_forgotten_for_another_one(
    app_cla: CLAService,
) -> None:
    """The app was removed from octo-org on GitHub and undersign missed the webhook: GitHub
    answers the token request for that installation 404. The lookup forgets it and goes on
    with an installation GitHub lists (on maint's account, which undersign never heard of);
    with none left it says the app is installed nowhere. Never "try again later", and never
    every login reported as gone (a 404 read as GitHub knowing no such account)."""
    state = app_cla.state
    removed = install(app_cla)
    command = build_runtime(app_cla.settings, app_cla.database)  # a process of its own
    try:

        def run_import(*options: str) -> Any:
            return CliRunner().invoke(
                agreement_commands,
                ["import", "csv", "-", "--agreement", AGREEMENT_SLUG, *options],
                obj=SimpleNamespace(database=app_cla.database, runtime=command),
                input=PEOPLE,
            )

        checked = run_import("--dry-run")
        assert "would import 1, already present 0, problems 1" in checked.stdout, checked.output
        state.apps.uninstall(removed)  # its token, which the command holds, stops working
        elsewhere = int(state.apps.install(APP_ID, "maint")["id"])
        result = run_import()
        assert result.exit_code == 1, result.output  # octo-org's line is a problem
        assert "not-found" not in result.stdout
        assert "imported 1, already present 0, problems 1 (2 GitHub lookup(s))" in result.stdout
        assert imported_logins(app_cla) == ["dave"]
        assert recorded_installations(app_cla) == [elsewhere]

        state.apps.uninstall(elsewhere)
        refused = run_import()
        assert refused.exit_code == 1, refused.output
        assert "could not look up 'dave' on GitHub: the GitHub App is not installed on any " in (
            refused.output
        )
        assert "try again later" not in refused.output and "not-found" not in refused.output
        assert recorded_installations(app_cla) == []
        assert imported_logins(app_cla) == ["dave"]
    finally:
        command.queue.huey.flush()
        command.close()


@pytest.mark.parametrize("instance_admins", [("root",)])
def test_the_console_import_says_plainly_that_the_app_is_installed_nowhere(
    app_cla: CLAService,
) -> None:
    """An instance admin gets into the console without any installation (an agreement's
    admin is found through one). The check of a file with logins is then a 409 saying the
    app is installed nowhere and what to do, with nothing imported: not a 503 "try again
    later", since no retry helps until someone installs the app. Once the only installation
    is removed on GitHub (undersign missing the webhook), the same."""
    live = app_cla.live
    with live.client() as client:
        page = sign_in(live, client, "root", next_path="/admin/")
        assert page.status_code == 200, page.text

        def check() -> tuple[int, str]:
            answer = client.post(
                f"/admin/agreements/{AGREEMENT_SLUG}/import",
                data={"source": "csv", "csrf_token": csrf_token(page.text)},
                files={"file": ("people.csv", PEOPLE, "text/csv")},
            )
            return answer.status_code, html.unescape(answer.text)

        status, said = check()
        assert status == 409, said[:500]
        assert (
            "Could not look up 'dave' on GitHub: the GitHub App is not installed on any account"
        ) in said
        assert "install the app on an organisation or account first. Nothing was imported" in said
        assert "try again later" not in said
        removed = install(app_cla)
        assert check()[0] == 200
        app_cla.state.apps.uninstall(removed)
        status, said = check()
        assert status == 409, said[:500]
        assert "the GitHub App is not installed on any account" in said
    assert imported_logins(app_cla) == []
    assert recorded_installations(app_cla) == []


def paper_company(cla: CLAService) -> str:
    """BigCorp Ltd, signed on paper with maint as its CLA manager, under a corporate CLA
    beside the individual one; its page's path."""
    maint = int(cla.state.user("maint")["id"])
    with cla.live.database.session() as session:
        companies = CompanyService(session)
        companies.add_corporate_agreement(
            "corporate-cla", "Corporate CLA", "Agreed.", AGREEMENT_SLUG
        )
        company_id = companies.add_paper("corporate-cla", "BigCorp Ltd", [(maint, "maint")]).id
    return f"/companies/{company_id}"


@pytest.mark.parametrize("instance_admins", [("root",)])
def test_the_company_pages_say_plainly_that_the_app_is_installed_nowhere(
    app_cla: CLAService,
) -> None:
    """Signing for a company, approving an account and adding a manager look the login up
    with an installation's token: with the app installed nowhere that is a 409, nothing
    written, not a 503. An instance admin reads why and what to do (no "try again"); the
    company's CLA manager reads only that it is unavailable and what they can do. Once
    installed, the same works."""
    live = app_cla.live
    url = paper_company(app_cla)
    for login in ("maint", "root"):
        with live.client() as client:
            sign_in(live, client, login)
            token = csrf_token(client.get(url).text)
            form = company_form(client.get("/sign/corporate-cla").text, managers="dave")
            answers = {
                "sign": client.post("/sign/corporate-cla", data=form),
                "approve": client.post(
                    f"{url}/approve", data={"csrf_token": token, "kind": "login", "value": "dave"}
                ),
                "add manager": client.post(
                    f"{url}/managers/add", data={"csrf_token": token, "login": "dave"}
                ),
            }
        for what, answer in answers.items():
            said = html.unescape(answer.text)
            assert answer.status_code == 409, (login, what, said[:500])
            if login == "root":
                assert "the GitHub App is not installed on any account" in said, what
                assert "install the app on an organisation or account first." in said, what
                assert "try again" not in said, what
            else:
                assert "GitHub App" not in said, what
                assert "unavailable right now; try again later or contact the maintainers" in (
                    said
                ), what
    with live.database.session() as session:
        assert session.scalars(select(Company.name).order_by(Company.id)).all() == ["BigCorp Ltd"]
    install(app_cla)
    with live.client() as client:
        sign_in(live, client, "maint")
        token = csrf_token(client.get(url).text)
        added = client.post(f"{url}/managers/add", data={"csrf_token": token, "login": "dave"})
        assert added.status_code == 303, added.text[:500]


def suspend(cla: CLAService, installation: int, action: str = "suspend") -> None:
    """The account suspends (or unsuspends) the installation on GitHub, which says so."""
    state = cla.state
    if action == "suspend":
        state.apps.suspend(installation)
    else:
        state.apps.unsuspend(installation)
    status, _ = cla.deliver(
        "installation",
        state.apps.installation_event(installation, action),
        target_type="integration",
        target_id=APP_ID,
    )
    assert status == 202
    cla.wait_idle()


def suspended_installations(cla: CLAService) -> list[int]:
    with cla.database.session() as session:
        return list(
            session.scalars(
                select(AppInstallation.id).where(AppInstallation.suspended_at.is_not(None))
            )
        )


def test_a_suspended_installation_is_passed_over_for_login_lookups(app_cla: CLAService) -> None:
    """octo-org suspended its installation, the one undersign heard of last: GitHub refuses
    its token. A login lookup (a public read any installation may make) goes on with maint's,
    not "try again later"."""
    state = app_cla.state
    elsewhere = install(app_cla, account="maint")
    suspended = install(app_cla)
    suspend(app_cla, suspended)
    assert suspended_installations(app_cla) == [suspended]
    command = build_runtime(app_cla.settings, app_cla.database)  # a process of its own
    try:
        result = CliRunner().invoke(
            agreement_commands,
            ["import", "csv", "-", "--agreement", AGREEMENT_SLUG],
            obj=SimpleNamespace(database=app_cla.database, runtime=command),
            input=PEOPLE,
        )
        assert "try again later" not in result.output, result.output
        assert "imported 1, already present 0, problems 1 (2 GitHub lookup(s))" in result.stdout
        assert imported_logins(app_cla) == ["dave"]
        assert sorted(state.apps.token_requests) == sorted({suspended, elsewhere})
    finally:
        command.queue.huey.flush()
        command.close()


def open_pull_request_failing_on(cla: CLAService, installation: int) -> dict[str, Any]:
    """alice opens a pull request on REPO; its delivery's job fails once, naming the
    suspension of ``installation``."""
    state = cla.state
    pr = state.add_pull_request(REPO, user_login="alice", n_commits=1)
    payload = state.pull_request_event(REPO, pr["number"], "opened")
    assert cla.deliver("pull_request", payload)[0] == 202
    cla.wait_idle()
    [job] = [j for j in cla.jobs() if j.event == "pull_request"]
    assert job.status == "failed" and job.attempts == 1
    assert f"installation {installation} is suspended on GitHub" in (job.last_error or "")
    return pr


def test_a_delivery_for_a_suspended_installation_gives_up_at_once(app_cla: CLAService) -> None:
    """A pull request of a suspended installation's repository: the job fails once, saying
    the installation is suspended, without asking GitHub for a token it will refuse (nor
    retrying, nor trying to post an error status it could not write). Unsuspended, its
    open pull requests get their verdict."""
    state = app_cla.state
    installation = install(app_cla)
    suspend(app_cla, installation)
    asked = dict(state.apps.token_requests)
    pr = open_pull_request_failing_on(app_cla, installation)
    assert state.apps.token_requests == asked
    assert app_cla.status(REPO, pr["head"]["sha"]) is None
    assert check_runs(app_cla, pr["head"]["sha"]) == []
    suspend(app_cla, installation, "unsuspend")
    assert suspended_installations(app_cla) == []
    assert app_cla.status_state(REPO, pr["head"]["sha"]) == "failure"


def test_a_suspension_undersign_missed_is_noticed_on_the_first_refusal(
    app_cla: CLAService,
) -> None:
    """The ``suspend`` webhook never came: the token undersign holds is refused (403). The
    installation is marked suspended then, and the job ends there like any other on it."""
    state = app_cla.state
    installation = install(app_cla)
    state.apps.suspend(installation)  # no webhook
    pr = open_pull_request_failing_on(app_cla, installation)
    assert suspended_installations(app_cla) == [installation]
    assert app_cla.status(REPO, pr["head"]["sha"]) is None


@pytest.mark.parametrize("instance_admins", [("root",)])
def test_the_company_pages_say_plainly_that_every_installation_is_suspended(
    app_cla: CLAService,
) -> None:
    """The app's only installation is suspended: a company page's login lookup has no token
    to read with, which only the account can mend (a 409, nothing written), not a 503. An
    instance admin reads which installation is suspended; the company's CLA manager reads
    only that it is unavailable. Unsuspended, the same works."""
    live = app_cla.live
    installation = install(app_cla)
    suspend(app_cla, installation)
    url = paper_company(app_cla)

    def add_dave(client: httpx.Client) -> tuple[int, str]:
        token = csrf_token(client.get(url).text)
        answer = client.post(f"{url}/managers/add", data={"csrf_token": token, "login": "dave"})
        return answer.status_code, html.unescape(answer.text)

    with live.client() as root:
        sign_in(live, root, "root")
        status, said = add_dave(root)
        assert status == 409, said[:500]
        assert f"installation {installation} is suspended on GitHub" in said
        assert "try again" not in said
    with live.client() as client:
        sign_in(live, client, "maint")
        status, said = add_dave(client)
        assert status == 409, said[:500]
        assert "suspended" not in said and f"installation {installation}" not in said
        assert "Adding GitHub accounts is unavailable right now; try again later" in said
        suspend(app_cla, installation, "unsuspend")
        status, said = add_dave(client)
        assert status == 303, said[:500]


def test_the_reconciler_passes_over_a_suspended_installation_in_one_line(
    app_cla: CLAService,
) -> None:
    """octo-org suspended its installation: the reconciler lists none of its repositories
    (linked one by one or through the org link), asks no token GitHub would refuse, and says
    so in one line naming the account and since when, not an error per repository (nor a
    failed listing that left every other repository unreconciled). maint's repository, in
    an installation that is active, is reconciled as usual."""
    state = app_cla.state
    state.add_repo("maint/tools")
    with app_cla.database.session() as session:
        agreements = AgreementService(session)
        agreements.link_repo("maint/tools", AGREEMENT_SLUG)
        agreements.link_repo(REPO, AGREEMENT_SLUG)
    install(app_cla, account="maint")
    installation = install(app_cla)
    suspend(app_cla, installation)
    pr = state.add_pull_request("maint/tools", user_login="alice", n_commits=1)
    asked = dict(state.apps.token_requests)
    with app_cla.database.session() as session:
        row = session.get(AppInstallation, installation)
        assert row is not None and row.suspended_at is not None
        since = row.suspended_at

    output = run_reconcile(app_cla)
    assert f"maint/tools#{pr['number']}: queued" in output
    said = [line for line in output.splitlines() if str(installation) in line]
    assert said == [
        f"octo-org: installation {installation} suspended on GitHub since "
        f"{since:%Y-%m-%d %H:%M} UTC; its repositories passed over"
    ], output
    assert "error" not in output
    assert state.apps.token_requests.get(installation) == asked.get(installation)


def test_a_renamed_repository_is_followed_with_the_installations_token(
    app_cla: CLAService,
) -> None:
    """``repository`` ``renamed`` in app mode: GitHub is asked about the new name with the
    installation's token, and the old name no longer routes to the installation."""
    state = app_cla.state
    installation = install(app_cla, repositories=[REPO])
    before = state.add_pull_request(REPO, user_login="alice", n_commits=1)
    opened = state.pull_request_event(REPO, before["number"], installation_id=installation)
    app_cla.deliver("pull_request", opened)
    app_cla.wait_idle()
    changes = state.rename_repo(REPO, "things")
    new = "octo-org/things"
    payload = state.repository_event(new, "renamed", changes, installation_id=installation)
    app_cla.deliver("repository", payload, target_type="integration", target_id=APP_ID)
    app_cla.wait_idle()
    assert [job.status for job in app_cla.jobs()] == ["done"] * len(app_cla.jobs())
    assert installed_repositories(app_cla.database) == [new]
    app_cla.sign("alice")
    sha = before["head"]["sha"]
    app_cla.wait_for(lambda: app_cla.status_state(new, sha) == "success", what="green")


def test_one_installations_exhausted_rate_limit_does_not_stop_another(
    app_cla: CLAService,
) -> None:
    """GitHub counts the primary limit per installation ("API rate limit exceeded for
    installation ID N"): the installation that ran out waits for its reset, the others go on."""
    state = app_cla.state
    state.add_org("other-org")
    state.add_repo("other-org/tools")
    with app_cla.database.session() as session:
        AgreementService(session).link_org("other-org", AGREEMENT_SLUG)
    mine = install(app_cla)
    other = install(app_cla, account="other-org")
    first = state.add_pull_request(REPO, user_login="alice", n_commits=1)
    second = state.add_pull_request("other-org/tools", user_login="bob", n_commits=1)
    reset = time.time() + 6
    state.set_installation_rate_limit(mine, 0, reset_at=reset)
    app_cla.deliver(
        "pull_request", state.pull_request_event(REPO, first["number"], installation_id=mine)
    )
    app_cla.wait_for(
        lambda: any(c.status == 403 for c in state.api_calls()), what="the refused call"
    )
    app_cla.deliver(
        "pull_request",
        state.pull_request_event("other-org/tools", second["number"], installation_id=other),
    )
    sha = second["head"]["sha"]
    app_cla.wait_for(lambda: app_cla.status_state("other-org/tools", sha) == "failure", 5)
    assert time.time() < reset  # not held back by the other installation's limit
    app_cla.wait_idle(30)
    assert app_cla.status_state(REPO, first["head"]["sha"]) == "failure"
    refused = [c for c in state.api_calls() if c.status == 403]
    assert len(refused) == 1


def test_a_renamed_account_keeps_its_installation_and_agreement(app_cla: CLAService) -> None:
    """``installation_target`` ``renamed``: the installation, its repositories and the org
    link go by the account's new login; its pull requests are checked as before."""
    state = app_cla.state
    installation = install(app_cla, repositories=[REPO])
    changes = state.rename_user("octo-org", "octo-labs")
    payload = state.apps.installation_target_event(installation, changes)
    app_cla.deliver("installation_target", payload, target_type="integration", target_id=APP_ID)
    app_cla.wait_idle()
    assert [job.status for job in app_cla.jobs()] == ["done"] * len(app_cla.jobs())
    assert installed_repositories(app_cla.database) == ["octo-labs/widgets"]
    with app_cla.database.session() as session:
        [row] = session.scalars(select(AppInstallation))
    assert row.account_login == "octo-labs"
    new = "octo-labs/widgets"
    pr = state.add_pull_request(new, user_login="alice", n_commits=1)
    opened = state.pull_request_event(new, pr["number"], installation_id=installation)
    app_cla.deliver("pull_request", opened)
    app_cla.wait_idle()
    assert app_cla.status_state(new, pr["head"]["sha"]) == "failure"
