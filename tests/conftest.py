"""Fixtures shared by every test: databases, the GitHub emulator, the live app, a browser.

Depends on the whole of undersign (the app is served as in production) and on
``tests/support`` for the servers and databases themselves."""

from __future__ import annotations

import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

import httpx
import pytest
from flask import Flask
from playwright.sync_api import Browser, BrowserContext, ConsoleMessage, Page, sync_playwright
from sqlalchemy import create_engine, func, select
from tests.accessibility import AccessibilityAudit
from tests.support.databases import throwaway_schema
from tests.support.emulator import DEFAULT_USERS, running_emulator
from tests.support.live import LiveServer
from tests.support.pg_leaks import register_leak_guard
from tests.support.redis_leaks import named_url, register_redis_leak_guard

from undersign.agreements.service import AgreementService, SignatureService
from undersign.config import Settings, load_settings
from undersign.db import Base, Database
from undersign.emulator import EmulatorServer, GitHubEmulator
from undersign.jobs.models import Job
from undersign.jobs.queue import ConsumerHandle, start_embedded_consumer
from undersign.migrations import load_models
from undersign.runtime import Runtime, build_runtime
from undersign.web import create_app
from undersign.web.context import RUNTIME

pytest_plugins = ["pytester"]  # the leak guards' tests (tests/unit) run throwaway suites

CLIENT_ID = "Ov23liTestClient0001"
CLIENT_SECRET = "test-client-secret-0123456789abcdef0123"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        default="sqlite",
        help="'sqlite' (default) or a PostgreSQL SQLAlchemy URL to run the database tests on",
    )


def pytest_configure(config: pytest.Config) -> None:
    # On PostgreSQL runs a test file that leaves connections open fails (its last test errors
    # at teardown) instead of the server running out of them later. SQLite runs skip it.
    server_url = str(config.getoption("--db"))
    if server_url.startswith("postgresql"):
        register_leak_guard(config, server_url)
    # The same for Redis, on the runs whose queues live there (`make test-postgres`).
    if os.environ.get("UNDERSIGN_TEST_QUEUE") == "redis":
        register_redis_leak_guard(config, redis_test_url())


@pytest.fixture(scope="session")
def db_backend(request: pytest.FixtureRequest) -> str:
    return str(request.config.getoption("--db"))


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite database with every table; each test gets a copy (fast, isolated).

    Tables come from the models; ``tests/unit/test_migrations.py`` proves the Alembic
    migrations build exactly the same schema.
    """
    path = tmp_path_factory.mktemp("template") / "template.sqlite3"
    load_models()
    engine = create_engine(f"sqlite:///{path}")
    Base.metadata.create_all(engine)
    engine.dispose()
    return path


@pytest.fixture
def database_url(request: pytest.FixtureRequest, db_backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database for one test, on SQLite or PostgreSQL (``--db``)."""
    if db_backend == "sqlite":
        template = request.getfixturevalue("sqlite_template")
        path = tmp_path / "undersign.sqlite3"
        shutil.copy(template, path)
        yield f"sqlite:///{path}"
        return
    with throwaway_schema(db_backend) as url:
        engine = create_engine(url)
        load_models()
        Base.metadata.create_all(engine)
        engine.dispose()
        yield url


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    """A GitHub emulator on a loopback port, fresh for each test."""
    with running_emulator(users=DEFAULT_USERS) as server:
        yield server


REDIS_TEST_URL = "redis://127.0.0.1:6379/0"


def redis_test_url() -> str:
    """The shared Redis the tests use (``UNDERSIGN_TEST_REDIS_URL`` overrides it)."""
    return os.environ.get("UNDERSIGN_TEST_REDIS_URL", REDIS_TEST_URL)


def queue_env_for_tests() -> dict[str, str]:
    """`make test-postgres` sets UNDERSIGN_TEST_QUEUE=redis: the queue then lives on the shared
    Redis, under a name of this test's own (other tests and engineers share that server); its
    connections carry this process's client name, which the leak guard looks for."""
    if os.environ.get("UNDERSIGN_TEST_QUEUE") != "redis":
        return {}
    return {
        "UNDERSIGN_QUEUE_URL": named_url(redis_test_url()),
        "UNDERSIGN_QUEUE_NAME": f"undersign-test-{uuid.uuid4().hex[:12]}",
    }


