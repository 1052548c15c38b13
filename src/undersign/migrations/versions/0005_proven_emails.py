"""proven email addresses (``proven_emails``), the author addresses of each pull request
(``pull_request_emails``), and ``audit_log`` rows that are a person's, not an agreement's

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 05:40:00.000000

The previous release's code still runs against this schema: it never reads the new tables,
and it only ever writes ``audit_log`` rows with an agreement.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import undersign.db

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "proven_emails",
        sa.Column("address", sa.String(length=320), nullable=False),
        sa.Column("github_id", sa.BigInteger(), nullable=False),
        sa.Column("domain", sa.String(length=255), nullable=False),
        sa.Column("proven_at", undersign.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("address", name=op.f("pk_proven_emails")),
    )
    with op.batch_alter_table("proven_emails", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_proven_emails_github_id"), ["github_id"])
        batch_op.create_index(batch_op.f("ix_proven_emails_domain"), ["domain"])

    op.create_table(
        "pull_request_emails",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("check_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=320), nullable=False),
        sa.Column("owner_id", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["check_id"],
            ["pull_request_checks.id"],
            name=op.f("fk_pull_request_emails_check_id_pull_request_checks"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pull_request_emails")),
        sa.UniqueConstraint("check_id", "email", name="uq_pull_request_emails_check_email"),
    )
    with op.batch_alter_table("pull_request_emails", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pull_request_emails_check_id"), ["check_id"])
        batch_op.create_index(batch_op.f("ix_pull_request_emails_email"), ["email"])

    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.alter_column("agreement_id", existing_type=sa.Integer(), nullable=True)


def downgrade() -> None:
    op.execute("DELETE FROM audit_log WHERE agreement_id IS NULL")
    with op.batch_alter_table("audit_log", schema=None) as batch_op:
        batch_op.alter_column("agreement_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("pull_request_emails", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_pull_request_emails_email"))
        batch_op.drop_index(batch_op.f("ix_pull_request_emails_check_id"))
    op.drop_table("pull_request_emails")
    with op.batch_alter_table("proven_emails", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_proven_emails_domain"))
        batch_op.drop_index(batch_op.f("ix_proven_emails_github_id"))
    op.drop_table("proven_emails")
