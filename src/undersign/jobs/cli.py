"""``undersign worker`` and ``undersign recheck``: registered on the main group by cli.py."""

from __future__ import annotations

import sys

import click

from undersign.config import Settings


def _cli_context(ctx: click.Context) -> object:
    from undersign.cli import CLIContext

    return ctx.ensure_object(CLIContext)


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = _cli_context(ctx).settings  # type: ignore[attr-defined]
    from undersign.observability.logging import configure_logging

    configure_logging(settings, sys.stderr)
    return settings


@click.command()
@click.option(
    "--workers", default=2, show_default=True, type=click.IntRange(1, 64), help="worker threads"
)
@click.pass_context
def worker(ctx: click.Context, workers: int) -> None:
    """Run queue workers (webhook deliveries, re-evaluations) until stopped."""
    from undersign.jobs.queue import get_queue, make_consumer
    from undersign.jobs.runner import sweep

    settings = _settings(ctx)
    queue = get_queue(settings)
    sweep(queue, everything=True)
    make_consumer(queue, workers=workers, embedded=False).run()


@click.command()
@click.argument("repo")
@click.argument("number", required=False, type=click.IntRange(1))
@click.pass_context
def recheck(ctx: click.Context, repo: str, number: int | None) -> None:
    """Re-evaluate pull request NUMBER of OWNER/REPO now (every open one without NUMBER)."""
    from undersign.enforcement.service import evaluate_pull_request
    from undersign.github.errors import GitHubError
    from undersign.jobs.context import JobContext

    owner, _, name = repo.partition("/")
    if not owner or not name or "/" in name:
        raise click.BadParameter("expected OWNER/REPO", param_hint="REPO")
    settings = _settings(ctx)
    job_ctx = JobContext.from_settings(settings, _cli_context(ctx).database)  # type: ignore[attr-defined]
    try:
        numbers = (
            [number]
            if number
            else [int(p["number"]) for p in job_ctx.github.list_open_pulls(owner, name)]
        )
        for n in numbers:
            outcome = evaluate_pull_request(job_ctx, repo, n)
            result = outcome.state or outcome.skipped or "nothing to do"
            click.echo(f"{repo}#{n}: {result}")
    except GitHubError as exc:
        raise click.ClickException(f"GitHub: {exc}") from None


@click.command()
@click.argument("repo", required=False)
@click.pass_context
def reconcile(ctx: click.Context, repo: str | None) -> None:
    """Queue a re-evaluation of every open pull request whose CLA status is missing or stale
    (in OWNER/REPO, or in every covered repository); workers publish the verdicts."""
    from undersign.jobs.queue import get_queue
    from undersign.jobs.reconcile import reconcile as run

    if repo is not None:
        owner, _, name = repo.partition("/")
        if not owner or not name or "/" in name:
            raise click.BadParameter("expected OWNER/REPO", param_hint="REPO")
    settings = _settings(ctx)
    queue = get_queue(settings, _cli_context(ctx).database)  # type: ignore[attr-defined]
    report = run(queue.context(), queue, [repo] if repo else None)
    for name, number in report.queued:
        click.echo(f"{name}#{number}: queued")
    for name, number in report.closed:
        click.echo(f"{name}#{number}: closed")
    click.echo(
        f"{report.repositories} repositories, {report.open_pulls} open pull requests, "
        f"{len(report.queued)} queued"
    )
    for error in report.errors:
        click.echo(f"error: {error}", err=True)
    if report.errors and not report.repositories:
        raise click.ClickException("nothing could be reconciled")


COMMANDS: list[click.Command] = [worker, recheck, reconcile]