def make_settings(
    tmp_path: Path, base_url: str, emulator: EmulatorServer, **extra: str
) -> Settings:
    env = {
        "UNDERSIGN_ENV": "test",
        "UNDERSIGN_INSTANCE_PATH": str(tmp_path / "instance"),
        "UNDERSIGN_BASE_URL": base_url,
        "UNDERSIGN_SECRET_KEY": "test-secret-key-not-for-production-0123456789",
        "UNDERSIGN_GITHUB_URL": emulator.url,
        "UNDERSIGN_GITHUB_API_URL": emulator.api_url,
        "UNDERSIGN_GITHUB_CLIENT_ID": CLIENT_ID,
        "UNDERSIGN_GITHUB_CLIENT_SECRET": CLIENT_SECRET,
        "UNDERSIGN_WEBHOOK_SECRET": "test-webhook-secret",
        "UNDERSIGN_HTTP_TIMEOUT": "3",
        # The periodic reconciler would make GitHub calls at minute boundaries, upsetting
        # tests that count calls; tests/functional/test_reconcile.py runs it explicitly.
        "UNDERSIGN_RECONCILE_INTERVAL": "0",
        **queue_env_for_tests(),
        **extra,
    }
    return load_settings(env)


@dataclass
class Live:
    """The running app, its emulator, and what they were built with."""

    url: str
    server: LiveServer
    emulator: EmulatorServer
    settings: Settings
    database: Database

    @property
    def app(self) -> Flask:
        """The Flask app being served."""
        assert self.server.app is not None
        return self.server.app

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=10)


class LiveFactory:
    """Starts the real app over HTTP on loopback ports, as many as a test needs; the
    ``live_factory`` fixture stops every one at teardown.

    Each app gets its own instance directory under the test's ``tmp_path`` and, unless told
    otherwise, the test's database and an OAuth client on the emulator for its callback."""

    def __init__(self, tmp_path: Path, emulator: EmulatorServer, database: Database) -> None:
        self.tmp_path = tmp_path
        self.emulator = emulator
        self.database = database
        self.started: list[Live] = []

    def __call__(
        self,
        *,
        database: Database | None = None,
        host: str = "127.0.0.1",
        oauth_secret: str | None = CLIENT_SECRET,
        replace: Mapping[str, Any] | None = None,
        extras: Mapping[str, Any] | None = None,
        **env: str,
    ) -> Live:
        """One more app. ``env``: UNDERSIGN_* variables over the test defaults; ``replace``:
        settings fields changed after loading (values the environment cannot spell);
        ``host``: the name its base URL uses (it always binds 127.0.0.1); ``oauth_secret``:
        the secret the emulator's OAuth client for it expects (None registers no client);
        ``extras``: app extensions handed to ``create_app``."""
        database = database or self.database
        server = LiveServer()
        base_url = f"http://{host}:{server.port}"
        instance = self.tmp_path / f"app{len(self.started)}" if self.started else self.tmp_path
        env = {"UNDERSIGN_DATABASE_URL": database.url, **env}
        settings = make_settings(instance, base_url, self.emulator, **env)
        if replace:
            settings = settings.replace(**replace)
        if oauth_secret is not None:
            assert settings.github_client_id, "an OAuth client needs a client id"
            self.emulator.state.add_oauth_client(
                settings.github_client_id, oauth_secret, [settings.callback_url]
            )
        server.start(create_app(settings, database=database, extras=dict(extras or {})))
        live = Live(base_url, server, self.emulator, settings, database)
        self.started.append(live)
        return live

    def stop(self) -> None:
        """Stop every server, then close its app's runtime (the queue's connections); the
        database is the test's, which the ``database`` fixture disposes."""
        for live in reversed(self.started):
            live.server.stop()
            runtime: Runtime = live.app.extensions[RUNTIME]
            runtime.close()


@pytest.fixture
def live_factory(
    tmp_path: Path, emulator: EmulatorServer, database: Database
) -> Iterator[LiveFactory]:
    """Start real apps with ``live_factory(**overrides)``; every one stops after the test."""
    factory = LiveFactory(tmp_path, emulator, database)
    yield factory
    factory.stop()


