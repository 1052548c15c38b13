"""Maintainers' commands: agreements, repository and organization links, signatures, allowlist,
and importing the signatures another CLA tool recorded.

The groups here are registered on the main ``undersign`` command, whose context object
carries the ``Database`` (and, on the real command line, the ``Runtime`` whose hooks
re-evaluate pull requests after a change). Every failure a maintainer can cause (an unknown slug, an
unreadable file, a bad repository name, a database that is not migrated) ends as a
one-line message and a non-zero exit, never a traceback. Machine-readable results go to
stdout; messages for people go to stderr.

Depends on agreements, db, enforcement.agents, github.errors, runtime.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from undersign.agreements.companies import CompanyService
from undersign.agreements.errors import AgreementError
from undersign.agreements.export import write_csv, write_json
from undersign.agreements.importers import MAX_IMPORT_BYTES, SOURCES, ImportRefused, parse
from undersign.agreements.imports import (
    ImportReport,
    LoginResolver,
    NotAPerson,
    formula_notes,
    import_batch,
)
from undersign.agreements.models import LINK_MODES, Agreement, OrgLink, RepoLink
from undersign.agreements.service import (
    AgreementService,
    SignatureService,
    normalize_org,
    normalize_repo_full_name,
)
from undersign.db import Database
from undersign.enforcement.agents import AGENT_POLICIES, DEFAULT_BOT_IDS, describe_bots
from undersign.github.errors import (
    GITHUB_CREDENTIALS_FIX,
    AppNotInstalled,
    GitHubError,
    GitHubNotConfigured,
    InstallationSuspended,
)
from undersign.runtime import Runtime


def _db() -> Database:
    database = getattr(click.get_current_context().obj, "database", None)
    if not isinstance(database, Database):
        raise click.ClickException("no database is configured")
    return database


def _runtime() -> Runtime | None:
    """The runtime, when the command runs with full settings (the real command line); a
    bare database in tests has none, and its changes queue nothing."""
    runtime = getattr(click.get_current_context().obj, "runtime", None)
    return runtime if isinstance(runtime, Runtime) else None


def _change_hook(session: Session) -> Callable[[int, str], None] | None:
    """Re-evaluate the person's open pull requests after a change (the runtime's hook)."""
    runtime = _runtime()
    return runtime.signature_hook(session) if runtime is not None else None


def _requeue(
    session: Session,
    *,
    repos: tuple[str, ...] = (),
    orgs: tuple[str, ...] = (),
    agreement_id: int | None = None,
) -> None:
    """After a policy change, re-evaluate the open pull requests it affects (queued after
    commit), when running with full settings; a bare database in tests queues nothing."""
    runtime = _runtime()
    if runtime is None:
        return
    count = runtime.requeue_open_pull_requests(
        session, repos=repos, orgs=orgs, agreement_id=agreement_id
    )
    if count:
        click.echo(f"re-evaluating {count} open pull request(s)", err=True)


@contextmanager
def _unit_of_work() -> Iterator[Session]:
    """A committed session; domain and database errors become clean command errors."""
    try:
        with _db().session() as session:
            yield session
    except AgreementError as exc:
        raise click.ClickException(str(exc)) from exc
    except SQLAlchemyError as exc:
        detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
        raise click.ClickException(
            f"database error ({detail}); is the database reachable and up to date "
            "(undersign db upgrade)?"
        ) from exc


def _read_file(path: str, what: str) -> str:
    try:
        with click.open_file(path, "rb") as stream:  # "-" is stdin
            data = stream.read()
    except OSError as exc:
        raise click.ClickException(f"cannot read {what} {path!r}: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise click.ClickException(f"{what} {path!r} is not UTF-8 text") from exc


def _actor() -> str:
    try:
        return f"command line ({getpass.getuser()})"
    except (KeyError, OSError):
        return "command line"


# undersign agreement ...


@click.group("agreement")
def agreement() -> None:
    """Create agreements and publish new versions of their text."""


@agreement.command("add")
@click.argument("slug")
@click.option("--title", required=True, help="Title shown to signers.")
@click.option("--file", "path", required=True, metavar="PATH", help="Markdown text ('-': stdin).")
@click.option(
    "--fields",
    "fields_path",
    metavar="FILE",
    help="JSON array of custom fields: name, label, type, required, help.",
)
@click.option(
    "--material/--editorial",
    "material",
    default=True,
    show_default=True,
    help="For a changed text: must earlier signers sign again (material) or not (editorial)?",
)
@click.option(
    "--kind",
    type=click.Choice(["individual", "corporate"]),
    default="individual",
    show_default=True,
    help="corporate: companies sign it for their people (needs --for).",
)
@click.option(
    "--for",
    "for_slug",
    metavar="INDIVIDUAL_SLUG",
    help="The individual agreement a corporate one stands beside.",
)
def agreement_add(
    slug: str,
    title: str,
    path: str,
    fields_path: str | None,
    material: bool,
    kind: str,
    for_slug: str | None,
) -> None:
    """Create agreement SLUG, or a new version of it when the text changed.

    Prints the current version number.
    """
    if (kind == "corporate") != (for_slug is not None):
        raise click.UsageError("--kind corporate and --for INDIVIDUAL_SLUG go together")
    if kind == "corporate" and fields_path is not None:
        raise click.UsageError("a corporate agreement has no custom fields")
    text = _read_file(path, "agreement text")
    if for_slug is not None:
        with _unit_of_work() as session:
            found, version, created = CompanyService(session).add_corporate_agreement(
                slug, title, text, for_slug, "material" if material else "editorial"
            )
            state = f"version {version.number}" if created else "text unchanged"
            if created and version.number > 1:
                state += f" ({version.change_type})"
            click.echo(f"{found.slug}: corporate, beside {for_slug}, {state}", err=True)
            if created and version.number > 1 and version.change_type == "material":
                # Companies that signed before cover nobody until they sign this version.
                click.echo(
                    f"{found.slug}: companies that signed an earlier version cover nobody "
                    "until they sign this one",
                    err=True,
                )
                _requeue(session, agreement_id=found.id)
            click.echo(str(version.number))
        return
    fields = None
    if fields_path is not None:
        raw = _read_file(fields_path, "fields file")
        try:
            fields = json.loads(raw)
        except json.JSONDecodeError as exc:
            raise click.ClickException(
                f"fields file {fields_path!r} is not valid JSON: {exc.msg} (line {exc.lineno})"
            ) from exc
    with _unit_of_work() as session:
        found, version, created = AgreementService(session).add_or_update(
            slug, title, text, fields, "material" if material else "editorial"
        )
        if not created:
            click.echo(f"{found.slug}: text unchanged, still version {version.number}", err=True)
        elif version.number == 1:
            click.echo(f"{found.slug}: created, version 1", err=True)
        else:
            click.echo(
                f"{found.slug}: published version {version.number} ({version.change_type})",
                err=True,
            )
            if version.change_type == "material":  # earlier signatures stop counting
                _requeue(session, agreement_id=found.id)
        click.echo(str(version.number))


@agreement.command("list")
def agreement_list() -> None:
    """List agreements with their current version, bot exemptions and agent policy."""
    with _unit_of_work() as session:
        service = AgreementService(session)
        for item in service.list_agreements():
            numbers = [v.number for v in item.versions if v.published_at is not None]
            current = f"v{max(numbers)}" if numbers else "no published version"
            click.echo(
                f"{item.slug}\t{current}\t{item.title}\t{_bots_summary(item)}"
                f"\tagents: {item.agent_policy}"
            )
            _warn_all_bots(item)


ALL_BOTS_WARNING = (
    "{slug}: WARNING every bot account is exempt (--all-bots): anyone can register a GitHub "
    "App, so any bot's commits need no signature; prefer bot ids (undersign agreement bots)"
)


def _bots_summary(item: Agreement) -> str:
    if item.exempt_all_bots:
        return "bots: ALL (risky)"
    if item.exempt_bot_ids is None:
        return "bots: default list"
    return f"bots: {len(item.exempt_bot_ids)} listed"


def _warn_all_bots(item: Agreement) -> None:
    if item.exempt_all_bots:
        click.echo(ALL_BOTS_WARNING.format(slug=item.slug), err=True)


def _bot_ids_option(flag: str, text: str) -> Callable[[Callable[..., None]], Callable[..., None]]:
    """A repeatable option of numeric account ids."""
    return click.option(
        flag, flag[2:], multiple=True, type=click.IntRange(min=1), metavar="ID", help=text
    )


@agreement.command("bots")
@click.argument("slug")
@_bot_ids_option("--add", "Exempt this bot account (its numeric id). Repeatable.")
@_bot_ids_option("--remove", "No longer exempt this bot account id. Repeatable.")
@click.option("--reset", is_flag=True, help="Back to the documented default list.")
@click.option(
    "--all-bots/--listed-bots",
    "all_bots",
    default=None,
    help="Exempt every account GitHub types Bot (risky) / only the listed ids.",
)
def agreement_bots(
    slug: str, add: tuple[int, ...], remove: tuple[int, ...], reset: bool, all_bots: bool | None
) -> None:
    """Which bot accounts need no signature on SLUG, by numeric id; prints the list.

    Without options, only prints. A bot is exempt when GitHub types its account ``Bot`` and
    its id is listed; a login is never matched.
    """
    with _unit_of_work() as session:
        service = AgreementService(session)
        changed = bool(add or remove or reset or all_bots is not None)
        item = (
            service.set_bot_policy(
                slug,
                add=add,
                remove=remove,
                defaults=DEFAULT_BOT_IDS,
                reset=reset,
                all_bots=all_bots,
            )
            if changed
            else service.get(slug)
        )
        ids = DEFAULT_BOT_IDS if item.exempt_bot_ids is None else item.exempt_bot_ids
        source = "the default list" if item.exempt_bot_ids is None else "this agreement's list"
        click.echo(f"{item.slug}: exempt bot ids from {source}:", err=True)
        for line in describe_bots(ids):
            click.echo(line)
        if item.exempt_all_bots:
            click.echo("ALL BOTS")
        _warn_all_bots(item)
        if changed:
            _requeue(session, agreement_id=item.id)


@agreement.command("policy")
@click.argument("slug")
@click.option(
    "--agents",
    "agents",
    type=click.Choice(AGENT_POLICIES),
    required=True,
    help="require-human: agent work needs no signature of its own, the person who "
    "asked must be covered. refuse: any agent-authored commit fails.",
)
def agreement_policy(slug: str, agents: str) -> None:
    """Set what AI coding agents' work needs on SLUG."""
    with _unit_of_work() as session:
        item = AgreementService(session).set_agent_policy(slug, agents)
        click.echo(f"{item.slug}: agents: {item.agent_policy}", err=True)
        _requeue(session, agreement_id=item.id)


