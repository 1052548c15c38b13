"""``app_registrations``: the GitHub App registered from the setup page (manifest flow), its
secrets encrypted with a key derived from UNDERSIGN_SECRET_KEY

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-30 06:00:00.000000

The previous release's code still runs against this schema: it never reads the new table.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import undersign.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "app_registrations",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("app_id", sa.BigInteger(), nullable=False),
        sa.Column("slug", sa.String(length=100), nullable=False),
        sa.Column("client_id", sa.String(length=100), nullable=False),
        sa.Column("owner_login", sa.String(length=100), nullable=False),
        sa.Column("html_url", sa.String(length=500), nullable=False),
        sa.Column("client_secret_encrypted", sa.Text(), nullable=False),
        sa.Column("webhook_secret_encrypted", sa.Text(), nullable=True),
        sa.Column("private_key_encrypted", sa.Text(), nullable=False),
        sa.Column("registered_by", sa.BigInteger(), nullable=True),
        sa.Column("created_at", undersign.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_app_registrations")),
    )


def downgrade() -> None:
    op.drop_table("app_registrations")
