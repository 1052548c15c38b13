"""Migration 0009 on a database with a company, on SQLite and PostgreSQL: the company that
covered people before is accepted, what the previous release inserts (no status) waits for
review, a rejected company frees its name, and a downgrade refuses to turn an unreviewed
company into one that covers people."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError
from tests.support.migrations import empty_database as empty_database  # the fixture
from tests.support.migrations import upgraded_with

from undersign.migrations import downgrade, upgrade

BEFORE = "0008"

SEED = [
    "INSERT INTO agreements (id, slug, title, kind, field_definitions, exempt_all_bots,"
    " agent_policy, created_at) VALUES (1, 'cla', 'CLA', 'individual', '[]', false,"
    " 'require-human', '2026-01-01 00:00:00+00:00')",
    "INSERT INTO agreements (id, slug, title, kind, field_definitions, exempt_all_bots,"
    " agent_policy, created_at, for_agreement_id) VALUES (2, 'ccla', 'CCLA', 'corporate',"
    " '[]', false, 'require-human', '2026-01-01 00:00:00+00:00', 1)",
    "INSERT INTO companies (id, agreement_id, name, name_key, address, source, signed_at)"
    " VALUES (1, 2, 'BigCorp', 'bigcorp', '', 'web', '2026-01-02 00:00:00+00:00')",
    "INSERT INTO company_approvals (company_id, kind, value, label, created_at)"
    " VALUES (1, 'org', 'bigcorp', '', '2026-01-02 00:00:00+00:00')",
]

# What the previous release's code inserts: no status.
OLD_INSERT = text(
    "INSERT INTO companies (id, agreement_id, name, name_key, address, source, signed_at)"
    " VALUES (:id, 2, :name, :key, '', 'web', '2026-01-03 00:00:00+00:00')"
)


def test_existing_companies_stay_accepted_and_new_ones_wait(empty_database: str) -> None:
    engine = upgraded_with(empty_database, BEFORE, SEED)
    try:
        with engine.begin() as connection:
            assert connection.execute(
                text("SELECT status, reviewed_at FROM companies WHERE id = 1")
            ).one() == ("accepted", None)
            assert connection.execute(text("SELECT count(*) FROM company_approvals")).scalar() == 1
            connection.execute(OLD_INSERT, {"id": 2, "name": "Squat", "key": "squat"})
            assert (
                connection.execute(text("SELECT status FROM companies WHERE id = 2")).scalar()
                == "pending"
            )
        with pytest.raises(IntegrityError), engine.begin() as connection:  # one live name
            connection.execute(OLD_INSERT, {"id": 3, "name": "BIGCORP", "key": "bigcorp"})
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(text("UPDATE companies SET status = 'maybe' WHERE id = 2"))
        with engine.begin() as connection:  # rejected: the name is free again
            connection.execute(text("UPDATE companies SET status = 'rejected' WHERE id = 2"))
            connection.execute(OLD_INSERT, {"id": 3, "name": "Squat", "key": "squat"})

        with pytest.raises(RuntimeError, match="2 company signature"):
            downgrade(empty_database, BEFORE)
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM companies WHERE id IN (2, 3)"))
        downgrade(empty_database, BEFORE)
        columns = {c["name"] for c in inspect(engine).get_columns("companies")}
        assert "status" not in columns and "reviewed_at" not in columns
        with engine.begin() as connection:
            assert connection.execute(text("SELECT name FROM companies")).scalar() == "BigCorp"
        with pytest.raises(IntegrityError), engine.begin() as connection:  # unique again
            connection.execute(OLD_INSERT, {"id": 4, "name": "BigCorp", "key": "bigcorp"})
        upgrade(empty_database)
    finally:
        engine.dispose()