@pytest.fixture
def live(live_factory: LiveFactory) -> Live:
    """The real app served over HTTP on loopback, signed in through the emulator."""
    return live_factory()


def page_errors(page: Page) -> list[str]:
    """The errors a person would see in the browser console on ``page`` (a missing favicon
    included) and the scripts' uncaught exceptions, collected as they happen."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            problems.append(f"{message.text} ({message.location.get('url')})")

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def sign_in(
    live: Live, client: httpx.Client, login: str, next_path: str | None = None
) -> httpx.Response:
    """Run the whole OAuth web flow over HTTP, approving on the emulator as ``login``."""
    live.emulator.state.auto_approve_as = login
    params = {"next": next_path} if next_path else None
    to_github = client.get("/login", params=params)
    assert to_github.status_code == 302, to_github.text
    back = client.get(to_github.headers["location"])
    assert back.status_code == 302, back.text
    callback = back.headers["location"]
    assert urlsplit(callback).netloc == urlsplit(live.url).netloc
    landed = client.get(callback)
    assert landed.status_code == 302, landed.text
    return client.get(landed.headers["location"])


# --------------------------------------------------------------------------------------------
# Enforcement: the live app + emulator + a real queue consumer, wired like production
# --------------------------------------------------------------------------------------------

BOT_LOGIN = "undersign-bot"
AGREEMENT_SLUG = "individual-cla"


@dataclass
class CLAService:
    """Everything a webhook-to-status test needs; see the ``cla`` fixture."""

    live: Live
    settings: Settings  # what the workers run with (the bot token included)
    consumer: ConsumerHandle | None
    runtime: Runtime  # built from ``settings``: its queue shares the live app's storage

    @property
    def state(self) -> GitHubEmulator:
        return self.live.emulator.state

    @property
    def database(self) -> Database:
        return self.live.database

    @property
    def hook_url(self) -> str:
        return f"{self.live.url}/webhooks/github"

    def deliver(
        self, event: str, payload: dict[str, Any] | bytes, **options: Any
    ) -> tuple[int | None, str]:
        """Send a signed delivery from the emulator, as GitHub would (``options``: those of
        ``GitHubEmulator.deliver_webhook``)."""
        return self.state.deliver_webhook(
            self.hook_url, event, payload, secret=self.settings.webhook_secret, **options
        )

    def sign(self, login: str) -> None:
        """``login`` signs the agreement through the agreements service, with the hook the
        signing view uses."""
        user = self.live.emulator.state.user(login)
        with self.database.session() as session:
            version = AgreementService(session).current_version(AGREEMENT_SLUG)
            SignatureService(session, on_change=self.runtime.signature_hook(session)).sign(
                AGREEMENT_SLUG,
                github_id=user["id"],
                login=login,
                name=login.title(),
                email=f"{login}@example.com",
                version_sha256=version.text_sha256,
                agreed=True,
            )

    def revoke(self, login: str) -> None:
        with self.database.session() as session:
            SignatureService(session, on_change=self.runtime.signature_hook(session)).revoke(
                (AGREEMENT_SLUG, login), by="test", reason="testing revocation"
            )

    def statuses(self, repo: str, sha: str, context: str = "license/cla") -> list[dict[str, Any]]:
        """Our statuses on ``sha``, newest first."""
        return [
            s
            for s in self.live.emulator.state.statuses(repo, sha)
            if str(s["context"]).lower() == context
        ]

    def status(self, repo: str, sha: str) -> dict[str, Any] | None:
        found = self.statuses(repo, sha)
        return found[0] if found else None

    def status_state(self, repo: str, sha: str) -> str | None:
        """The state of our newest status on ``sha`` ("success", "failure", ...); None if
        there is none yet (which no expected state equals)."""
        found = self.status(repo, sha)
        return None if found is None else str(found["state"])

    def wait_for(
        self, predicate: Callable[[], object], timeout: float = 15.0, what: str = "condition"
    ) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def wait_idle(self, timeout: float = 15.0) -> None:
        """Until every job row is done or failed."""

        def idle() -> bool:
            with self.database.session() as session:
                busy = session.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.status.in_(("queued", "running")))
                )
            return busy == 0

        self.wait_for(idle, timeout, "the queue to drain")

    def jobs(self) -> list[Job]:
        with self.database.session() as session:
            return list(session.scalars(select(Job).order_by(Job.id)))


def sign_quietly(database: Database, slug: str, login: str, github_id: int) -> None:
    """``login`` signs ``slug`` through the service, with no hook: no trigger hears of it."""
    with database.session() as session:
        version = AgreementService(session).current_version(slug)
        SignatureService(session).sign(
            slug,
            github_id=github_id,
            login=login,
            name=login.title(),
            email=f"{login}@example.com",
            version_sha256=version.text_sha256,
            agreed=True,
        )


def cla_settings(live: Live, token: str, **changes: object) -> Settings:
    defaults: dict[str, object] = {
        "github_token": token,
        "job_retry_base_ms": 50,
        "job_max_attempts": 3,
        "job_lease": 30,
    }
    defaults.update(changes)
    return live.settings.replace(**defaults)


@pytest.fixture
def cla_repo(live: Live) -> str:
    """octo-org/widgets, covered by the agreement, the bot a writer there; token issued."""
    state = live.emulator.state
    state.add_user(BOT_LOGIN, name="undersign", email="bot@undersign.invalid")
    for login in ("dave", "erin", "maint"):
        state.add_user(login, name=login.title(), email=f"{login}@example.com")
    state.add_org("octo-org", members=["maint"])
    for repo in ("octo-org/widgets", "octo-org/gadgets"):
        state.add_repo(repo)
        state.add_collaborator(repo, BOT_LOGIN, "write")
    with live.database.session() as session:
        agreements = AgreementService(session)
        agreements.add_or_update(AGREEMENT_SLUG, "Individual CLA", "You agree to license it.")
        agreements.link_org("octo-org", AGREEMENT_SLUG)
    return "octo-org/widgets"


class CLAFactory(Protocol):
    """Builds a ``CLAService``: ``start`` its embedded consumer or not; ``changes`` are
    settings fields over ``cla_settings``' defaults."""

    def __call__(self, start: bool = True, **changes: Any) -> CLAService: ...


