"""``undersign company ...``: companies that signed a corporate agreement, and whom they cover.

``company add`` records a company that signed on paper (accepted at once: an operator
recorded it; ``--version N`` is the version it signed, the current one by default);
``accept``/``reject`` review a company that signed on the web (pending until then, covering
nobody); ``approve``/``unapprove`` keep who it covers (``--login`` an account, by the id
GitHub gives for it now; ``--org`` an organisation's members; ``--domain`` addresses people
proved on it); ``manager-add``/``manager-remove`` change its CLA managers (a login added is
kept by its GitHub id; the last manager stays); ``list`` prints a tab-separated line per
company (id, name, source, managers, approvals, status; then ``must sign version N again``
only when its signature predates a material version and it is not rejected, as link
listings add their flags) or, with ``--json``, the export (status, managers, approvals,
``must_sign_again``).
Logins are looked up on GitHub with the bot's token; each change to what an accepted company
covers re-evaluates the open pull requests it can affect. Depends on agreements,
cli.agreements, runtime.
"""

from __future__ import annotations

from collections.abc import Callable

import click
from sqlalchemy.orm import Session

from undersign.agreements.companies import ApprovalHook, CompanyService
from undersign.agreements.export import write_json
from undersign.agreements.models import AgreementVersion
from undersign.cli.agreements import command_runtime, unit_of_work
from undersign.github.errors import GITHUB_CREDENTIALS_FIX, GitHubError, GitHubNotConfigured


def _lookup_login(login: str) -> tuple[int, str] | None:
    """The GitHub id and login of an account, asked of GitHub (a login can be reused); None
    when GitHub has no such user account (a ``LoginResolver``)."""
    runtime = command_runtime()
    if runtime is None:
        raise click.ClickException(f"looking up {login!r} needs GitHub: {GITHUB_CREDENTIALS_FIX}")
    try:
        return runtime.bot.github.user_account(login.strip().lstrip("@"))
    except GitHubNotConfigured as exc:  # no bot token and no App: one line, not a traceback
        raise click.ClickException(
            f"looking up {login!r} needs GitHub, which undersign cannot ask ({exc}); nothing "
            f"was changed: {GITHUB_CREDENTIALS_FIX}"
        ) from None
    except GitHubError as exc:
        raise click.ClickException(f"cannot ask GitHub about {login!r}: {exc}") from exc


def _resolve_login(login: str) -> tuple[int, str]:
    """``_lookup_login``, where no such account is an error."""
    found = _lookup_login(login)
    if found is None:
        raise click.ClickException(f"GitHub has no user account {login!r}")
    return found


def _hook(session: Session) -> ApprovalHook | None:
    runtime = command_runtime()
    return runtime.approval_hook(session) if runtime is not None else None


@click.group("company")
def company() -> None:
    """Companies that signed a corporate agreement, and whom they cover."""


@company.command("add")
@click.argument("slug")
@click.argument("name")
@click.option("--manager", "managers", multiple=True, required=True, metavar="LOGIN")
@click.option(
    "--version",
    "version",
    type=click.IntRange(min=1),
    help="The version the company signed (default: the current one).",
)
@click.option(
    "--document",
    type=click.Path(exists=True, dir_okay=False),
    help="The signed document (its SHA-256 and file name are kept).",
)
def company_add(
    slug: str, name: str, managers: tuple[str, ...], version: int | None, document: str | None
) -> None:
    """Record company NAME, which signed corporate agreement SLUG on paper (its signature
    counts for the version it signed, until a material version follows it)."""
    people = [_resolve_login(login) for login in managers]
    data = None
    if document is not None:
        try:
            with open(document, "rb") as stream:
                data = stream.read()
        except OSError as exc:
            raise click.ClickException(f"cannot read {document!r}: {exc.strerror}") from exc
    with unit_of_work() as session:
        added = CompanyService(session).add_paper(
            slug, name, people, version=version, document=data, document_name=document
        )
        signed = session.get(AgreementVersion, added.version_id)
        number = f" version {signed.number}" if signed is not None else ""
        click.echo(
            f"{added.name}: recorded{number}, managers {', '.join(p[1] for p in people)}",
            err=True,
        )
        click.echo(str(added.id))


def _approval(login: str | None, org: str | None, domain: str | None) -> tuple[str, str, str]:
    given = [(k, v) for k, v in (("login", login), ("org", org), ("domain", domain)) if v]
    if len(given) != 1:
        raise click.UsageError("give exactly one of --login, --org, --domain")
    kind, value = given[0]
    if kind == "login":
        github_id, spelled = _resolve_login(value)
        return "account", str(github_id), spelled
    return kind, value, ""


