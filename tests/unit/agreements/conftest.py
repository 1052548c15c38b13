"""Database fixtures for the agreements tests: every test runs on SQLite and on PostgreSQL.

PostgreSQL gets a fresh, randomly named schema per test module (selected with
``search_path``) and drops it afterwards, so parallel runs and other suites sharing the
``test`` database never see each other's tables. Each test's session lives inside a
transaction that is rolled back; CLI tests, which commit, use ``clean_database`` instead.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session
from tests.support.databases import POSTGRES_URL, throwaway_schema

from undersign.agreements.models import Agreement, AgreementVersion, Signature
from undersign.agreements.service import AgreementService, ChangeType, SignatureService
from undersign.db import Base, Database
from undersign.migrations import load_models

TEXT_V1 = "# Contributor License Agreement\n\nYou grant us a licence to your contributions.\n"


@pytest.fixture(
    scope="module",
    params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
)
def database(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    load_models()
    if request.param == "sqlite":
        path = tmp_path_factory.mktemp("agreements-db") / "test.sqlite3"
        db = Database(f"sqlite:///{path}")
        Base.metadata.create_all(db.engine)
        yield db
        db.dispose()
        return

    # The suite-wide ``--db`` option (tests/conftest.py) may name the PostgreSQL server.
    option = str(request.config.getoption("--db", default="sqlite"))
    server_url = option if option.startswith("postgresql") else POSTGRES_URL
    # No skip when the server is down: the PostgreSQL run is part of the suite (.ci/run
    # starts the server), so an unreachable server must fail loudly.
    with throwaway_schema(server_url, prefix="test_agreements") as url:
        db = Database(url)
        try:
            Base.metadata.create_all(db.engine)
            yield db
        finally:
            db.dispose()


@pytest.fixture
def session(database: Database) -> Iterator[Session]:
    """A session whose work is rolled back after the test (services only flush)."""
    with database.engine.connect() as connection:
        transaction = connection.begin()
        session = Session(bind=connection, expire_on_commit=False)
        try:
            yield session
        finally:
            session.close()
            # A failed flush (the constraint tests) already rolled the transaction back.
            if transaction.is_active:
                transaction.rollback()


@pytest.fixture
def clean_database(database: Database) -> Iterator[Database]:
    """The module's database, emptied after the test (for code that commits)."""
    yield database
    with database.engine.begin() as connection:
        for table in reversed(Base.metadata.sorted_tables):
            connection.execute(table.delete())


@pytest.fixture
def agreements(session: Session) -> AgreementService:
    return AgreementService(session)


@pytest.fixture
def events() -> list[tuple[int, str]]:
    return []


@pytest.fixture
def signatures(session: Session, events: list[tuple[int, str]]) -> SignatureService:
    return SignatureService(
        session, on_change=lambda github_id, event: events.append((github_id, event))
    )


@pytest.fixture
def make_agreement(
    agreements: AgreementService,
) -> Callable[..., tuple[Agreement, AgreementVersion]]:
    def make(
        slug: str = "cla",
        text: str = TEXT_V1,
        fields: Any = None,
        change_type: ChangeType = "material",
    ) -> tuple[Agreement, AgreementVersion]:
        agreement, version, _ = agreements.add_or_update(
            slug,
            f"{slug.upper()} agreement",
            text,
            fields,
            change_type,
        )
        return agreement, version

    return make


@pytest.fixture
def sign(signatures: SignatureService, agreements: AgreementService) -> Callable[..., Signature]:
    """Sign the current version of an agreement with valid defaults; returns the signature."""

    def do_sign(
        slug: str = "cla", github_id: int = 1001, login: str = "alice", **overrides: Any
    ) -> Signature:
        values: dict[str, Any] = {
            "github_id": github_id,
            "login": login,
            "name": "Alice Example",
            "email": "alice@example.org",
            "version_sha256": agreements.current_version(slug).text_sha256,
            "agreed": True,
            "ip_address": "192.0.2.10",
            "user_agent": "pytest",
        }
        values.update(overrides)
        return signatures.sign(slug, **values).signature

    return do_sign
