"""``undersign demo``: the whole service on a laptop, with a GitHub emulator and sample data.

Nobody needs a GitHub account or a network: the emulator plays GitHub on another loopback
port, with demo users (alice, bob, ...), a repository and a pull request waiting on a
signature. Everything runs in one process; state lives in ``instance/demo``.

Depends on agreements.service, config, db, emulator, github.registration, migrations, serving,
web.
"""

from __future__ import annotations

import json
import os
import secrets
import sys
import threading
import time
from pathlib import Path

import click
import httpx

from undersign.agreements.companies import CompanyService
from undersign.agreements.service import AgreementService
from undersign.config import Settings, load_settings
from undersign.db import Database
from undersign.emulator import EmulatorServer, GitHubEmulator
from undersign.emulator.demo import (
    AGENT_REPO,
    CORPORATE_ADDRESS,
    CORPORATE_DOMAIN,
    NO_AGENTS_REPO,
    WORK_ADDRESS,
    build_demo_state,
)
from undersign.github import registration
from undersign.migrations import upgrade
from undersign.serving import embedded_consumer, serve
from undersign.web import create_app

DEMO_CLIENT_ID = "Ov23liDemoUndersign01"
DEMO_AGREEMENT = Path(__file__).parent / "demo_data" / "individual-cla.md"
DEMO_CORPORATE_AGREEMENT = Path(__file__).parent / "demo_data" / "corporate-cla.md"


def demo_settings(port: int, github_port: int, instance: Path) -> Settings:
    base = load_settings(
        {
            "UNDERSIGN_ENV": "demo",
            "UNDERSIGN_INSTANCE_PATH": str(instance),
            "UNDERSIGN_BASE_URL": f"http://127.0.0.1:{port}",
            "UNDERSIGN_GITHUB_URL": f"http://127.0.0.1:{github_port}",
            "UNDERSIGN_GITHUB_API_URL": f"http://127.0.0.1:{github_port}/api/v3",
            "UNDERSIGN_GITHUB_CLIENT_ID": DEMO_CLIENT_ID,
            "UNDERSIGN_LOG_LEVEL": os.environ.get("UNDERSIGN_LOG_LEVEL", "INFO"),
        }
    )
    return base.replace(
        github_client_secret=secrets.token_hex(20), webhook_secret=secrets.token_hex(20)
    )


def run_demo(*, port: int, github_port: int) -> None:
    instance = Path(os.environ.get("UNDERSIGN_INSTANCE_PATH", "instance")) / "demo"
    settings = demo_settings(port, github_port, instance)
    state = build_demo_state(
        client_id=settings.github_client_id or "",
        client_secret=settings.github_client_secret or "",
        callback_url=settings.callback_url,
    )
    # alice (the owner of acme) is the demo's instance admin: she may register a GitHub App
    # from /setup/ on the emulator.
    settings = settings.replace(
        github_token=state.issue_token("undersign-bot"),
        admins=frozenset({int(state.user("alice")["id"])}),
    )
    emulator = EmulatorServer(state, host="127.0.0.1", port=github_port).start()
    upgrade(settings.database_url or "")
    seed_demo(settings)
    write_rollout_files(settings, state)
    seed_company(settings, (int(state.user("frank")["id"]), "frank"))
    click.echo(
        f"\n  undersign demo\n"
        f"  undersign:        {settings.base_url}\n"
        f"  GitHub emulator:  {emulator.url}/_emulator/  (demo users: alice, bob, carol, dave)\n"
        f"  AI agents:        {AGENT_REPO}#1 (Copilot for carol: carol must sign), "
        f"{NO_AGENTS_REPO}#1 (refused: Claude co-authored)\n"
        f"  Stop with Ctrl-C.\n",
        err=True,
    )
    opener = threading.Thread(target=_open_demo_pull_request, args=(settings, state), daemon=True)
    opener.start()
    try:
        with embedded_consumer(settings):
            serve(
                lambda: create_app(settings),
                host="127.0.0.1",
                port=port,
                workers=1,
                threads=8,
                # A demo stops at once on Ctrl-C; nothing in flight is worth waiting for.
                graceful_timeout=2,
            )
    finally:
        emulator.stop()
    sys.exit(0)


