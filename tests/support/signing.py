"""An individual agreement published straight into the database, and the signatures stored,
for the tests that sign it over HTTP.

Depends on undersign's agreement service and models only."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from undersign.agreements.models import AgreementVersion, Signature
from undersign.agreements.service import AgreementService, ChangeType
from undersign.db import Database

#: The first version's text; its script tag must reach the page escaped.
TEXT_V1 = (
    "# Individual CLA\n\n"
    "You grant the project a licence to your contributions.\n\n"
    "<script>alert('pwned')</script>\n"
)


def publish(
    database: Database,
    text: str = TEXT_V1,
    *,
    slug: str = "cla",
    fields: Any = None,
    change_type: ChangeType = "material",
) -> AgreementVersion:
    """Publish ``text`` as the next version of ``slug`` (created when missing)."""
    with database.session() as session:
        _, version, _ = AgreementService(session).add_or_update(
            slug,
            "Individual CLA",
            text,
            fields,
            change_type,
        )
        return version


def signature_rows(database: Database) -> list[Signature]:
    """Every signature stored, oldest first."""
    with database.session() as session:
        return list(session.scalars(select(Signature).order_by(Signature.id)))
