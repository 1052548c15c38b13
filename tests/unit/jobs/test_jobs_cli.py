"""``undersign recheck``, ``reconcile`` and ``worker`` fail with one clear line, never a
traceback: bad names, an unmigrated or unreachable database, no token, a busy pull request,
GitHub refusing."""

from __future__ import annotations

import datetime as dt
import socket
from pathlib import Path

import click
import pytest
from click.testing import CliRunner, Result
from tests.conftest import make_settings

from undersign.agreements.service import AgreementService
from undersign.cli import CLIContext
from undersign.cli.jobs import recheck, reconcile, worker
from undersign.config import Settings
from undersign.db import Database, utcnow
from undersign.emulator.server import EmulatorServer
from undersign.enforcement.models import PullRequestCheck

REPO = "octo-org/widgets"


@pytest.fixture
def settings(tmp_path: Path, emulator: EmulatorServer) -> Settings:
    """No token, and a database URL (the default SQLite file) that was never migrated."""
    return make_settings(tmp_path, "http://127.0.0.1:1", emulator)


@pytest.fixture
def covered(database: Database) -> Database:
    """A migrated database where REPO is covered by an agreement."""
    with database.session() as session:
        agreements = AgreementService(session)
        agreements.add_or_update("individual-cla", "Individual CLA", "You agree.")
        agreements.link_repo(REPO, "individual-cla")
    return database


def invoke(
    command: click.Command, args: list[str], settings: Settings, database: Database | None = None
) -> Result:
    context = CLIContext(_settings=settings, _database=database)
    try:
        return CliRunner().invoke(command, args, obj=context)
    finally:
        context.close()  # the runtime the command built: no queue left open


def assert_clean_failure(result: Result, *messages: str) -> None:
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    for message in messages:
        assert message in result.output


@pytest.mark.parametrize("command", [recheck, reconcile])
@pytest.mark.parametrize("name", ["a/b c", "a", "a/b/c", "a_b!/c", "a/..", " / "])
def test_a_bad_repository_name_is_refused_before_anything_connects(
    command: click.Command, name: str, settings: Settings
) -> None:
    args = [name, "1"] if command is recheck else [name]
    result = invoke(command, args, settings)
    assert result.exit_code == 2
    assert_clean_failure(result, "OWNER/REPO")


@pytest.mark.parametrize(
    ("command", "args"),
    [(recheck, [REPO, "1"]), (recheck, [REPO]), (reconcile, [REPO]), (reconcile, [])],
)
def test_an_unmigrated_database_says_to_upgrade(
    command: click.Command, args: list[str], settings: Settings
) -> None:
    result = invoke(command, args, settings.replace(github_token="ghp_test"))
    assert_clean_failure(result, "database error", "undersign db upgrade")


@pytest.mark.parametrize(
    ("command", "args"),
    [(recheck, [REPO, "1"]), (recheck, [REPO]), (reconcile, [REPO]), (reconcile, [])],
)
def test_no_token_says_which_variable_is_missing(
    command: click.Command, args: list[str], settings: Settings, covered: Database
) -> None:
    result = invoke(command, args, settings, covered)
    assert_clean_failure(result, "UNDERSIGN_GITHUB_TOKEN is not set")


def test_recheck_of_a_pull_request_a_worker_holds_says_to_try_again(
    settings: Settings, covered: Database
) -> None:
    with covered.session() as session:
        session.add(
            PullRequestCheck(
                repo_full_name=REPO,
                number=7,
                locked_until=utcnow() + dt.timedelta(minutes=5),
                lock_owner="a-worker",
            )
        )
    result = invoke(recheck, [REPO, "7"], settings.replace(github_token="ghp_test"), covered)
    assert_clean_failure(result, f"{REPO}#7 is being evaluated", "try again")


def test_recheck_of_a_repository_github_does_not_know(
    settings: Settings, covered: Database, emulator: EmulatorServer
) -> None:
    token = emulator.state.issue_token(emulator.state.add_user("bot")["login"])
    result = invoke(recheck, ["nobody/nothing"], settings.replace(github_token=token), covered)
    assert_clean_failure(result, "GitHub:")


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.parametrize("where", ["unmigrated", "down"])
def test_worker_without_a_usable_database_exits_cleanly(settings: Settings, where: str) -> None:
    if where == "down":  # nothing listens there: connection refused
        url = f"postgresql+psycopg://postgres@127.0.0.1:{_closed_port()}/undersign"
        settings = settings.replace(database_url=url)
    result = invoke(worker, ["--workers", "1"], settings)
    assert_clean_failure(result, "database error")