def _change(
    slug: str, name: str, login: str | None, org: str | None, domain: str | None, *, undo: bool
) -> None:
    kind, value, label = _approval(login, org, domain)
    with unit_of_work() as session:
        service = CompanyService(session, on_change=_hook(session))
        found = service.find(slug, name)
        if undo:
            changed = service.unapprove(found, kind, value)
        else:
            changed = service.approve(found, kind, value, label=label)
        if undo:
            verb = "no longer covers" if changed else "did not cover"
        else:
            verb = "now covers" if changed else "already covered"
        click.echo(f"{found.name}: {verb} {kind} {label or value}", err=True)


_OPTIONS = (
    click.option("--login", help="A GitHub account (stored by its id)."),
    click.option("--org", help="A GitHub organisation: its members, as GitHub answers."),
    click.option("--domain", help="An email domain: addresses people proved at /me/emails."),
)


def _with_options(fn: Callable[..., None]) -> Callable[..., None]:
    for option in reversed(_OPTIONS):
        fn = option(fn)
    return fn


@company.command("approve")
@click.argument("slug")
@click.argument("name")
@_with_options
def company_approve(
    slug: str, name: str, login: str | None, org: str | None, domain: str | None
) -> None:
    """Company NAME (of corporate agreement SLUG) covers an account, org or domain."""
    _change(slug, name, login, org, domain, undo=False)


@company.command("unapprove")
@click.argument("slug")
@click.argument("name")
@_with_options
def company_unapprove(
    slug: str, name: str, login: str | None, org: str | None, domain: str | None
) -> None:
    """Company NAME stops covering an account, org or domain."""
    _change(slug, name, login, org, domain, undo=True)


@company.command("manager-add")
@click.argument("slug")
@click.argument("name")
@click.argument("login")
def company_manager_add(slug: str, name: str, login: str) -> None:
    """Company NAME (of corporate agreement SLUG) gets GitHub account LOGIN as a CLA manager
    (kept by the id GitHub gives for it now)."""
    with unit_of_work() as session:
        service = CompanyService(session)
        found = service.find(slug, name)
        manager, added = service.add_manager(found, login, _lookup_login)
        verb = "is now a CLA manager" if added else "was a CLA manager already"
        click.echo(f"{found.name}: {manager.login} {verb}", err=True)


@company.command("manager-remove")
@click.argument("slug")
@click.argument("name")
@click.argument("login")
def company_manager_remove(slug: str, name: str, login: str) -> None:
    """CLA manager LOGIN no longer manages company NAME (of corporate agreement SLUG); the
    company keeps at least one manager."""
    with unit_of_work() as session:
        service = CompanyService(session)
        found = service.find(slug, name)
        manager = service.manager_named(found, login, _lookup_login)
        removed = service.remove_manager(found, manager.github_id) if manager else None
        if removed is None:
            click.echo(f"{found.name}: {login} was not a CLA manager", err=True)
        else:
            click.echo(f"{found.name}: {removed.login} is no longer a CLA manager", err=True)


def _review(slug: str, name: str, *, accept: bool) -> None:
    with unit_of_work() as session:
        service = CompanyService(session, on_change=_hook(session))
        found = service.find(slug, name)
        changed = service.accept(found) if accept else service.reject(found)
        if accept:
            verb = "accepted: its approvals cover people" if changed else "was accepted already"
        else:
            verb = "rejected: it covers nobody, its name is free" if changed else "unchanged"
        click.echo(f"{found.name}: {verb}", err=True)


@company.command("accept")
@click.argument("slug")
@click.argument("name")
def company_accept(slug: str, name: str) -> None:
    """Accept company NAME, which signed corporate agreement SLUG on the web: its approvals
    start to cover people (open pull requests are evaluated again)."""
    _review(slug, name, accept=True)


@company.command("reject")
@click.argument("slug")
@click.argument("name")
def company_reject(slug: str, name: str) -> None:
    """Reject company NAME of corporate agreement SLUG: it covers nobody, and another
    company may sign under its name."""
    _review(slug, name, accept=False)


@company.command("list")
@click.argument("slug")
@click.option("--json", "as_json", is_flag=True, help="The export: managers and approvals too.")
def company_list(slug: str, as_json: bool) -> None:
    """The companies that signed corporate agreement SLUG."""
    with unit_of_work() as session:
        service = CompanyService(session)
        if as_json:
            write_json(service.export(slug), click.get_text_stream("stdout").write)
            return
        companies = service.list_companies(slug)
        # A rejected company covers nobody whatever it signed: nothing to ask of it.
        again = service.versions_to_sign_again(c for c in companies if c.status != "rejected")
        for found in companies:
            managers = ",".join(m.login for m in found.managers)
            approvals = ",".join(f"{a.kind}:{a.label or a.value}" for a in found.approvals)
            line = "\t".join(
                (str(found.id), found.name, found.source, managers, approvals, found.status)
            )
            if found.id in again:
                line += f"\tmust sign version {again[found.id]} again"
            click.echo(line)


COMMANDS = (company,)
