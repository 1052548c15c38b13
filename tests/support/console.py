"""The maintainers' console as its tests set it up: two agreements with their admins on the
GitHub emulator (the ``console`` and ``clients`` fixtures, imported by the test modules that
use them), clients signed in to it, and a console sharing the workers' database and queue.

Depends on ``tests/conftest.py`` for the live app and the workers."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from sqlalchemy import select
from tests.conftest import (
    BOT_LOGIN,
    CLAFactory,
    CLAService,
    Live,
    LiveFactory,
    sign_in,
    sign_quietly,
)
from tests.support.pages import csrf_token

from undersign.agreements.models import Signature
from undersign.agreements.service import AgreementService
from undersign.enforcement.models import PullRequestCheck, PullRequestContributor
from undersign.jobs.models import Job

#: The bot whose token the console reads GitHub with.
BOT = "cla-bot"
#: The two agreements of the console fixture: alpha covers an org, beta one repository.
ALPHA, BETA = "alpha", "beta"


@dataclass
class Console:
    """The app, and the ids the walk needs."""

    live: Live
    ids: dict[str, int]
    signatures: dict[str, int]  # agreement slug -> the contributor's signature id


@pytest.fixture
def console(live_factory: LiveFactory) -> Console:
    """alpha covers the org ``acme`` (owned by ``owner``); beta covers the repository
    ``betaorg/tools`` (``repoadmin`` has admin there); ``contrib`` signed both and waits on
    an open pull request of acme/widgets; ``root`` is an instance admin."""
    state = live_factory.emulator.state
    for login in (BOT, "owner", "repoadmin", "contrib", "root", "member"):
        state.add_user(login, name=login.title(), email=f"{login}@example.com")
    state.add_org("acme", members=[BOT, "member"])
    state.add_org_member("acme", "owner", admin=True)
    state.add_org("betaorg", members=[])
    state.add_repo("acme/widgets")
    state.add_repo("betaorg/tools")
    state.add_collaborator("betaorg/tools", BOT, "write")
    state.add_collaborator("betaorg/tools", "repoadmin", "admin")
    state.add_collaborator("betaorg/tools", "member", "maintain")
    ids = {
        login: int(state.user(login)["id"]) for login in ("owner", "repoadmin", "contrib", "root")
    }
    live = live_factory(
        UNDERSIGN_GITHUB_TOKEN=state.issue_token(BOT), UNDERSIGN_ADMINS=f"{ids['root']}"
    )
    with live.database.session() as session:
        agreements = AgreementService(session)
        agreements.add_or_update(ALPHA, "Alpha CLA", "You agree to alpha.")
        agreements.add_or_update(BETA, "Beta CLA", "You agree to beta.")
        agreements.link_org("acme", ALPHA)
        agreements.link_repo("betaorg/tools", BETA)
    for slug in (ALPHA, BETA):
        sign_quietly(live.database, slug, "contrib", ids["contrib"])
    with live.database.session() as session:
        signatures = {
            slug: session.scalars(
                select(Signature.id).where(Signature.login == "contrib").order_by(Signature.id)
            ).all()[index]
            for index, slug in enumerate((ALPHA, BETA))
        }
        check = PullRequestCheck(
            repo_full_name="acme/widgets",
            number=7,
            is_open=True,
            head_sha="a" * 40,
            verdict="failure",
            status_description="waiting for contrib to sign",
            contributors_cache=[
                {"kind": "github", "github_id": ids["contrib"], "login": "contrib"}
            ],
        )
        check.contributors = [PullRequestContributor(github_id=ids["contrib"], pending=True)]
        session.add(check)
    return Console(live, ids, signatures)


@pytest.fixture
def clients(console: Console) -> Iterator[dict[str, httpx.Client]]:
    """The clients ``signed_in`` makes, by login; closed after the test."""
    made: dict[str, httpx.Client] = {}
    yield made
    for client in made.values():
        client.close()


def signed_in(
    console: Console, clients: dict[str, httpx.Client], login: str
) -> tuple[httpx.Client, str]:
    """A client signed in as ``login`` (coming to the console), and a CSRF token."""
    client = console.live.client()
    clients[login] = client
    page = sign_in(console.live, client, login, next_path="/admin/")
    assert page.status_code in (200, 503), page.text
    return client, csrf_token(page.text)


def recheck_jobs(console: Console) -> int:
    """How many evaluations of acme/widgets#7 are queued."""
    with console.live.database.session() as session:
        return len(
            [
                job
                for job in session.scalars(select(Job).where(Job.kind == "evaluate"))
                if job.payload.get("repo") == "acme/widgets" and job.payload.get("number") == 7
            ]
        )


def console_for(cla_factory: CLAFactory, live_factory: LiveFactory) -> tuple[CLAService, Live]:
    """The CLA of ``octo-org`` with its workers, and a console on the same database and
    queue; the bot reads memberships as an org member, ``maint`` owns the org."""
    cla = cla_factory()
    state = cla.state
    state.add_org_member("octo-org", BOT_LOGIN)
    state.add_org_member("octo-org", "maint", admin=True)
    console = live_factory(
        UNDERSIGN_GITHUB_TOKEN=state.issue_token(BOT_LOGIN),
        replace={
            "instance_path": cla.live.settings.instance_path,  # the workers' SQLite queue
            "queue_name": cla.live.settings.queue_name,  # or their Redis queue
        },
    )
    return cla, console
