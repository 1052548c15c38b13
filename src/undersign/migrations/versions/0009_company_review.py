"""company review: ``companies.status`` (``pending`` until an admin accepts or rejects a company
that signed on the web; only an accepted company covers anyone) and ``reviewed_at``; the
one-company-per-name rule leaves rejected companies out, so their name may be signed again

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-30 09:30:00.000000

Existing companies become ``accepted``: they covered people before, and still do. The column's
server default is ``pending``, so the previous release's code (which inserts no status) keeps
working and what it records waits for a review.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import undersign.db

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

LIVE_NAME_INDEX = "uq_companies_agreement_live_name"


def upgrade() -> None:
    with op.batch_alter_table("companies", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=10), nullable=False, server_default="accepted")
        )
        batch_op.add_column(
            sa.Column("reviewed_at", undersign.db.UTCDateTime(timezone=True), nullable=True)
        )
    with op.batch_alter_table("companies", schema=None) as batch_op:
        batch_op.alter_column(
            "status",
            existing_type=sa.String(length=10),
            existing_nullable=False,
            server_default="pending",
        )
        batch_op.create_check_constraint("status", "status IN ('pending', 'accepted', 'rejected')")
        batch_op.drop_constraint("uq_companies_agreement_name", type_="unique")
    # Made after the batch: SQLite's table copy need not keep a partial index's WHERE clause.
    op.create_index(
        LIVE_NAME_INDEX,
        "companies",
        ["agreement_id", "name_key"],
        unique=True,
        sqlite_where=sa.text("status <> 'rejected'"),
        postgresql_where=sa.text("status <> 'rejected'"),
    )


def downgrade() -> None:
    # The previous release knows no review: a pending or rejected company would cover people
    # there, and two companies may share a name. Refuse rather than widen coverage.
    unreviewed = (
        op.get_bind()
        .execute(sa.text("SELECT count(*) FROM companies WHERE status <> 'accepted'"))
        .scalar_one()
    )
    if unreviewed:
        raise RuntimeError(
            f"{unreviewed} company signature(s) are pending or rejected, which the previous "
            "release would count as covering people: accept or delete them first"
        )
    op.drop_index(LIVE_NAME_INDEX, table_name="companies")
    with op.batch_alter_table("companies", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            "uq_companies_agreement_name", ["agreement_id", "name_key"]
        )
        batch_op.drop_constraint(batch_op.f("ck_companies_status"), type_="check")
        batch_op.drop_column("reviewed_at")
        batch_op.drop_column("status")
