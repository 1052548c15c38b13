"""Alembic migrations build from empty on SQLite and PostgreSQL, and agree with the models."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text
from tests.support.migrations import empty_database as empty_database  # the fixture

from undersign.db import Base
from undersign.migrations import downgrade, head_revision, load_models, upgrade


def test_upgrade_from_empty_matches_the_models(empty_database: str):
    upgrade(empty_database)
    load_models()
    engine = create_engine(empty_database)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": True})
            assert context.get_current_revision() == head_revision()
            differences = compare_metadata(context, Base.metadata)
        assert differences == []
        assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_downgrade_to_empty_and_up_again(empty_database: str):
    upgrade(empty_database)
    downgrade(empty_database, "base")
    engine = create_engine(empty_database)
    try:
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    finally:
        engine.dispose()
    upgrade(empty_database)


def test_a_sqlite_upgrade_that_leaves_a_dangling_reference_fails(tmp_path: Path) -> None:
    """SQLite migrates with foreign keys off (batch mode rebuilds tables that others
    reference); the check before they are on again refuses a dangling reference."""
    url = f"sqlite:///{tmp_path / 'dangling.sqlite3'}"
    upgrade(url, "0007")
    engine = create_engine(url)  # a plain engine: SQLite does not enforce foreign keys
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO agreement_versions (id, agreement_id, number, text, text_sha256,"
                    " change_type, created_at, published_at) VALUES (1, 999, 1, 'T', 'abc',"
                    " 'material', '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00')"
                )
            )
    finally:
        engine.dispose()
    with pytest.raises(RuntimeError, match="dangling references"):
        upgrade(url)
