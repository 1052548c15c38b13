"""``undersign import SOURCE FILE --agreement SLUG [--version N] [--dry-run]``.

Reads another tool's signature file (``agreements.importers``), resolves logins without an
id through GitHub, and stores the lot in one transaction (``agreements.imports``). The
report goes to stdout: one line per problem, by line number, then a summary. The exit code
is 0 only when the file had no problem at all; a malformed row (or ``--dry-run``) stores
nothing. Afterwards the open pull requests of the people imported are evaluated again.

Depends on agreements, github (errors), cli.agreements, runtime.
"""

from __future__ import annotations

from collections.abc import Callable

import click
from sqlalchemy.orm import Session

from undersign.agreements.importers import MAX_IMPORT_BYTES, SOURCES, ImportRefused, parse
from undersign.agreements.imports import ImportReport, LoginResolver, import_batch
from undersign.agreements.service import AgreementService
from undersign.cli.agreements import _change_hook, _requeue, _runtime, _unit_of_work
from undersign.github.errors import GitHubError

#: Above this many people, one re-evaluation of every open pull request the agreement
#: covers is cheaper than one job per person.
PER_PERSON_LIMIT = 200


def _read_limited(path: str) -> bytes:
    """The file's bytes, refusing (without reading it all) one above the import limit."""
    try:
        with click.open_file(path, "rb") as stream:  # "-" is stdin
            data: bytes = stream.read(MAX_IMPORT_BYTES + 1)
    except OSError as exc:
        raise click.ClickException(f"cannot read {path!r}: {exc.strerror or exc}") from exc
    if len(data) > MAX_IMPORT_BYTES:
        raise click.ClickException(
            f"{path!r} is larger than the import limit of {MAX_IMPORT_BYTES:,} bytes; split it "
            "and import the parts one after the other"
        )
    return data


def _github_resolver() -> LoginResolver:
    """``GET /users/{login}`` through the bot's client (paced like every call it makes)."""
    runtime = _runtime()

    def resolve(login: str) -> tuple[int, str] | None:
        if runtime is None:
            raise click.ClickException(
                f"the file has logins without a GitHub id ({login!r}); resolving them needs "
                "GitHub: set UNDERSIGN_GITHUB_TOKEN (or the App settings)"
            )
        try:
            user = runtime.bot.github.get_user(login)
        except GitHubError as exc:
            raise click.ClickException(
                f"could not look up {login!r} on GitHub ({exc}); nothing was imported, try "
                "again later"
            ) from None
        if user is None:
            return None
        return int(user["id"]), str(user.get("login") or login)

    return resolve


def _print_report(report: ImportReport, notes: list[str]) -> None:
    for problem in report.problems:
        click.echo(f"line {problem.line}: {problem.kind}: {problem.message}")
    for note in notes:
        click.echo(note)
    click.echo(
        f"{report.source} ({report.format}, sha256 {report.sha256}) into "
        f"{report.agreement} v{report.version}: {report.summary()}"
    )


def _reevaluate(session: Session, report: ImportReport, agreement_id: int) -> None:
    if not report.imported or _runtime() is None:
        return
    if len(report.imported) > PER_PERSON_LIMIT:
        _requeue(session, agreement_id=agreement_id)
        return
    hook: Callable[[int, str], None] | None = _change_hook(session)
    if hook is not None:
        for github_id in report.imported:
            hook(github_id, "signed")
        click.echo(
            f"re-evaluating the open pull requests of {len(report.imported)} person(s)", err=True
        )


@click.command("import")
@click.argument("source", type=click.Choice(SOURCES))
@click.argument("path", metavar="FILE")
@click.option("--agreement", "slug", required=True, help="The agreement the signatures are for.")
@click.option(
    "--version",
    "version",
    type=click.IntRange(min=1),
    help="The version they signed (default: the current one).",
)
@click.option("--dry-run", is_flag=True, help="Report what would be imported; store nothing.")
@click.pass_context
def import_command(
    ctx: click.Context, source: str, path: str, slug: str, version: int | None, dry_run: bool
) -> None:
    """Import the signatures another CLA tool recorded (FILE '-': stdin).

    SOURCE is cla-assistant (its CSV export or a mongoexport of its signatures, one JSON
    document per line), cla-assistant-lite (the signatures JSON file), clahub (its CSV
    export) or csv (github_id or login, and optional name, email, signed_at). All or nothing:
    any malformed row imports nothing. Importing the same file again changes nothing.
    """
    data = _read_limited(path)
    try:
        batch = parse(source, data)
    except ImportRefused as exc:
        raise click.ClickException(f"{path}: {exc}; nothing was imported") from None
    notes = [
        f"line {record.line}: note: {', '.join(record.formula_like)} starts like a "
        "spreadsheet formula; kept as text (CSV exports neutralise it)"
        for record in batch.records
        if record.formula_like
    ]
    with _unit_of_work() as session:
        report = import_batch(
            session,
            batch,
            slug,
            version=version,
            resolve_login=_github_resolver(),
            dry_run=dry_run,
        )
        _print_report(report, notes)
        if report.written:
            _reevaluate(session, report, AgreementService(session).get(slug).id)
    if report.malformed:
        click.echo("nothing was imported: fix the malformed lines and import again", err=True)
    elif dry_run:
        click.echo("dry run: nothing was stored", err=True)
    if report.problems:
        ctx.exit(1)
