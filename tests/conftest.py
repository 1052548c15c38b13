"""Fixtures shared by every test: databases, the GitHub emulator, the live app, a browser."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright
from sqlalchemy import create_engine, text
from tests.accessibility import AccessibilityAudit
from tests.support.live import LiveServer

from undersign.agreements.service import AgreementService, SignatureService
from undersign.config import Settings, load_settings
from undersign.db import Base, Database
from undersign.emulator import EmulatorServer, GitHubEmulator
from undersign.migrations import load_models
from undersign.runtime import Runtime

CLIENT_ID = "Ov23liTestClient0001"
CLIENT_SECRET = "test-client-secret-0123456789abcdef0123"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--db",
        default="sqlite",
        help="'sqlite' (default) or a PostgreSQL SQLAlchemy URL to run the database tests on",
    )


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
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(db_backend)
    with admin.begin() as connection:
        connection.execute(text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in db_backend else "?"
    url = f"{db_backend}{separator}options=-csearch_path%3D{schema}"
    engine = create_engine(url)
    load_models()
    Base.metadata.create_all(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.begin() as connection:
            connection.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        admin.dispose()


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    """A GitHub emulator on a loopback port, fresh for each test."""
    server = EmulatorServer(GitHubEmulator(), host="127.0.0.1", port=0).start()
    for login in ("alice", "bob", "carol"):
        server.state.add_user(login, name=login.title(), email=f"{login}@example.com")
    yield server
    server.stop()


REDIS_TEST_URL = "redis://127.0.0.1:6379/0"


def queue_env_for_tests() -> dict[str, str]:
    """`make test-postgres` sets UNDERSIGN_TEST_QUEUE=redis: the queue then lives on the shared
    Redis, under a name of this test's own (other tests and engineers share that server)."""
    if os.environ.get("UNDERSIGN_TEST_QUEUE") != "redis":
        return {}
    return {
        "UNDERSIGN_QUEUE_URL": os.environ.get("UNDERSIGN_TEST_REDIS_URL", REDIS_TEST_URL),
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

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=10)


@pytest.fixture
def live(tmp_path: Path, emulator: EmulatorServer, database: Database) -> Iterator[Live]:
    """The real app served over HTTP on loopback, signed in through the emulator."""
    from undersign.web import create_app

    server = LiveServer()
    settings = make_settings(tmp_path, server.url, emulator, UNDERSIGN_DATABASE_URL=database.url)
    emulator.state.add_oauth_client(CLIENT_ID, CLIENT_SECRET, [settings.callback_url])
    server.start(create_app(settings, database=database))
    yield Live(server.url, server, emulator, settings, database)
    server.stop()


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
    consumer: object
    runtime: Runtime  # built from ``settings``: its queue shares the live app's storage

    @property
    def state(self) -> object:
        return self.live.emulator.state

    @property
    def database(self) -> Database:
        return self.live.database

    @property
    def hook_url(self) -> str:
        return f"{self.live.url}/webhooks/github"

    def deliver(self, event: str, payload: object, **kwargs: object) -> tuple[int | None, str]:
        """Send a signed delivery from the emulator, as GitHub would."""
        return self.live.emulator.state.deliver_webhook(  # type: ignore[no-any-return]
            self.hook_url, event, payload, secret=self.settings.webhook_secret, **kwargs
        )

    def sign(self, login: str) -> None:
        """``login`` signs the agreement through the agreements service, with the hook the
        signing view uses."""
        from undersign.agreements.service import AgreementService, SignatureService

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
        from undersign.agreements.service import SignatureService

        with self.database.session() as session:
            SignatureService(session, on_change=self.runtime.signature_hook(session)).revoke(
                (AGREEMENT_SLUG, login), by="test", reason="testing revocation"
            )

    def statuses(
        self, repo: str, sha: str, context: str = "license/cla"
    ) -> list[dict[str, object]]:
        """Our statuses on ``sha``, newest first."""
        return [
            s
            for s in self.live.emulator.state.statuses(repo, sha)
            if str(s["context"]).lower() == context
        ]

    def status(self, repo: str, sha: str) -> dict[str, object] | None:
        found = self.statuses(repo, sha)
        return found[0] if found else None

    def wait_for(self, predicate: object, timeout: float = 15.0, what: str = "condition") -> None:
        import time

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():  # type: ignore[operator]
                return
            time.sleep(0.05)
        raise AssertionError(f"timed out waiting for {what}")

    def wait_idle(self, timeout: float = 15.0) -> None:
        """Until every job row is done or failed."""
        from sqlalchemy import func, select

        from undersign.jobs.models import Job

        def idle() -> bool:
            with self.database.session() as session:
                busy = session.scalar(
                    select(func.count())
                    .select_from(Job)
                    .where(Job.status.in_(("queued", "running")))
                )
            return busy == 0

        self.wait_for(idle, timeout, "the queue to drain")

    def jobs(self) -> list[object]:
        from sqlalchemy import select

        from undersign.jobs.models import Job

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
    from undersign.agreements.service import AgreementService

    with live.database.session() as session:
        agreements = AgreementService(session)
        agreements.add_or_update(AGREEMENT_SLUG, "Individual CLA", "You agree to license it.")
        agreements.link_org("octo-org", AGREEMENT_SLUG)
    return "octo-org/widgets"


@pytest.fixture
def cla_factory(live: Live, cla_repo: str) -> Iterator[object]:
    """Build a ``CLAService`` with its embedded consumer (settings overridable); stops it."""
    from undersign.jobs.queue import start_embedded_consumer
    from undersign.runtime import build_runtime

    started: list[object] = []
    runtimes: list[Runtime] = []

    def build(start: bool = True, **changes: object) -> CLAService:
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
def cla(cla_factory: object) -> CLAService:
    return cla_factory()  # type: ignore[operator,no-any-return]


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
