"""``undersign worker``, ``recheck`` and ``reconcile``: registered on the main group.

Depends on agreements (names, errors), db, enforcement (service, reconcile), github.errors,
jobs (consumer, sweep), serving (logging), cli.context.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import click
from sqlalchemy.exc import SQLAlchemyError

from undersign.agreements.errors import AgreementError, InvalidInput
from undersign.agreements.service import normalize_repo_full_name
from undersign.cli.context import CLIContext
from undersign.config import Settings
from undersign.db import describe_error
from undersign.enforcement.reconcile import reconcile as run_reconcile
from undersign.enforcement.service import PullRequestBusy, evaluate_pull_request
from undersign.github.errors import GitHubError
from undersign.jobs.queue import make_consumer
from undersign.jobs.runner import sweep
from undersign.serving import configure_logging


def _cli_context(ctx: click.Context) -> CLIContext:
    return ctx.ensure_object(CLIContext)


def _settings(ctx: click.Context) -> Settings:
    settings = _cli_context(ctx).settings
    configure_logging(settings)
    return settings


def _repo_name(repo: str) -> str:
    """``OWNER/REPO`` checked and lower-cased before anything connects anywhere."""
    try:
        return normalize_repo_full_name(repo)
    except InvalidInput as exc:
        raise click.BadParameter(str(exc), param_hint="REPO") from None


@contextmanager
def _clean_errors() -> Iterator[None]:
    """What an operator can cause (an unmigrated or unreachable database, no token, GitHub
    failing, a busy pull request) ends as one line and a non-zero exit, not a traceback."""
    try:
        yield
    except AgreementError as exc:
        raise click.ClickException(str(exc)) from None
    except SQLAlchemyError as exc:
        raise click.ClickException(
            f"database error ({describe_error(exc)}); is the database reachable and up to date "
            "(undersign db upgrade)?"
        ) from None
    except PullRequestBusy as exc:
        raise click.ClickException(
            f"{exc or 'the pull request is being evaluated by a worker'}; try again shortly"
        ) from None
    except GitHubError as exc:
        raise click.ClickException(f"GitHub: {exc}") from None
    except RuntimeError as exc:
        if "UNDERSIGN_" not in str(exc):  # only configuration problems are the operator's
            raise
        raise click.ClickException(str(exc)) from None


@click.command()
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="worker threads"
)
@click.pass_context
def worker(ctx: click.Context, workers: int) -> None:
    """Run queue workers (webhook deliveries, re-evaluations) until stopped."""
    cli = _cli_context(ctx)
    _settings(ctx)
    with _clean_errors():
        queue = cli.runtime.queue
        sweep(queue, everything=True)
    make_consumer(queue, workers=workers, embedded=False).run()


@click.command()
@click.argument("repo")
@click.argument("number", required=False, type=click.IntRange(1))
@click.pass_context
def recheck(ctx: click.Context, repo: str, number: int | None) -> None:
    """Re-evaluate pull request NUMBER of OWNER/REPO now (every open one without NUMBER)."""
    repo = _repo_name(repo)
    owner, _, name = repo.partition("/")
    _settings(ctx)
    with _clean_errors():
        job_ctx = _cli_context(ctx).runtime.bot
        numbers = (
            [number]
            if number
            else [int(p["number"]) for p in job_ctx.github.list_open_pulls(owner, name)]
        )
        for n in numbers:
            outcome = evaluate_pull_request(job_ctx, repo, n)
            result = outcome.state or outcome.skipped or "nothing to do"
            click.echo(f"{repo}#{n}: {result}")


@click.command()
@click.argument("repo", required=False)
@click.pass_context
def reconcile(ctx: click.Context, repo: str | None) -> None:
    """Queue a re-evaluation of every open pull request whose CLA status is missing or stale
    (in OWNER/REPO, or in every covered repository); workers publish the verdicts."""
    if repo is not None:
        repo = _repo_name(repo)
    _settings(ctx)
    with _clean_errors():
        runtime = _cli_context(ctx).runtime
        report = run_reconcile(runtime.bot, runtime.queue, [repo] if repo else None)
    for name, number in report.queued:
        click.echo(f"{name}#{number}: queued")
    for name, number in report.closed:
        click.echo(f"{name}#{number}: closed")
    click.echo(
        f"{report.repositories} repositories, {report.open_pulls} open pull requests, "
        f"{len(report.queued)} queued"
    )
    for line in report.passed_over():
        click.echo(line)
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    if report.errors and not report.repositories:
        raise click.ClickException("nothing could be reconciled")


COMMANDS: list[click.Command] = [worker, recheck, reconcile]
