"""The ``undersign`` command's context object, shared by every command module.

Depends on config, db, runtime.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import click
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from undersign.config import ConfigError, Settings, load_settings
from undersign.db import Database, describe_error
from undersign.runtime import Runtime, build_runtime


@dataclass
class CLIContext:
    """Settings, database and runtime, each made only when a command needs it."""

    _settings: Settings | None = None
    _database: Database | None = None
    overrides: dict[str, str] = field(default_factory=dict)
    _runtime: Runtime | None = None
    _owns_database: bool = False  # made here (not handed in): ``close`` disposes it

    @property
    def settings(self) -> Settings:
        try:
            return self.settings_or_error()
        except ConfigError as exc:
            raise click.ClickException(f"configuration: {exc}") from None

    def settings_or_error(self) -> Settings:
        """The settings, or the ``ConfigError`` itself (``undersign doctor`` reports it as a
        failed check rather than stopping)."""
        if self._settings is None:
            self._settings = load_settings()
        return self._settings

    @property
    def database(self) -> Database:
        if self._database is None:
            self._database = Database(self.settings.database_url or "")
            self._owns_database = True
        return self._database

    @property
    def runtime(self) -> Runtime:
        """The queue and hooks a command's changes go through (built as the web app's)."""
        if self._runtime is None:
            self._runtime = build_runtime(self.settings, self.database)
        return self._runtime

    def close(self) -> None:
        """Let go of the runtime's queue connections, if a command built it, and of the
        database's, if this context made it. A command run in-process (tests, one command
        calling another) otherwise left its connections open on the server."""
        if self._runtime is not None:
            self._runtime.close()
            self._runtime = None
        if self._owns_database and self._database is not None:
            self._database.dispose()
            self._database = None
            self._owns_database = False


pass_cli = click.make_pass_decorator(CLIContext, ensure=True)

# PostgreSQL's SQLSTATE when a search_path (``?options=-csearch_path%3D...``) names only
# schemas that do not exist: "no schema has been selected to create in".
INVALID_SCHEMA_NAME = "3F000"


@contextmanager
def database_errors(doing: str = "") -> Iterator[None]:
    """A database the command cannot use ends as one line naming the problem and the fix,
    not a page of traceback (the server down, a wrong URL or password, an old schema)."""
    prefix = f"{doing}: " if doing else ""
    try:
        yield
    except OperationalError as exc:
        raise click.ClickException(
            f"{prefix}cannot use the database ({describe_error(exc)}); check "
            "UNDERSIGN_DATABASE_URL and that the database server is running"
        ) from None
    except SQLAlchemyError as exc:
        if getattr(getattr(exc, "orig", None), "sqlstate", None) == INVALID_SCHEMA_NAME:
            raise click.ClickException(
                f"{prefix}database error ({describe_error(exc)}); the search_path of "
                "UNDERSIGN_DATABASE_URL names no existing schema: create it first "
                "(CREATE SCHEMA name AUTHORIZATION role)"
            ) from None
        raise click.ClickException(
            f"{prefix}database error ({describe_error(exc)}); is the schema up to date "
            "(undersign db upgrade)?"
        ) from None
