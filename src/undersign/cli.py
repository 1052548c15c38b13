"""The ``undersign`` command: serve, worker, demo, db and the maintainers' commands."""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import click
from sqlalchemy.exc import OperationalError, SQLAlchemyError

from undersign.config import ConfigError, Settings, load_settings
from undersign.db import Database, describe_error
from undersign.emulator.standalone import emulator_command


@dataclass
class CLIContext:
    """Settings and database, loaded only when a command needs them."""

    _settings: Settings | None = None
    _database: Database | None = None
    overrides: dict[str, str] = field(default_factory=dict)

    @property
    def settings(self) -> Settings:
        if self._settings is None:
            try:
                self._settings = load_settings()
            except ConfigError as exc:
                raise click.ClickException(f"configuration: {exc}") from None
        return self._settings

    @property
    def database(self) -> Database:
        if self._database is None:
            self._database = Database(self.settings.database_url or "")
        return self._database


pass_cli = click.make_pass_decorator(CLIContext, ensure=True)


@contextmanager
def database_errors(doing: str = "") -> Iterator[None]:
    """A database the command cannot use ends as one line naming the problem and the fix,
    not a page of traceback (the server down, a wrong URL or password, an old schema)."""
    prefix = f"{doing}: " if doing else ""
    try:
        yield
    except OperationalError as exc:
        raise click.ClickException(
            f"{prefix}cannot use the database ({describe_error(exc)}); check "
            "UNDERSIGN_DATABASE_URL and that the database server is running"
        ) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(
            f"{prefix}database error ({describe_error(exc)}); is the schema up to date "
            "(undersign db upgrade)?"
        ) from None


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="undersign")
@click.pass_context
def main(ctx: click.Context) -> None:
    """undersign: Contributor License Agreements for GitHub."""
    ctx.ensure_object(CLIContext)


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@pass_cli
def db_upgrade(cli: CLIContext) -> None:
    """Bring the database schema up to date (safe to run on every deploy)."""
    from undersign.migrations import upgrade

    url = cli.settings.database_url or ""  # a configuration error is reported as such
    with database_errors("database upgrade failed"):
        upgrade(url)
    click.echo("database is up to date")


@db.command("current")
@pass_cli
def db_current(cli: CLIContext) -> None:
    """Print the schema revision of the database and the code's newest one."""
    from undersign.migrations import current_revision, head_revision

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
    from undersign.migrations import is_up_to_date
    from undersign.serving import serve as run
    from undersign.web import create_app

    settings = cli.settings
    _configure_logging(settings)
    with database_errors():
        up_to_date = is_up_to_date(cli.database.engine)
    if not up_to_date:
        raise click.ClickException(
            "the database schema is not up to date: run `undersign db upgrade` first"
        )
    with embedded_consumer(settings, enabled=embedded_worker):
        run(lambda: create_app(settings), host=host, port=port, workers=workers, threads=threads)


@contextmanager
def embedded_consumer(settings: Settings, *, enabled: bool = True) -> Iterator[None]:
    """Queue workers in a child process started (spawned, not forked) beside gunicorn.

    Not threads of the gunicorn master: gunicorn forks its web workers from the master at
    any time, and a fork copies every lock another master thread happens to hold (logging,
    metrics, database pools) into the child, locked forever: web workers that never answer.
    """
    if not enabled:
        yield
        return
    import multiprocessing

    process = multiprocessing.get_context("spawn").Process(
        target=run_embedded_worker, args=(settings,), name="undersign-worker"
    )
    process.start()
    try:
        yield
    finally:
        process.terminate()  # SIGTERM: Huey finishes running jobs, then stops
        process.join(timeout=15)
        if process.is_alive():
            process.kill()
            process.join()


def run_embedded_worker(settings: Settings, workers: int = 2) -> None:
    """The body of the embedded worker process (what `undersign worker` runs)."""
    from undersign.jobs.queue import get_queue, make_consumer
    from undersign.jobs.runner import sweep

    _configure_logging(settings)
    queue = get_queue(settings)
    try:
        sweep(queue, everything=True)
    except Exception:
        logging.getLogger(__name__).exception("start-up sweep failed; the periodic one retries")
    make_consumer(queue, workers=workers, embedded=False).run()


@main.command()
@click.option("--port", default=8000, show_default=True, type=click.IntRange(1, 65535))
@click.option("--github-port", default=8001, show_default=True, type=click.IntRange(1, 65535))
def demo(port: int, github_port: int) -> None:
    """Start undersign with a built-in GitHub emulator and sample data (no network needed)."""
    from undersign.demo import run_demo

    run_demo(port=port, github_port=github_port)


def _configure_logging(settings: Settings) -> None:
    """JSON or text, redacted, with request and delivery ids (observability.logging)."""
    from undersign.observability.logging import configure_logging

    configure_logging(settings, sys.stderr)


def _register_feature_commands() -> None:
    from undersign.agreements import cli as agreements_cli
    from undersign.jobs import cli as jobs_cli

    for command in [*agreements_cli.COMMANDS, *jobs_cli.COMMANDS, emulator_command]:
        main.add_command(command)


_register_feature_commands()
