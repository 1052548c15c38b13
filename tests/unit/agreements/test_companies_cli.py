"""``undersign company ...`` when a login must be looked up and undersign cannot ask GitHub:
one line saying what to set, exit 1, nothing changed (not a ``RuntimeError`` traceback)."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import func, select
from tests.support.cli import assert_clean_failure

from undersign.agreements.companies import CompanyService
from undersign.agreements.models import Company, CompanyApproval, CompanyManager
from undersign.agreements.service import AgreementService
from undersign.cli import CLIContext, main
from undersign.db import Database
from undersign.emulator import EmulatorServer

CORPORATE = "corporate-cla"


@pytest.mark.parametrize(
    "args",
    [
        ["add", CORPORATE, "Paper Co", "--manager", "deputy"],
        ["approve", CORPORATE, "BigCorp Ltd", "--login", "deputy"],
        ["manager-add", CORPORATE, "BigCorp Ltd", "deputy"],
        ["manager-remove", CORPORATE, "BigCorp Ltd", "deputy"],
    ],
    ids=["add", "approve", "manager-add", "manager-remove"],
)
def test_without_a_token_or_an_app_a_lookup_says_what_to_set(
    clean_database: Database, tmp_path: Path, emulator: EmulatorServer, args: list[str]
) -> None:
    from tests.conftest import make_settings

    with clean_database.session() as session:
        AgreementService(session).add_or_update("individual-cla", "Individual CLA", "I agree.")
        companies = CompanyService(session)
        companies.add_corporate_agreement(CORPORATE, "Corporate CLA", "Agreed.", "individual-cla")
        companies.add_paper(CORPORATE, "BigCorp Ltd", [(4242, "boss")])
    settings = make_settings(tmp_path, "http://127.0.0.1:1", emulator, UNDERSIGN_GITHUB_TOKEN="")
    result = CliRunner().invoke(
        main, ["company", *args], obj=CLIContext(_settings=settings, _database=clean_database)
    )
    assert result.exit_code == 1, result.output
    assert_clean_failure(
        result,
        "looking up 'deputy' needs GitHub, which undersign cannot ask (UNDERSIGN_GITHUB_TOKEN "
        "is not set",
    )
    assert (
        "nothing was changed: set UNDERSIGN_GITHUB_TOKEN, or the GitHub App's "
        "UNDERSIGN_GITHUB_APP_ID and UNDERSIGN_GITHUB_APP_PRIVATE_KEY"
    ) in result.output
    assert len(result.output.strip().splitlines()) == 1, result.output
    with clean_database.session() as session:
        assert session.scalars(select(Company.name)).all() == ["BigCorp Ltd"]
        assert session.scalars(select(CompanyManager.login)).all() == ["boss"]
        assert session.scalar(select(func.count()).select_from(CompanyApproval)) == 0