# undersign repo ... / undersign org ...


def _mode_options(command: Callable[..., None]) -> Callable[..., None]:
    """``--mode enforce|report`` and ``--report-comments``, shared by both link commands."""
    command = click.option(
        "--report-comments",
        is_flag=True,
        help="In report mode, also comment on pull requests with someone left to sign "
        "(without it, report mode only posts the status).",
    )(command)
    return click.option(
        "--mode",
        type=click.Choice(LINK_MODES),
        default="enforce",
        show_default=True,
        help="enforce: the status fails until everyone signed. report: the status always "
        "succeeds and says how many signed (a rollout).",
    )(command)


def _mode_note(link: RepoLink | OrgLink) -> str:
    if link.mode != "report":
        return ""
    return " in report mode" + (" (with comments)" if link.report_comments else "")


@click.group("repo")
def repo() -> None:
    """Choose which agreement covers a repository (wins over its organization's)."""


@repo.command("link")
@click.argument("full_name", metavar="OWNER/REPO")
@click.argument("slug")
@click.option("--exempt-org-members", is_flag=True, help="Members of the owner org need not sign.")
@click.option(
    "--exempt-collaborators", is_flag=True, help="Repository collaborators need not sign."
)
@_mode_options
def repo_link(
    full_name: str,
    slug: str,
    exempt_org_members: bool,
    exempt_collaborators: bool,
    mode: str,
    report_comments: bool,
) -> None:
    """Cover OWNER/REPO with agreement SLUG (replacing its earlier link and options)."""
    with _unit_of_work() as session:
        link = AgreementService(session).link_repo(
            full_name,
            slug,
            exempt_org_members=exempt_org_members,
            exempt_collaborators=exempt_collaborators,
            mode=mode,
            report_comments=report_comments,
        )
        click.echo(
            f"{link.full_name} is covered by {link.agreement.slug}{_mode_note(link)}", err=True
        )
        _requeue(session, repos=(link.full_name,))


