"""imported signatures keep their provenance (source, file SHA-256, original time, the row as
read) and may lack a text hash; repository and organization links get a mode (enforce or
report) and whether report mode comments

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 05:40:00.000000

The previous release's code still runs against this schema while no signature is imported:
the new columns have defaults, and it never reads them. An imported signature has no text
hash, which that code would show as empty.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import undersign.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ACTIVE_INDEX = "uq_signatures_active_version_github_id"


def _drop_active_index() -> None:
    op.drop_index(ACTIVE_INDEX, table_name="signatures")


def _create_active_index() -> None:
    # Dropped and made again around the batch: SQLite's table copy need not keep a partial
    # index's WHERE clause, and without it a revoked signature would block signing again.
    op.create_index(
        ACTIVE_INDEX,
        "signatures",
        ["version_id", "github_id"],
        unique=True,
        sqlite_where=sa.text("revoked_at IS NULL"),
        postgresql_where=sa.text("revoked_at IS NULL"),
    )


def upgrade() -> None:
    _drop_active_index()
    with op.batch_alter_table("signatures", schema=None) as batch_op:
        batch_op.add_column(sa.Column("import_source", sa.String(length=40), nullable=True))
        batch_op.add_column(
            sa.Column("imported_at", undersign.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("import_file_sha256", sa.String(length=64), nullable=True))
        batch_op.add_column(
            sa.Column("original_signed_at", undersign.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("import_record", sa.JSON(), nullable=True))
        batch_op.alter_column("text_sha256", existing_type=sa.String(length=64), nullable=True)
        batch_op.create_check_constraint(
            op.f("ck_signatures_text_or_provenance"),
            "text_sha256 IS NOT NULL OR import_source IS NOT NULL",
        )
    _create_active_index()
    for table in ("repo_links", "org_links"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(
                sa.Column("mode", sa.String(length=10), nullable=False, server_default="enforce")
            )
            batch_op.add_column(
                sa.Column(
                    "report_comments", sa.Boolean(), nullable=False, server_default=sa.false()
                )
            )
            batch_op.create_check_constraint(
                op.f(f"ck_{table}_mode"), "mode IN ('enforce', 'report')"
            )


def downgrade() -> None:
    imported = op.get_bind().scalar(
        sa.text("SELECT count(*) FROM signatures WHERE import_source IS NOT NULL")
    )
    if imported:
        # Dropping them would lose evidence; keeping them breaks the older schema's NOT NULL.
        raise RuntimeError(
            f"{imported} imported signature(s) exist: the schema before 0006 cannot hold "
            "them; export them (undersign signatures export) and revoke or delete them first"
        )
    for table in ("org_links", "repo_links"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(op.f(f"ck_{table}_mode"), type_="check")
            batch_op.drop_column("report_comments")
            batch_op.drop_column("mode")
    _drop_active_index()
    with op.batch_alter_table("signatures", schema=None) as batch_op:
        batch_op.drop_constraint(op.f("ck_signatures_text_or_provenance"), type_="check")
        batch_op.alter_column("text_sha256", existing_type=sa.String(length=64), nullable=False)
        batch_op.drop_column("import_record")
        batch_op.drop_column("original_signed_at")
        batch_op.drop_column("import_file_sha256")
        batch_op.drop_column("imported_at")
        batch_op.drop_column("import_source")
    _create_active_index()
