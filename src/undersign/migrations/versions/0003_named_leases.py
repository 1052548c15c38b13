"""a ``leases`` table for work without a row of its own (the reconciler's turn, the purge),
which borrowed rows of ``github_rate_gates`` until now

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 02:30:00.000000

The previous release's code still runs against this schema (it ignores ``leases``). The rows
its turn leases left in ``github_rate_gates`` stay, inert: a gate is only ever read by the
SHA-256 of a token, and those keys are not hashes.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import undersign.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=True),
        sa.Column("expires_at", undersign.db.UTCDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_leases")),
    )


def downgrade() -> None:
    op.drop_table("leases")
