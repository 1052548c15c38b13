"""The command line as the tests drive it, through click's runner in the test process.

Depends on undersign's command groups and ``tests/conftest.py``'s ``CLAService`` (for types)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from click.testing import CliRunner, Result

from undersign.cli import CLIContext, main
from undersign.cli.agreements import COMMANDS
from undersign.cli.jobs import reconcile as reconcile_command

if TYPE_CHECKING:
    from tests.conftest import CLAService


@click.group()
def agreement_commands() -> None:
    """Stands in for the ``undersign`` group the agreement groups are registered on, so a test
    hands them the context object it wants (a database, and a runtime when it has one)."""


for command in COMMANDS:
    agreement_commands.add_command(command)


def assert_clean_failure(result: Result, message: str) -> None:
    """The command failed with ``message`` and no traceback."""
    assert result.exit_code != 0, result.output
    assert "Traceback" not in result.output
    assert not isinstance(result.exception, Exception) or isinstance(result.exception, SystemExit)
    assert message in result.output


def undersign(cla: CLAService, *args: str, ok: bool = True) -> Result:
    """``undersign ARGS`` on ``cla``'s settings and database; it succeeds unless not ``ok``."""
    result = CliRunner().invoke(
        main, list(args), obj=CLIContext(_settings=cla.settings, _database=cla.database)
    )
    assert (result.exit_code == 0) is ok, result.output
    return result


def run_reconcile(cla: CLAService, *args: str) -> str:
    """``undersign reconcile ARGS`` on ``cla``'s settings and database: its output."""
    ctx = CLIContext(_settings=cla.settings, _database=cla.database)
    result = CliRunner().invoke(reconcile_command, list(args), obj=ctx)
    ctx.close()
    assert result.exit_code == 0, result.output
    return result.output
