"""An empty database for the migration tests (the ``empty_database`` fixture, imported by the
test modules that use it), on SQLite and on a throwaway PostgreSQL schema, and a database
brought to the newest revision with data written at an older one.

Depends on ``tests.support.databases`` and ``undersign.migrations``."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from tests.support.databases import throwaway_schema

from undersign.migrations import upgrade


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """The URL of a database without a table: a SQLite file, then a PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'migrate.sqlite3'}"
        return
    with throwaway_schema(prefix="m") as url:
        yield url


def upgraded_with(url: str, before: str, seed: Iterable[str]) -> Engine:
    """Upgrade ``url`` to revision ``before``, run the ``seed`` statements (what a database of
    that release holds), then upgrade to the newest: an engine on it (the caller disposes of it)."""
    upgrade(url, before)
    engine = create_engine(url)
    try:
        with engine.begin() as connection:
            for statement in seed:
                connection.execute(text(statement))
        upgrade(url)
    except BaseException:
        engine.dispose()
        raise
    return engine
