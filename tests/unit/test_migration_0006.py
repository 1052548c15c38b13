"""Migration 0006 on a database with data, on SQLite and PostgreSQL: existing links enforce,
existing signatures keep their hash, the partial "one active signature" index survives the
table copy (SQLite), and a downgrade refuses to drop imported signatures."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from tests.support.migrations import empty_database as empty_database  # the fixture
from tests.support.migrations import upgraded_with

from undersign.migrations import downgrade

BEFORE = "0005"


SEED = [
    "INSERT INTO agreements (id, slug, title, kind, field_definitions, exempt_all_bots,"
    " agent_policy, created_at) VALUES (1, 'cla', 'CLA', 'individual', '[]', false,"
    " 'require-human', '2026-01-01 00:00:00+00:00')",
    "INSERT INTO agreement_versions (id, agreement_id, number, text, text_sha256, change_type,"
    " created_at, published_at) VALUES (1, 1, 1, 'Text', 'abc', 'material',"
    " '2026-01-01 00:00:00+00:00', '2026-01-01 00:00:00+00:00')",
    "INSERT INTO signatures (version_id, github_id, login, name, email, field_values,"
    " text_sha256, signed_at) VALUES (1, 42, 'octo', 'Octo', 'o@example.com', '{}', 'abc',"
    " '2026-01-02 00:00:00+00:00')",
    "INSERT INTO repo_links (id, full_name, agreement_id, exempt_org_members,"
    " exempt_collaborators, created_at) VALUES (1, 'acme/widgets', 1, false, false,"
    " '2026-01-01 00:00:00+00:00')",
]


INSERT_SIGNATURE = text(
    "INSERT INTO signatures (version_id, github_id, login, name, email, field_values,"
    " text_sha256, signed_at, import_source, revoked_at) VALUES (1, :github_id, 'x', '', '',"
    " '{}', :sha, '2026-01-03 00:00:00+00:00', :source, :revoked_at)"
)


def signature(
    github_id: int, *, sha: str | None, source: str | None, revoked: bool
) -> dict[str, object]:
    """The parameters of ``INSERT_SIGNATURE``."""
    revoked_at = "2026-01-04 00:00:00+00:00" if revoked else None
    return {"github_id": github_id, "sha": sha, "source": source, "revoked_at": revoked_at}


def test_upgrade_keeps_data_and_rules(empty_database: str) -> None:
    engine = upgraded_with(empty_database, BEFORE, SEED)
    try:
        with engine.begin() as connection:
            assert connection.execute(
                text("SELECT mode, report_comments FROM repo_links")
            ).one() == ("enforce", False)
            assert connection.execute(
                text("SELECT text_sha256, import_source FROM signatures")
            ).one() == ("abc", None)
            # An imported signature may lack the hash; a revoked one leaves room for another.
            connection.execute(INSERT_SIGNATURE, signature(7, sha=None, source="csv", revoked=True))
            connection.execute(
                INSERT_SIGNATURE, signature(7, sha=None, source="csv", revoked=False)
            )
        for bad in (
            signature(42, sha="abc", source=None, revoked=False),  # a second active one
            signature(8, sha=None, source=None, revoked=False),  # neither hash nor provenance
        ):
            with pytest.raises(IntegrityError), engine.begin() as connection:
                connection.execute(INSERT_SIGNATURE, bad)
        with pytest.raises(IntegrityError), engine.begin() as connection:
            connection.execute(text("UPDATE repo_links SET mode = 'loud'"))

        with pytest.raises(RuntimeError, match="2 imported signature"):
            downgrade(empty_database, BEFORE)
        with engine.begin() as connection:
            connection.execute(text("DELETE FROM signatures WHERE import_source IS NOT NULL"))
        downgrade(empty_database, BEFORE)
        with engine.begin() as connection:
            assert connection.execute(text("SELECT count(*) FROM signatures")).scalar() == 1
            with pytest.raises(IntegrityError):  # the partial index is back, still partial
                connection.execute(text(SEED[2]))
    finally:
        engine.dispose()
