"""per-agreement bot ids, the all-bots opt-in and the agent policy; the opener and base
of each pull request

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-29 23:10:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agreements", schema=None) as batch_op:
        # NULL: the documented default list of well-known bots.
        batch_op.add_column(sa.Column("exempt_bot_ids", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("exempt_all_bots", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column(
                "agent_policy",
                sa.String(length=20),
                nullable=False,
                server_default="require-human",
            )
        )
        batch_op.create_check_constraint(
            op.f("ck_agreements_agent_policy"), "agent_policy IN ('require-human', 'refuse')"
        )
    with op.batch_alter_table("pull_request_checks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("opener", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("base_ref", sa.String(length=255), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pull_request_checks", schema=None) as batch_op:
        batch_op.drop_column("base_ref")
        batch_op.drop_column("opener")
    with op.batch_alter_table("agreements", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_agreements_agent_policy"), type_="check")
        batch_op.drop_column("agent_policy")
        batch_op.drop_column("exempt_all_bots")
        batch_op.drop_column("exempt_bot_ids")