@repo.command("unlink")
@click.argument("full_name", metavar="OWNER/REPO")
def repo_unlink(full_name: str) -> None:
    """Remove the repository's own link (its organization's link may still apply)."""
    with _unit_of_work() as session:
        if not AgreementService(session).unlink_repo(full_name):
            raise click.ClickException(f"{full_name} has no repository link")
        _requeue(session, repos=(normalize_repo_full_name(full_name),))


@repo.command("list")
def repo_list() -> None:
    with _unit_of_work() as session:
        for link in AgreementService(session).repo_links():
            click.echo(f"{link.full_name}\t{link.agreement.slug}{_flags(link)}")


@click.group("org")
def org() -> None:
    """Choose which agreement covers every repository of an organization."""


@org.command("link")
@click.argument("org_name", metavar="ORG")
@click.argument("slug")
@click.option("--exempt-org-members", is_flag=True, help="Members of the org need not sign.")
@click.option(
    "--exempt-collaborators", is_flag=True, help="Repository collaborators need not sign."
)
@_mode_options
def org_link(
    org_name: str,
    slug: str,
    exempt_org_members: bool,
    exempt_collaborators: bool,
    mode: str,
    report_comments: bool,
) -> None:
    """Cover every repository of ORG with agreement SLUG (replacing its earlier link)."""
    with _unit_of_work() as session:
        link = AgreementService(session).link_org(
            org_name,
            slug,
            exempt_org_members=exempt_org_members,
            exempt_collaborators=exempt_collaborators,
            mode=mode,
            report_comments=report_comments,
        )
        click.echo(f"{link.org}/* is covered by {link.agreement.slug}{_mode_note(link)}", err=True)
        _requeue(session, orgs=(link.org,))