@pytest.fixture
def cla_factory(live: Live, cla_repo: str) -> Iterator[CLAFactory]:
    """Build a ``CLAService`` with its embedded consumer (settings overridable); stops it."""
    started: list[ConsumerHandle] = []
    runtimes: list[Runtime] = []

    def build(start: bool = True, **changes: Any) -> CLAService:
        token = live.emulator.state.issue_token(BOT_LOGIN)
        settings = cla_settings(live, token, **changes)
        runtime = build_runtime(settings, live.database)
        runtimes.append(runtime)
        consumer = start_embedded_consumer(runtime.queue, workers=2) if start else None
        if consumer is not None:
            started.append(consumer)
        return CLAService(live, settings, consumer, runtime)

    yield build
    for consumer in started:
        consumer.stop()
    for runtime in runtimes:
        runtime.queue.huey.flush()  # no keys left in Redis
        runtime.close()


@pytest.fixture
def cla(cla_factory: CLAFactory) -> CLAService:
    return cla_factory()


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Headless Debian Chromium driven by Playwright (no browser download)."""
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield instance
        instance.close()


@dataclass
class BrowserPage:
    page: Page
    csp_violations: list[str]
    accessibility: AccessibilityAudit


@pytest.fixture
def audited_context(browser: Browser) -> Iterator[Callable[..., BrowserContext]]:
    """Makes clean browser contexts whose every page axe-core scans; a test fails if any page
    it loaded has an accessibility violation."""
    audits: list[AccessibilityAudit] = []
    contexts: list[BrowserContext] = []

    def make(**options: Any) -> BrowserContext:
        audit = AccessibilityAudit()
        context = audit.attach(browser.new_context(**options))
        audits.append(audit)
        contexts.append(context)
        return context

    yield make
    for context in contexts:
        context.close()
    for audit in audits:
        audit.assert_clean()


@pytest.fixture
def page(browser: Browser) -> Iterator[BrowserPage]:
    """A clean browser context; every console message about CSP is collected, and every page
    is scanned by axe-core (any violation fails the test)."""
    audit = AccessibilityAudit()
    context = audit.attach(browser.new_context())
    tab = context.new_page()
    violations: list[str] = []
    tab.on(
        "console",
        lambda message: (
            violations.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    yield BrowserPage(tab, violations, audit)
    context.close()
    audit.assert_clean()
