"""Alembic migrations, shipped inside the package and run by ``undersign db upgrade``.

Depends on every package's ``models`` module (to know the whole schema) and on ``db``.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, MetaData, make_url, text

# Every package's tables, so Base.metadata is the whole schema (Alembic, tests, start-up).
from undersign.accounts import models as accounts_models
from undersign.agreements import models as agreements_models
from undersign.auth import models as auth_models
from undersign.db import Base, make_engine
from undersign.enforcement import models as enforcement_models
from undersign.github import models as github_models
from undersign.jobs import models as jobs_models
from undersign.observability import models as observability_models

MODEL_MODULES = (
    accounts_models,
    agreements_models,
    auth_models,
    enforcement_models,
    github_models,
    jobs_models,
    observability_models,
)

HERE = Path(__file__).parent
#: pg_advisory_lock key of ``undersign db upgrade`` (any constant: "undersi" in hex).
MIGRATION_LOCK_KEY = 0x756E6465727369


def load_models() -> MetaData:
    """The metadata of every table undersign owns (importing this package registered them)."""
    return Base.metadata


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(HERE))
    # ConfigParser interpolation would choke on % in passwords.
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Migrate, one process at a time: every web unit may run this at start-up, and two
    processes creating the same tables at once would fail (or half-migrate)."""
    config = alembic_config(database_url)
    # SQLite: the file lock comes before the first connection, whose pragmas (switching a
    # fresh file to WAL) would otherwise race the other processes' ("database is locked").
    with _sqlite_file_lock(database_url):
        engine = make_engine(database_url)
        try:
            with (
                engine.connect() as connection,
                _advisory_lock(connection, database_url),
                _sqlite_references_checked_after(connection),
            ):
                config.attributes["connection"] = connection
                command.upgrade(config, revision)
                connection.commit()
        finally:
            engine.dispose()


@contextmanager
def _advisory_lock(connection: Connection, database_url: str) -> Iterator[None]:
    """PostgreSQL: a session-level advisory lock (it outlives the migration's transactions).
    The process that waited finds the schema up to date and does nothing."""
    if make_url(database_url).get_backend_name() != "postgresql":
        yield
        return
    connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    connection.commit()
    try:
        yield
    finally:
        connection.rollback()
        connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY})
        connection.commit()


@contextmanager
def _sqlite_file_lock(database_url: str) -> Iterator[None]:
    """SQLite file databases: an exclusive lock on a file beside the database."""
    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        yield
        return
    with open(f"{url.database}.migrate-lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _sqlite_references_checked_after(connection: Connection) -> Iterator[None]:
    """On SQLite, foreign keys are not enforced while migrating, and every reference is
    checked before they are again: batch mode rebuilds a table by copying it and dropping
    the old one, which SQLite refuses while other tables' rows reference it (0008 rebuilds
    ``agreements``). The pragma only takes effect outside a transaction."""
    if connection.dialect.name != "sqlite":
        yield
        return
    connection.exec_driver_sql("PRAGMA foreign_keys=OFF")
    connection.commit()
    try:
        yield
        dangling = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
        connection.commit()
        if dangling:
            raise RuntimeError(f"the migration left rows with dangling references: {dangling[:5]}")
    finally:
        if connection.in_transaction():
            connection.rollback()
        connection.exec_driver_sql("PRAGMA foreign_keys=ON")
        connection.commit()


def downgrade(database_url: str, revision: str) -> None:
    config = alembic_config(database_url)
    engine = make_engine(database_url)
    try:
        with engine.connect() as connection, _sqlite_references_checked_after(connection):
            config.attributes["connection"] = connection
            command.downgrade(config, revision)
            connection.commit()
    finally:
        engine.dispose()


def head_revision() -> str | None:
    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_up_to_date(engine: Engine) -> bool:
    return current_revision(engine) == head_revision()
