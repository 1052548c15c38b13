"""Corporate agreements as the tests set them up: the web form a company signs, and rows of
approvals to fill a company up to its limits.

Depends on undersign's company models only."""

from __future__ import annotations

from tests.support.pages import csrf_token, field_value

from undersign.agreements.models import CompanyApproval
from undersign.db import utcnow

#: The corporate agreement's slug in the tests that have one.
CORPORATE = "corporate-cla"


def company_form(page: str, **changes: str) -> dict[str, str]:
    """A valid answer to the company signing form on ``page``, overridden by ``changes``."""
    data = {
        "csrf_token": csrf_token(page),
        "version_sha256": field_value(page, "version_sha256"),
        "company_name": "BigCorp <b>Ltd</b>",
        "address": "1 Main Street\nSpringfield",
        "signatory_name": "Boss Person",
        "signatory_title": "CTO",
        "managers": "deputy",
        "agree": "yes",
    }
    data.update(changes)
    return data


def domain_approvals(company_id: int, count: int) -> list[CompanyApproval]:
    """``count`` approvals of made-up domains, as rows (the form would take them one by one)."""
    return [
        CompanyApproval(
            company_id=company_id,
            kind="domain",
            value=f"d{number}.example",
            label="",
            created_at=utcnow(),
        )
        for number in range(count)
    ]
