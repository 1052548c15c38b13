"""corporate agreements: ``agreements.for_agreement_id`` (the individual agreement a corporate
one stands beside), the ``companies`` that signed one, their CLA ``company_managers`` and the
``company_approvals`` (accounts, organisations, email domains) that say whom they cover

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-30 06:30:00.000000

The previous release's code still runs against this schema: it never reads the new tables
or column (a corporate agreement then covers nobody, as before).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import undersign.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agreements", schema=None) as batch_op:
        batch_op.add_column(sa.Column("for_agreement_id", sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f("ix_agreements_for_agreement_id"), ["for_agreement_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_agreements_for_agreement_id_agreements"),
            "agreements",
            ["for_agreement_id"],
            ["id"],
        )

    op.create_table(
        "companies",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("agreement_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("name_key", sa.String(length=200), nullable=False),
        sa.Column("address", sa.String(length=1000), nullable=False),
        sa.Column("source", sa.String(length=10), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=True),
        sa.Column("text_sha256", sa.String(length=64), nullable=True),
        sa.Column("signatory_github_id", sa.BigInteger(), nullable=True),
        sa.Column("signatory_login", sa.String(length=100), nullable=True),
        sa.Column("signatory_name", sa.String(length=200), nullable=True),
        sa.Column("signatory_title", sa.String(length=200), nullable=True),
        sa.Column("document_sha256", sa.String(length=64), nullable=True),
        sa.Column("document_name", sa.String(length=255), nullable=True),
        sa.Column("signed_at", undersign.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.CheckConstraint("source IN ('web', 'paper')", name=op.f("ck_companies_source")),
        sa.ForeignKeyConstraint(
            ["agreement_id"], ["agreements.id"], name=op.f("fk_companies_agreement_id_agreements")
        ),
        sa.ForeignKeyConstraint(
            ["version_id"],
            ["agreement_versions.id"],
            name=op.f("fk_companies_version_id_agreement_versions"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_companies")),
        sa.UniqueConstraint("agreement_id", "name_key", name="uq_companies_agreement_name"),
    )
    with op.batch_alter_table("companies", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_companies_agreement_id"), ["agreement_id"])

    op.create_table(
        "company_managers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("github_id", sa.BigInteger(), nullable=False),
        sa.Column("login", sa.String(length=100), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_company_managers_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_company_managers")),
        sa.UniqueConstraint("company_id", "github_id", name="uq_company_managers_company_github"),
    )
    with op.batch_alter_table("company_managers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_company_managers_company_id"), ["company_id"])
        batch_op.create_index(batch_op.f("ix_company_managers_github_id"), ["github_id"])

    op.create_table(
        "company_approvals",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=255), nullable=False),
        sa.Column("label", sa.String(length=255), nullable=False),
        sa.Column("created_at", undersign.db.UTCDateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "kind IN ('account', 'org', 'domain')", name=op.f("ck_company_approvals_kind")
        ),
        sa.ForeignKeyConstraint(
            ["company_id"],
            ["companies.id"],
            name=op.f("fk_company_approvals_company_id_companies"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_company_approvals")),
        sa.UniqueConstraint("company_id", "kind", "value", name="uq_company_approvals_kind_value"),
    )
    with op.batch_alter_table("company_approvals", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_company_approvals_company_id"), ["company_id"])
        batch_op.create_index(batch_op.f("ix_company_approvals_value"), ["value"])


def downgrade() -> None:
    with op.batch_alter_table("company_approvals", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_company_approvals_value"))
        batch_op.drop_index(batch_op.f("ix_company_approvals_company_id"))
    op.drop_table("company_approvals")
    with op.batch_alter_table("company_managers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_company_managers_github_id"))
        batch_op.drop_index(batch_op.f("ix_company_managers_company_id"))
    op.drop_table("company_managers")
    with op.batch_alter_table("companies", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_companies_agreement_id"))
    op.drop_table("companies")
    with op.batch_alter_table("agreements", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_agreements_for_agreement_id_agreements"), type_="foreignkey"
        )
        batch_op.drop_index(batch_op.f("ix_agreements_for_agreement_id"))
        batch_op.drop_column("for_agreement_id")
