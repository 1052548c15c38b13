"""an append-only ``audit_log``: every change to an agreement made through the console or the
command line (who, what, the value before and after, when)

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 03:40:00.000000

The previous release's code still runs against this schema: it never reads the new table
(its changes are simply not audited).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import undersign.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("actor", sa.String(length=40), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("before", sa.JSON(), nullable=True),
        sa.Column("after", sa.JSON(), nullable=True),
        sa.Column("created_at", undersign.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agreement_id"], ["agreements.id"], name=op.f("fk_audit_log_agreement_id_agreements")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index("ix_audit_log_agreement_id_id", "audit_log", ["agreement_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_audit_log_agreement_id_id", table_name="audit_log")
    op.drop_table("audit_log")
