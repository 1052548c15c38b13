"""installation suspension: ``app_installations.suspended_at``, set while an account has
suspended the GitHub App's installation (GitHub refuses its token requests meanwhile)

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-30 19:45:00.000000

Nullable, no default: every recorded installation was usable when the previous release saw it,
and the previous release's code (which never writes the column) keeps working.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import undersign.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("app_installations", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("suspended_at", undersign.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("app_installations", schema=None) as batch_op:
        batch_op.drop_column("suspended_at")