def seed_demo(settings: Settings) -> None:
    """The sample agreement covering the demo organisation (kept across demo restarts)."""
    database = Database(settings.database_url or "")
    try:
        # The emulator starts afresh: an app registered from /setup/ in an earlier run is gone.
        registration.forget(database)
        with database.session() as session:
            agreements = AgreementService(session)
            agreements.add_or_update(
                "individual-cla",
                "Acme Individual CLA",
                DEMO_AGREEMENT.read_text(encoding="utf-8"),
            )
            if not agreements.org_links():
                agreements.link_org("acme", "individual-cla")
                agreements.allowlist_add("individual-cla", "dependabot[bot]", "demo bot")
            # The AI agent policy both ways: the org's agreement requires a human for agent
            # work (the default), acme/handmade's own agreement refuses agent-written code.
            agreements.add_or_update(
                "handmade-cla",
                "Acme Handmade CLA (no AI-written code)",
                DEMO_AGREEMENT.read_text(encoding="utf-8"),
            )
            agreements.set_agent_policy("handmade-cla", "refuse")
            if not agreements.repo_links():
                agreements.link_repo(NO_AGENTS_REPO, "handmade-cla")
    finally:
        database.dispose()


#: What the demo writes into its instance folder for the rollout steps (loop_steps).
DEMO_ENV_FILE = "demo.env"
DEMO_IMPORTS = "imports"


def write_rollout_files(settings: Settings, state: GitHubEmulator) -> Path:
    """Sample files to import, and the settings a second shell needs to run ``undersign``
    commands against this demo (its database, its queue, the emulator and the bot's token).

    The files are written from the emulator's own accounts, so their ids are right: a CLA
    Assistant Lite signatures file (carol and dave, with ids) and a CLA assistant CSV
    export (logins only, resolved through the emulator; dave is in both, so the second
    import reports him as already present). The env file holds the demo bot's token: it is
    written readable by its owner only.
    """
    instance = Path(settings.instance_path)
    folder = instance / DEMO_IMPORTS
    folder.mkdir(parents=True, exist_ok=True)
    entries = [
        {
            "name": login,
            "id": state.user(login)["id"],
            "comment_id": 1_200_000_000 + number,
            "created_at": f"2023-0{number}-14T09:12:33Z",
            "repoId": 4_200_000,
            "pullRequestNo": number,
        }
        for number, login in enumerate(("carol", "dave"), start=1)
    ]
    (folder / "cla-assistant-lite.json").write_text(
        json.dumps({"signedContributors": entries}, indent=2) + "\n", encoding="utf-8"
    )
    header = "User Name;Repository Owner;Repository Name;CLA Title;Signed At\n"
    rows = "".join(
        f"{login};acme;widgets;ACME-CLA.md;2019-05-{day}T10:00:00.000Z\n"
        for day, login in (("14", "alice"), ("15", "dave"))
    )
    (folder / "cla-assistant.csv").write_text(header + rows, encoding="utf-8")
    variables = {
        "UNDERSIGN_ENV": "demo",
        "UNDERSIGN_INSTANCE_PATH": str(instance.resolve()),
        "UNDERSIGN_BASE_URL": settings.base_url,
        "UNDERSIGN_GITHUB_URL": settings.github_url,
        "UNDERSIGN_GITHUB_API_URL": settings.github_api_url,
        "UNDERSIGN_GITHUB_TOKEN": settings.github_token or "",
    }
    env_file = instance / DEMO_ENV_FILE
    env_file.unlink(missing_ok=True)
    fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.writelines(f"{name}={value}\n" for name, value in variables.items())
    return folder


def seed_company(settings: Settings, manager: tuple[int, str]) -> None:
    """The corporate CLA beside the individual one, and BigCorp, which signed it on paper
    with ``manager`` as its CLA manager (kept across demo restarts)."""
    database = Database(settings.database_url or "")
    try:
        with database.session() as session:
            companies = CompanyService(session)
            companies.add_corporate_agreement(
                "corporate-cla",
                "Acme Corporate CLA",
                DEMO_CORPORATE_AGREEMENT.read_text(encoding="utf-8"),
                "individual-cla",
            )
            if not companies.list_companies("corporate-cla"):
                companies.add_paper("corporate-cla", "BigCorp Ltd", [manager])
    finally:
        database.dispose()