@org.command("unlink")
@click.argument("org_name", metavar="ORG")
def org_unlink(org_name: str) -> None:
    with _unit_of_work() as session:
        if not AgreementService(session).unlink_org(org_name):
            raise click.ClickException(f"{org_name} has no organization link")
        _requeue(session, orgs=(normalize_org(org_name),))


@org.command("list")
def org_list() -> None:
    with _unit_of_work() as session:
        for link in AgreementService(session).org_links():
            click.echo(f"{link.org}\t{link.agreement.slug}{_flags(link)}")


def _flags(link: object) -> str:
    flags = [
        label
        for attribute, label in (
            ("exempt_org_members", "exempt-org-members"),
            ("exempt_collaborators", "exempt-collaborators"),
            ("report_only", "report"),
            ("report_comments", "report-comments"),
        )
        if getattr(link, attribute, False)
    ]
    return "\t" + ",".join(flags) if flags else ""


# undersign signatures ...


@click.group("signatures")
def signatures() -> None:
    """Export and revoke signatures."""


@signatures.command("export")
@click.argument("slug")
@click.option(
    "--format",
    "output_format",
    type=click.Choice(["json", "csv"]),
    default="json",
    show_default=True,
)
@click.option("--version", "version", type=click.IntRange(min=1), help="Only this version.")
def signatures_export(slug: str, output_format: str, version: int | None) -> None:
    """Write every signature of SLUG (revoked ones included) to stdout."""

    def write(chunk: str) -> None:
        click.echo(chunk, nl=False)

    with _unit_of_work() as session:
        service = SignatureService(session)
        field_names = [f.name for f in service.agreements.get(slug).fields]
        rows = service.export(slug, version)
        if output_format == "csv":
            write_csv(rows, field_names, write)
        else:
            write_json(rows, write)


