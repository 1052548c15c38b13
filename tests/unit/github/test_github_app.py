"""GitHub App authentication against the emulator over real HTTP: our JWT, the installation
tokens shared through the database, their refresh, the config, and the app webhooks."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import event, select
from tests.conftest import make_settings

from undersign.config import ConfigError, Settings, load_settings
from undersign.db import Database
from undersign.emulator import EmulatorServer
from undersign.enforcement.app_events import handle_app_delivery
from undersign.enforcement.tasks import Delivery
from undersign.github.app import (
    STANDING_TTL,
    GitHubApp,
    any_installation_will_do,
    app_jwt,
    load_private_key,
    record_installation,
)
from undersign.github.errors import (
    AppNotInstalled,
    GitHubRequestError,
    GitHubUnavailable,
    InstallationSuspended,
    NotFound,
)
from undersign.github.models import AppInstallation
from undersign.github.webhooks import parse_delivery
from undersign.jobs.context import JobContext

FIXTURES = Path(__file__).parent.parent.parent / "fixtures" / "github"
APP_ID = 515151
CLIENT_ID = "Iv23liUnitTestApp001"


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@pytest.fixture(scope="module")
def keys() -> tuple[rsa.RSAPrivateKey, rsa.RSAPrivateKey]:
    return (
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
        rsa.generate_private_key(public_exponent=65537, key_size=2048),
    )


@pytest.fixture
def clock(emulator: EmulatorServer) -> Clock:
    """One clock for the emulator and for us, so both can be moved an hour on."""
    shared = Clock(1_900_000_000.0)
    emulator.state.clock = shared
    return shared


@pytest.fixture
def installed(emulator: EmulatorServer, keys: Any) -> int:
    state = emulator.state
    state.add_org("octo-org")
    state.add_repo("octo-org/widgets")
    state.add_pull_request("octo-org/widgets", user_login="alice", n_commits=1)
    public = (
        keys[0]
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    state.apps.register_app(
        "undersign", public, owner_login="octo-org", app_id=APP_ID, client_id=CLIENT_ID
    )
    return int(state.apps.install(APP_ID, "octo-org")["id"])


def app_settings(
    tmp_path: Path, emulator: EmulatorServer, database: Database, **extra: str
) -> Settings:
    return make_settings(
        tmp_path, "http://127.0.0.1:9", emulator, UNDERSIGN_DATABASE_URL=database.url, **extra
    )


@pytest.fixture
def settings(
    tmp_path: Path, emulator: EmulatorServer, database: Database, keys: Any, installed: int
) -> Settings:
    return app_settings(
        tmp_path,
        emulator,
        database,
        UNDERSIGN_GITHUB_APP_ID=str(APP_ID),
        UNDERSIGN_GITHUB_APP_PRIVATE_KEY=pem(keys[0]),
    )


@pytest.fixture
def contexts(settings: Settings, database: Database, clock: Clock) -> Iterator[list[JobContext]]:
    """Two job contexts (two processes' worth) sharing one database."""
    made = [JobContext(settings=settings, database=database, app_clock=clock) for _ in range(2)]
    yield made


# --- the JWT --------------------------------------------------------------------------------


def test_our_jwt_has_githubs_claims_and_is_accepted(
    keys: Any, contexts: list[JobContext], clock: Clock
) -> None:
    token = app_jwt(APP_ID, keys[0], clock.now)
    claims = jwt.decode(
        token,
        keys[0].public_key(),
        algorithms=["RS256"],
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims == {"iat": int(clock.now) - 60, "exp": int(clock.now) + 540, "iss": APP_ID}
    assert contexts[0].app.app_info()["id"] == APP_ID
    assert contexts[0].app.bot_login() == "undersign[bot]"


def test_client_id_works_as_issuer(
    tmp_path: Path, emulator: EmulatorServer, database: Database, keys: Any, installed: int
) -> None:
    settings = app_settings(
        tmp_path,
        emulator,
        database,
        UNDERSIGN_GITHUB_APP_ID=CLIENT_ID,
        UNDERSIGN_GITHUB_APP_PRIVATE_KEY=pem(keys[0]),
    )
    assert GitHubApp.from_settings(settings, database).app_info()["client_id"] == CLIENT_ID


@pytest.mark.parametrize(
    ("shift", "message"),
    [
        (120, "'Issued at' claim ('iat') must be an Integer"),  # our clock runs ahead
        (-600, "'Expiration time' claim ('exp') must be a numeric value"),  # far behind
    ],
)
def test_jwt_off_by_clock_drift_is_refused(
    settings: Settings, database: Database, clock: Clock, shift: int, message: str
) -> None:
    skewed = Clock(clock.now + shift)
    app = GitHubApp.from_settings(settings, database, clock=skewed)
    with pytest.raises(GitHubRequestError) as refused:
        app.app_info()
    assert refused.value.status == 401 and message in str(refused.value)


def test_too_far_exp_and_wrong_key_are_refused(
    settings: Settings, database: Database, keys: Any, clock: Clock, emulator: EmulatorServer
) -> None:
    import httpx

    too_far = jwt.api_jws.PyJWS().encode(
        json.dumps(
            {"iat": int(clock.now) - 60, "exp": int(clock.now) + 660, "iss": APP_ID}
        ).encode(),
        keys[0],
        algorithm="RS256",
    )
    response = httpx.get(emulator.api_url + "/app", headers={"Authorization": f"Bearer {too_far}"})
    assert response.status_code == 401
    assert response.json()["message"] == "'Expiration time' claim ('exp') is too far in the future"
    wrong = GitHubApp(
        settings.github_api_url, str(APP_ID), pem(keys[1]), database, "k" * 40, clock=clock
    )
    with pytest.raises(GitHubRequestError, match="could not be decoded"):
        wrong.app_info()


# --- installation tokens --------------------------------------------------------------------


def test_two_processes_share_one_installation_token(
    contexts: list[JobContext], emulator: EmulatorServer, installed: int
) -> None:
    for ctx in contexts:
        assert ctx.github.get_pull("octo-org", "widgets", 1)["number"] == 1
        ctx.github.list_pull_commits("octo-org", "widgets", 1)
    assert emulator.state.apps.token_requests == {installed: 1}
    assert sum(ctx.app.token_requests[installed] for ctx in contexts) == 1


def test_concurrent_first_requests_ask_github_once(
    settings: Settings, database: Database, clock: Clock, emulator: EmulatorServer, installed: int
) -> None:
    apps = [GitHubApp.from_settings(settings, database, clock=clock) for _ in range(4)]
    barrier = threading.Barrier(len(apps))
    tokens: list[str] = []

    def fetch(app: GitHubApp) -> None:
        barrier.wait()
        tokens.append(app.installation_token(installed))

    threads = [threading.Thread(target=fetch, args=(app,)) for app in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(15)
    assert len(tokens) == 4 and len(set(tokens)) == 1
    assert emulator.state.apps.token_requests == {installed: 1}


def test_token_is_renewed_shortly_before_it_expires(
    contexts: list[JobContext], clock: Clock, emulator: EmulatorServer, installed: int
) -> None:
    ctx = contexts[0]
    ctx.github.get_pull("octo-org", "widgets", 1)
    clock.now += 50 * 60  # 10 minutes left: still good
    ctx.github.get_pull("octo-org", "widgets", 1)
    assert emulator.state.apps.token_requests == {installed: 1}
    clock.now += 6 * 60  # 4 minutes left: renew before it runs out
    ctx.github.get_pull("octo-org", "widgets", 1)
    contexts[1].github.get_pull("octo-org", "widgets", 1)  # the other process reuses it
    assert emulator.state.apps.token_requests == {installed: 2}
    clock.now += 3600  # both long expired
    contexts[1].github.get_pull("octo-org", "widgets", 1)
    assert emulator.state.apps.token_requests == {installed: 3}


def test_revoked_token_is_replaced_after_a_401(
    contexts: list[JobContext], emulator: EmulatorServer, installed: int
) -> None:
    ctx = contexts[0]
    ctx.github.get_pull("octo-org", "widgets", 1)
    for token in [t for t in emulator.state.tokens if t.startswith("ghs_")]:
        emulator.state.revoke_token(token)
    assert ctx.github.get_pull("octo-org", "widgets", 1)["number"] == 1
    assert emulator.state.apps.token_requests == {installed: 2}


def test_long_stateless_tokens_are_used_as_they_are(
    contexts: list[JobContext], emulator: EmulatorServer, installed: int
) -> None:
    """GitHub's ~520 character ``ghs_APPID_JWT`` tokens: stored and sent untouched."""
    state = emulator.state
    original = state.apps.issue_installation_token

    def stateless(installation_id: int, *, stateless: bool = False) -> dict[str, Any]:
        return original(installation_id, stateless=True)

    state.apps.issue_installation_token = stateless  # type: ignore[method-assign]
    ctx = contexts[0]
    assert ctx.github.get_pull("octo-org", "widgets", 1)["number"] == 1
    [token] = [t for t in state.tokens if t.startswith("ghs_")]
    assert "." in token and len(token) > 255
    assert contexts[1].github.get_pull("octo-org", "widgets", 1)["number"] == 1
    assert state.apps.token_requests == {installed: 1}


def test_a_public_read_goes_through_an_installation_github_lists(
    contexts: list[JobContext], emulator: EmulatorServer, installed: int
) -> None:
    """``GET /users/{login}`` names no repository or org: a process that knows of no
    installation (no webhook reached it) asks GitHub for the app's, once, and remembers it."""
    emulator.state.add_org("other-org")
    for ctx in contexts:
        account = ctx.github.account("other-org")
        assert account is not None and (account.login, account.is_person) == ("other-org", False)
    assert ctx.github.user_account("alice") is not None
    assert len(emulator.state.api_calls("GET", "/app/installations")) == 1
    assert emulator.state.apps.token_requests == {installed: 1}


@pytest.mark.parametrize(
    ("path", "public"),
    [
        ("/users/alice", True),
        ("/users/octo-org", True),
        ("/users/alice/repos", False),
        ("/users/alice/installation", False),
        ("/users/alice/", False),
        ("/users/", False),
        ("/users", False),
        ("users/alice", False),
        ("/repos/octo-org/widgets", False),
        ("/orgs/octo-org", False),
    ],
)
def test_only_a_user_account_itself_is_a_read_any_installation_may_make(
    path: str, public: bool
) -> None:
    """Exactly ``/users/{login}`` may go through whichever installation is at hand; a path
    under it (an account's repositories, its installation) may not, as what it shows depends
    on the installation asked."""
    assert any_installation_will_do(path) is public


def test_an_installation_removed_on_github_is_forgotten_and_a_public_read_goes_on(
    contexts: list[JobContext], emulator: EmulatorServer, database: Database, installed: int
) -> None:
    """Removed on GitHub while no webhook reached undersign: its token request answers 404.
    The installation is forgotten (its rows, its route) and ``GET /users/{login}`` goes
    through the one GitHub lists; a repository it covered is a NotFound, as it cannot be
    seen now. With no installation left (a token held by another process answering 401
    first), the read says the app is installed nowhere, not that the login does not exist."""
    state = emulator.state
    record_installation(
        database, {"id": installed, "account": {"login": "octo-org"}}, [(None, "octo-org/widgets")]
    )
    state.apps.uninstall(installed)
    elsewhere = int(state.apps.install(APP_ID, "alice")["id"])
    account = contexts[0].github.account("alice")
    assert account is not None and account.login == "alice"
    assert state.apps.token_requests == {elsewhere: 1}
    assert installed_installations(database) == [elsewhere]
    with pytest.raises(NotFound):
        contexts[0].github.get_pull("octo-org", "widgets", 1)
    contexts[1].github.account("alice")  # holds the token from the database now
    state.apps.uninstall(elsewhere)
    with pytest.raises(AppNotInstalled):
        contexts[1].github.account("alice")
    assert installed_installations(database) == []


def test_a_public_read_passes_over_suspended_installations(
    contexts: list[JobContext], emulator: EmulatorServer, database: Database, installed: int
) -> None:
    """``GET /users/{login}`` never asks for a suspended installation's token, though it was
    heard of last; a token held from before a suspension is refused once and marks it. With
    every installation suspended the read says so: not "installed nowhere", not a 5xx."""
    state = emulator.state
    elsewhere = int(state.apps.install(APP_ID, "alice")["id"])
    record_installation(database, {"id": elsewhere, "account": {"login": "alice"}}, [])
    state.apps.suspend(installed)
    suspended = state.apps.installation_json(state.apps.installations[installed])
    record_installation(database, suspended, [])
    assert suspended_installations(database) == [installed]
    assert contexts[0].github.account("alice") is not None
    assert state.apps.token_requests == {elsewhere: 1}

    state.apps.suspend(elsewhere)  # its token, in the database, is refused from now on
    with pytest.raises(InstallationSuspended):
        contexts[1].github.account("alice")
    assert suspended_installations(database) == sorted([installed, elsewhere])
    assert state.apps.token_requests == {elsewhere: 1}
    state.apps.unsuspend(installed)
    contexts[1].app.installations()  # GitHub's list says so (as ``undersign doctor`` reads it)
    assert suspended_installations(database) == [elsewhere]


def handle(ctx: JobContext, payload: dict[str, Any]) -> None:
    """``ctx``'s process handles an ``installation`` webhook as a queue worker does."""
    body = json.dumps(payload).encode()
    parsed = parse_delivery("installation", body, "application/json", app_events=True)
    handle_app_delivery(ctx, Delivery.from_event(parsed), dt.datetime.now(dt.UTC))


def test_a_suspension_another_process_handled_is_noticed_within_seconds(
    contexts: list[JobContext],
    emulator: EmulatorServer,
    database: Database,
    clock: Clock,
    installed: int,
) -> None:
    """One process handles the ``suspend`` webhook while another holds the installation's
    token in memory: that one stops using it within STANDING_TTL seconds, without a request
    to GitHub (it kept sending it until GitHub refused it). Unsuspended, it works again at
    once. While active, a request costs no database read: the installation's row is read
    once per STANDING_TTL."""
    state = emulator.state
    handling, other = contexts
    record_installation(
        database, {"id": installed, "account": {"login": "octo-org"}}, [(None, "octo-org/widgets")]
    )
    assert other.github.get_pull("octo-org", "widgets", 1)["number"] == 1
    statements: list[str] = []
    event.listen(database.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    for _ in range(20):
        other.app.installation_token(installed)
    assert statements == []

    state.apps.suspend(installed)
    handle(handling, state.apps.installation_event(installed, "suspend"))
    clock.now += STANDING_TTL
    state.clear_requests()
    with pytest.raises(InstallationSuspended):
        other.github.get_pull("octo-org", "widgets", 1)
    assert state.api_calls() == []

    state.apps.unsuspend(installed)
    handle(handling, state.apps.installation_event(installed, "unsuspend"))
    assert other.github.get_pull("octo-org", "widgets", 1)["number"] == 1


def test_a_token_request_answered_404_for_an_installation_github_shows_is_tried_again(
    contexts: list[JobContext], emulator: EmulatorServer, database: Database, installed: int
) -> None:
    """Just after an installation is created GitHub can answer its token request 404 for a
    moment. ``GET /app/installations/{id}`` still shows it: it is kept, not forgotten until
    its repositories are seen again, and this attempt fails as one to retry (not as a
    NotFound that no retry follows); the next one gets its token."""
    state = emulator.state
    record_installation(
        database, {"id": installed, "account": {"login": "octo-org"}}, [(None, "octo-org/widgets")]
    )
    state.add_fault(
        "POST",
        rf"/app/installations/{installed}/access_tokens$",
        status=404,
        body={"message": "Not Found", "documentation_url": "https://docs.github.com/rest"},
    )
    with pytest.raises(GitHubUnavailable, match="still shows"):
        contexts[0].github.get_pull("octo-org", "widgets", 1)
    assert len(state.api_calls("GET", f"/app/installations/{installed}")) == 1
    assert installed_installations(database) == [installed]
    assert contexts[0].github.get_pull("octo-org", "widgets", 1)["number"] == 1
    assert state.apps.token_requests == {installed: 1}


def suspended_installations(database: Database) -> list[int]:
    with database.session() as session:
        return list(
            session.scalars(
                select(AppInstallation.id)
                .where(AppInstallation.suspended_at.is_not(None))
                .order_by(AppInstallation.id)
            )
        )


def installed_installations(database: Database) -> list[int]:
    with database.session() as session:
        return list(session.scalars(select(AppInstallation.id).order_by(AppInstallation.id)))


# --- configuration --------------------------------------------------------------------------


def test_malformed_key_stops_start_up_naming_the_variable(keys: Any, tmp_path: Path) -> None:
    base = {
        "UNDERSIGN_ENV": "test",
        "UNDERSIGN_INSTANCE_PATH": str(tmp_path),
        "UNDERSIGN_SECRET_KEY": "x" * 40,
        "UNDERSIGN_GITHUB_APP_ID": str(APP_ID),
    }
    with pytest.raises(ConfigError, match=r"^UNDERSIGN_GITHUB_APP_PRIVATE_KEY: not a PEM"):
        load_settings({**base, "UNDERSIGN_GITHUB_APP_PRIVATE_KEY": "-----BEGIN nonsense"})
    with pytest.raises(ConfigError, match=r"^UNDERSIGN_GITHUB_APP_PRIVATE_KEY: required"):
        load_settings(base)
    key_file = tmp_path / "app.pem"
    key_file.write_text(pem(keys[0]))
    loaded = load_settings({**base, "UNDERSIGN_GITHUB_APP_PRIVATE_KEY_FILE": str(key_file)})
    assert loaded.app_mode
    one_line = pem(keys[0]).replace("\n", "\\n")  # as squeezed into an .env file
    assert load_settings({**base, "UNDERSIGN_GITHUB_APP_PRIVATE_KEY": one_line}).app_mode
    with pytest.raises(ValueError, match="not a PEM"):
        load_private_key("")


# --- webhooks -------------------------------------------------------------------------------


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def test_app_webhooks_parse() -> None:
    created = parse_delivery(
        "installation", fixture("installation__created.json"), None, app_events=True
    )
    assert created.relevant and created.installation_id == 957387
    assert created.repositories[0] == (186853002, "Codertocat/Hello-World")
    assert created.account_login == "Codertocat"
    added = parse_delivery(
        "installation_repositories",
        fixture("installation_repositories__added.json"),
        None,
        app_events=True,
    )
    assert added.relevant and added.repositories[0][1] == "Codertocat/Space"
    rerun = parse_delivery(
        "check_run", fixture("check_run__rerequested.json"), None, app_events=True
    )
    assert rerun.relevant and rerun.kind == "check_run" and rerun.head_sha
    # The fixture's button is someone else's ("lgtm|..."), not our Re-check.
    other = parse_delivery(
        "check_run", fixture("check_run__requested_action.json"), None, app_events=True
    )
    assert not other.relevant
    ours = json.loads(fixture("check_run__requested_action.json"))
    ours["requested_action"] = {"identifier": "recheck"}
    assert parse_delivery("check_run", json.dumps(ours).encode(), None, app_events=True).relevant
    # Token mode: GitHub sends no such events to a plain webhook that matters.
    assert not parse_delivery("check_run", json.dumps(ours).encode(), None).relevant
