"""``undersign worker`` and ``undersign recheck``: registered on the main group by cli.py."""

from __future__ import annotations

import logging
import sys

import click

from undersign.config import Settings


def _cli_context(ctx: click.Context) -> object:
    from undersign.cli import CLIContext

    return ctx.ensure_object(CLIContext)


def _settings(ctx: click.Context) -> Settings:
    settings: Settings = _cli_context(ctx).settings  # type: ignore[attr-defined]
    logging.basicConfig(
        level=settings.log_level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
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


COMMANDS: list[click.Command] = [worker, recheck]
