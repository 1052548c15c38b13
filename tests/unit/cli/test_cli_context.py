"""The command's context closes what it made, and only that."""

from __future__ import annotations

from pathlib import Path

from tests.support.databases import idle_connections

from undersign.cli import CLIContext
from undersign.config import Settings, load_settings
from undersign.db import Database


def _settings(tmp_path: Path) -> Settings:
    return load_settings(
        {
            "UNDERSIGN_ENV": "test",
            "UNDERSIGN_INSTANCE_PATH": str(tmp_path),
            "UNDERSIGN_DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "UNDERSIGN_SECRET_KEY": "s" * 40,
        }
    )


def test_close_disposes_the_database_the_context_made(tmp_path: Path) -> None:
    """Left open, a command run in-process (the tests run hundreds) kept its connection on
    the server after it ended."""
    cli = CLIContext(_settings=_settings(tmp_path))
    database = cli.database
    assert database.ping()
    assert idle_connections(database.engine) == 1
    cli.close()
    assert idle_connections(database.engine) == 0


def test_close_leaves_a_database_handed_in_to_its_owner(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    database = Database(settings.database_url or "")
    try:
        cli = CLIContext(_settings=settings, _database=database)
        assert cli.database.ping()
        cli.close()
        assert idle_connections(database.engine) == 1
        assert cli.database is database
    finally:
        database.dispose()
