"""The ``undersign`` command: serve, worker, demo, db and the maintainers' commands.

The root group and its context (``CLIContext``: settings, database and runtime, each made
when a command first needs it). The commands live beside it: ``cli.agreements`` (the
maintainers'), ``cli.jobs`` (worker, recheck, reconcile), ``cli.doctor``; ``undersign
emulator`` is the emulator's own. Depends on config, db, runtime, serving, and, lazily, the
heavy ones.
"""

from __future__ import annotations

import click

from undersign.cli import agreements as agreements_commands
from undersign.cli import companies as companies_commands
from undersign.cli import doctor as doctor_commands
from undersign.cli import jobs as jobs_commands
from undersign.cli.context import CLIContext, database_errors, pass_cli
from undersign.emulator.standalone import emulator_command
from undersign.serving import configure_logging, embedded_consumer
from undersign.serving import serve as run_server

__all__ = ["CLIContext", "database_errors", "main", "pass_cli"]


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="undersign")
@click.pass_context
def main(ctx: click.Context) -> None:
    """undersign: Contributor License Agreements for GitHub."""
    cli = ctx.ensure_object(CLIContext)
    ctx.call_on_close(cli.close)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_cli
def db_upgrade(cli: CLIContext) -> None:
    """Bring the database schema up to date (safe to run on every deploy)."""
    from undersign.migrations import upgrade  # Alembic: only serve and db need it

    url = cli.settings.database_url or ""  # a configuration error is reported as such
    with database_errors("database upgrade failed"):
        upgrade(url)
    click.echo("database is up to date")


@db.command("current")
@pass_cli
def db_current(cli: CLIContext) -> None:
    """Print the schema revision of the database and the code's newest one."""
    from undersign.migrations import current_revision, head_revision  # Alembic, as above

    with database_errors():
        revision = current_revision(cli.database.engine)
    click.echo(f"database: {revision}")
    click.echo(f"code:     {head_revision()}")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--workers", default=2, show_default=True, type=click.IntRange(1, 64))
@click.option("--threads", default=4, show_default=True, type=click.IntRange(1, 64))
@click.option(
    "--embedded-worker/--no-embedded-worker",
    default=True,
    show_default=True,
    help="run queue workers inside this process (turn off when `undersign worker` runs)",
)
@pass_cli
def serve(
    cli: CLIContext, host: str, port: int, workers: int, threads: int, embedded_worker: bool
) -> None:
    """Run the web service under gunicorn (with an embedded queue worker by default)."""
    from undersign.migrations import is_up_to_date  # Alembic: only serve and db need it
    from undersign.web import create_app  # Flask and every view: only serve needs them

    settings = cli.settings
    configure_logging(settings)
    with database_errors():
        up_to_date = is_up_to_date(cli.database.engine)
    if not up_to_date:
        raise click.ClickException(
            "the database schema is not up to date: run `undersign db upgrade` first"
        )
    with embedded_consumer(settings, enabled=embedded_worker):
        run_server(
            lambda: create_app(settings), host=host, port=port, workers=workers, threads=threads
        )


@main.command()
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--github-port", default=8001, show_default=True, type=click.IntRange(1, 65535))
def demo(port: int, github_port: int) -> None:
    """Start undersign with a built-in GitHub emulator and sample data (no network needed)."""
    from undersign.demo import run_demo  # the emulator and the web app: only the demo needs them

    run_demo(port=port, github_port=github_port)


for _command in [
    *agreements_commands.COMMANDS,
    *companies_commands.COMMANDS,
    *jobs_commands.COMMANDS,
    *doctor_commands.COMMANDS,
    emulator_command,
]:
    main.add_command(_command)