def _open_demo_pull_request(settings: Settings, state: GitHubEmulator) -> None:
    """Once the app answers, GitHub "sends" the demo PR's opened event: it goes red."""
    url = f"{settings.base_url}/webhooks/github"
    for _ in range(600):
        try:
            if httpx.get(f"{settings.base_url}/healthz", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    for pull in state.open_pull_requests():
        status, _guid = state.deliver_webhook(
            url,
            "pull_request",
            state.pull_request_event(pull["repo"], pull["number"], "opened"),
            secret=settings.webhook_secret or "",
        )
        click.echo(
            f"  demo: delivered pull_request.opened for {pull['repo']}#{pull['number']}"
            f" -> HTTP {status}",
            err=True,
        )
    _wait_for_first_verdict(state)
    click.echo(loop_steps(settings), err=True)


def _wait_for_first_verdict(state: GitHubEmulator, timeout: float = 60.0) -> None:
    """The steps are printed once the demo PR is red, so they come after the start-up logs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        pulls = state.open_pull_requests()
        heads = [state.pull_request(p["repo"], p["number"])["head"]["sha"] for p in pulls]
        if pulls and all(
            state.statuses(p["repo"], sha) and state.comments(p["repo"], p["number"])
            for p, sha in zip(pulls, heads, strict=True)
        ):
            return
        time.sleep(0.2)


def loop_steps(settings: Settings) -> str:
    """The three steps of the demo loop: what a newcomer reads last in the terminal."""
    github = settings.github_url.rstrip("/")
    instance = Path(settings.instance_path).resolve()
    imports = instance / DEMO_IMPORTS
    return (
        f"\n  undersign demo is ready. Try the loop:\n"
        f"  1. Open the GitHub emulator: {github}/_emulator/\n"
        f"     pull request acme/widgets#1 by bob is red: bob has not signed the CLA.\n"
        f"  2. Follow that pull request's Details link, choose bob on the emulator's\n"
        f'     "Authorize" page (no password), and sign the Acme Individual CLA.\n'
        f"  3. Back on {github}/_emulator/ acme/widgets#1 turns green within seconds\n"
        f"     and its comment becomes a thank-you. No push needed.\n"
        f"  Proven emails: acme/widgets#2 by dave carries his unlinked work address\n"
        f"  {WORK_ADDRESS}: sign in as dave, sign, then on {settings.base_url}/me/emails\n"
        f'  press "Link my verified addresses from GitHub": it turns green.\n'
        f"  Corporate CLA: acme/widgets#3 by erin carries her BigCorp address\n"
        f"  {CORPORATE_ADDRESS}. Sign in as frank (BigCorp's CLA manager) at\n"
        f"  {settings.base_url}/companies , open BigCorp Ltd and approve the email domain\n"
        f"  {CORPORATE_DOMAIN}: still red (nobody proved an address there). Sign in as erin,\n"
        f'  press "Link my verified addresses from GitHub" on /me/emails: it turns green.\n'
        f"  AI agents: {AGENT_REPO}#1 (opened by Copilot for carol) turns green once carol\n"
        f"  signs; {NO_AGENTS_REPO}#1 (co-authored by Claude) stays red: its CLA refuses agents.\n"
        f"  The maintainers' console: {settings.base_url}/admin/ , signed in as alice (the\n"
        f"  owner of acme on the emulator): signatures (revoke one: its pull requests go red\n"
        f"  again), CSV and JSON exports, waiting pull requests, the audit log.\n"
        f"  Moving from another CLA tool (docs/importing.md), in a second shell:\n"
        f"     set -a; . {instance}/{DEMO_ENV_FILE}; set +a\n"
        f"     undersign import cla-assistant-lite {imports}/cla-assistant-lite.json "
        f"--agreement individual-cla\n"
        f"     undersign import cla-assistant {imports}/cla-assistant.csv "
        f"--agreement individual-cla\n"
        f"     undersign repo link acme/widgets individual-cla --mode report\n"
        f"  acme/widgets#1 then passes, saying how many signed; --mode enforce (or the\n"
        f"  console's Switch to enforce) turns it red again.\n"
        f"  First-run setup: {settings.base_url}/setup/ , signed in as alice (the demo's\n"
        f"  instance admin), registers a GitHub App on the emulator from a manifest.\n"
        f"  undersign itself: {settings.base_url}   Stop with Ctrl-C.\n"
    )