@signatures.command("revoke")
@click.argument("slug")
@click.argument("login")
@click.option("--reason", required=True, help="Recorded with the revocation.")
def signatures_revoke(slug: str, login: str, reason: str) -> None:
    """Revoke LOGIN's signatures on SLUG (LOGIN means whoever holds it most recently).

    Open pull requests that counted on the signature are re-evaluated (they turn red)."""
    with _unit_of_work() as session:
        service = SignatureService(session, on_change=_change_hook(session))
        service.agreements.get(slug)
        github_id = service.github_id_for_login(login)
        if github_id is None:
            raise click.ClickException(f"no one with login {login!r} has signed or signed in")
        revoked = service.revoke((slug, login), by=_actor(), reason=reason)
        if not revoked:
            raise click.ClickException(
                f"{login} (GitHub id {github_id}) has no active signature on {slug}"
            )
        versions = ", ".join(f"v{s.version.number}" for s in revoked)
        click.echo(f"revoked {login} (GitHub id {github_id}) on {slug}: {versions}", err=True)


# undersign allowlist ...


@click.group("allowlist")
def allowlist() -> None:
    """Logins that need no signature (bots); '*' is a wildcard."""


@allowlist.command("add")
@click.argument("slug")
@click.argument("pattern")
@click.option("--note", default="", help="Why this login needs no signature.")
def allowlist_add(slug: str, pattern: str, note: str) -> None:
    with _unit_of_work() as session:
        entry = AgreementService(session).allowlist_add(slug, pattern, note)
        click.echo(f"{entry.pattern} needs no signature on {slug}", err=True)
        _requeue(session, agreement_id=entry.agreement_id)


@allowlist.command("remove")
@click.argument("slug")
@click.argument("pattern")
def allowlist_remove(slug: str, pattern: str) -> None:
    with _unit_of_work() as session:
        service = AgreementService(session)
        if not service.allowlist_remove(slug, pattern):
            raise click.ClickException(f"{pattern!r} is not on the allowlist of {slug}")
        _requeue(session, agreement_id=service.get(slug).id)


@allowlist.command("list")
@click.argument("slug")
def allowlist_list(slug: str) -> None:
    with _unit_of_work() as session:
        for entry in AgreementService(session).allowlist(slug):
            click.echo(f"{entry.pattern}\t{entry.note}" if entry.note else entry.pattern)


# undersign import ...
#
# Reads another tool's signature file (agreements.importers), resolves logins without an id
# through GitHub, and stores the lot in one transaction (agreements.imports). The report goes
# to stdout: one line per problem, by line number, then a summary. The exit code is 0 only
# when the file had no problem at all; a malformed row (or --dry-run) stores nothing.
# Afterwards the open pull requests of the people imported are evaluated again.


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
    """``GET /users/{login}`` through the bot's client (paced like every call it makes),
    read as a person (``Runtime.look_up_signer``)."""
    runtime = _runtime()

    def resolve(login: str) -> tuple[int, str] | NotAPerson | None:
        needs = f"the file has logins without a GitHub id ({login!r}); resolving them needs GitHub"
        if runtime is None:
            raise click.ClickException(f"{needs}: {GITHUB_CREDENTIALS_FIX}")
        try:
            return runtime.look_up_signer(login)
        except GitHubNotConfigured as exc:  # no bot token and no App: not a traceback
            raise click.ClickException(
                f"{needs}, which undersign cannot ask ({exc}); nothing was imported: "
                f"{GITHUB_CREDENTIALS_FIX}, or give every line its GitHub id"
            ) from None
        except (AppNotInstalled, InstallationSuspended) as exc:  # waiting will not help
            raise click.ClickException(
                f"could not look up {login!r} on GitHub: {exc}; nothing was imported"
            ) from None
        except GitHubError as exc:
            raise click.ClickException(
                f"could not look up {login!r} on GitHub ({exc}); nothing was imported, try "
                "again later"
            ) from None

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
    nothing = report.nothing_to_import()
    if nothing is not None:
        click.echo(nothing)


def _reevaluate(session: Session, report: ImportReport, agreement_id: int) -> None:
    runtime = _runtime()
    if runtime is None:
        return
    message = runtime.reevaluate_signers(session, report.imported, agreement_id=agreement_id)
    if message:
        click.echo(message, err=True)


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
    notes = formula_notes(batch)
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


COMMANDS = (agreement, repo, org, signatures, allowlist, import_command)

#: The same unit of work and runtime, for the other command modules (``cli.companies``).
unit_of_work = _unit_of_work
command_runtime = _runtime
