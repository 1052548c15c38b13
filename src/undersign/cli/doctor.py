"""``undersign doctor``: what a self-hoster gets wrong, checked one line at a time.

Each line is ``✓ name``, or ``✗ name: what is wrong. Fix: what to do``, or ``- name: not
checked: why`` (GitHub shows the bot no webhooks on a repository it does not administer, nor on
an organisation it does not own or with a classic token lacking ``admin:org_hook``).
Checks: the settings; the database (reachable, migrated to head); the queue (reachable, a
worker seen in the last few minutes); the GitHub credentials (token mode: the token's user and
scopes; App mode: the JWT, the installations, their permissions and events against what
undersign needs, the app's webhook); for each linked repository: the bot reads its pull
requests and may write statuses, its webhook (URL, content type, events, secret) and that
webhook's last delivery; for each linked organisation: the bot sees its repositories, and (token
mode) the organisation's webhook and its last delivery, the same way (an organisation with no
webhook passes, with a warning, only when each of its repositories has a right one of its
own); agreements that exempt every bot. Exit status 1 when any check fails;
``--json`` prints the same as one JSON object, for monitoring.

Depends on agreements.models, config, db, github (app, errors, registration), jobs.runner,
migrations, runtime, cli.context.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import urlsplit

import click
from sqlalchemy import select, text
from sqlalchemy.exc import SQLAlchemyError

from undersign.agreements.models import Agreement, OrgLink, RepoLink
from undersign.cli.context import CLIContext
from undersign.config import ConfigError, Settings
from undersign.db import Database, NamedLease, describe_error
from undersign.github.client import GitHubClient
from undersign.github.errors import GitHubError, GitHubRequestError, NotFound
from undersign.github.registration import (
    REQUIRED_EVENTS,
    REQUIRED_PERMISSIONS,
    RegistrationError,
    load,
)
from undersign.jobs.runner import PURGE_INTERVAL, PURGE_LEASE_NAME
from undersign.migrations import current_revision, head_revision
from undersign.runtime import Runtime

#: A worker's per-minute sweep takes the purge lease again at most a minute after it ran out;
#: this much later still, no worker has run.
WORKER_GRACE = dt.timedelta(minutes=5)
#: The webhook events a repository hook must send (check runs and merge groups are App-only).
HOOK_EVENTS = ("issue_comment", "pull_request")
#: Where GitHub must deliver, under UNDERSIGN_BASE_URL (web.webhooks serves exactly this path).
WEBHOOK_PATH = "/webhooks/github"
#: Token scopes: one of each group.
TOKEN_SCOPES = (("repo", "public_repo"), ("repo", "repo:status"))
LEVELS = {"read": 1, "write": 2, "admin": 3}
#: An organisation without a webhook: how many of its repositories lacking one are named.
MAX_NAMED = 5


@dataclass
class Check:
    name: str
    status: str  # "ok" | "fail" | "skipped"
    problem: str = ""
    fix: str = ""

    def line(self) -> str:
        if self.status == "ok":
            return f"✓ {self.name}" + (f" ({self.problem})" if self.problem else "")
        if self.status == "skipped":
            return f"- {self.name}: not checked: {self.problem}"
        return f"✗ {self.name}: {self.problem}" + (f" Fix: {self.fix}" if self.fix else "")


def ok(name: str, note: str = "") -> Check:
    return Check(name, "ok", note)


def fail(name: str, problem: str, fix: str) -> Check:
    return Check(name, "fail", problem, fix)


def skipped(name: str, why: str) -> Check:
    return Check(name, "skipped", why)


# --- settings, database, queue -------------------------------------------------------------------


def database_checks(database: Database) -> Iterator[Check]:
    try:
        with database.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
        revision = current_revision(database.engine)
    except SQLAlchemyError as exc:
        yield fail(
            "database reachable",
            f"cannot connect ({describe_error(exc)}).",
            "check UNDERSIGN_DATABASE_URL and that the database server is running.",
        )
        return
    yield ok("database reachable")
    head = head_revision()
    if revision != head:
        yield fail(
            "database migrated",
            f"the schema is at {revision or 'nothing'}, the code needs {head}.",
            "run `undersign db upgrade`.",
        )
    else:
        yield ok("database migrated", f"at {head}")


def queue_checks(runtime: Runtime, now: dt.datetime) -> Iterator[Check]:
    try:
        runtime.queue.huey.pending_count()
    except Exception as exc:
        yield fail(
            "queue reachable",
            f"cannot use the queue ({type(exc).__name__}).",
            "check UNDERSIGN_QUEUE_URL (Redis running?) or the instance folder's permissions.",
        )
        return
    yield ok("queue reachable")
    try:
        with runtime.database.session() as session:
            lease = session.get(NamedLease, PURGE_LEASE_NAME)
            expires = lease.expires_at if lease is not None else None
    except SQLAlchemyError as exc:
        yield skipped("worker seen recently", f"database error ({describe_error(exc)})")
        return
    fix = "start one: `undersign worker`, or `undersign serve` (it runs one unless told not to)."
    if expires is None:
        yield fail("worker seen recently", "no queue worker has ever run here.", fix)
    elif expires < now - WORKER_GRACE:
        seen = expires - dt.timedelta(seconds=PURGE_INTERVAL)
        yield fail(
            "worker seen recently", f"the last worker was seen at {seen:%Y-%m-%d %H:%M} UTC.", fix
        )
    else:
        yield ok("worker seen recently")


# --- GitHub ---------------------------------------------------------------------------------------


def _refusal(exc: GitHubError) -> str:
    return str(exc).rstrip(".") + "."


def token_checks(settings: Settings, runtime: Runtime, needs_read_org: bool) -> Iterator[Check]:
    name = "GitHub token"
    if not settings.github_token:
        yield fail(
            "GitHub credentials",
            "neither a token nor a GitHub App is configured.",
            f"register the App at {settings.base_url}/setup/ (docs/github-app.md), or set "
            "UNDERSIGN_GITHUB_TOKEN.",
        )
        return
    try:
        user, scopes = runtime.bot.github.token_scopes()
    except GitHubRequestError as exc:
        yield fail(
            name,
            f"GitHub refuses the token ({_refusal(exc)})",
            "put a valid token of the bot account in UNDERSIGN_GITHUB_TOKEN.",
        )
        return
    except GitHubError as exc:
        yield fail(name, f"cannot ask GitHub: {_refusal(exc)}", "check UNDERSIGN_GITHUB_API_URL.")
        return
    login = user.get("login", "?")
    if scopes is None:
        yield ok(name, f"acts as {login}; a fine-grained token: repositories checked below")
        return
    missing = [group[-1] for group in TOKEN_SCOPES if not any(s in scopes for s in group)]
    if needs_read_org and not any(s in scopes for s in ("read:org", "admin:org", "write:org")):
        missing.append("read:org")
    if missing:
        yield fail(
            name,
            f"{login}'s token lacks the scope {', '.join(missing)} (it has: "
            f"{', '.join(scopes) or 'none'}).",
            "make a new classic token with the `repo` scope"
            + (" and `read:org`" if "read:org" in missing else "")
            + " and put it in UNDERSIGN_GITHUB_TOKEN.",
        )
    else:
        yield ok(name, f"acts as {login}; scopes {', '.join(scopes)}")


def missing_permissions(have: dict[str, Any], needs_members: bool) -> list[str]:
    wanted = dict(REQUIRED_PERMISSIONS)
    if not needs_members:
        wanted.pop("members")
    return [
        f"{perm}: {level}"
        for perm, level in wanted.items()
        if LEVELS.get(str(have.get(perm)), 0) < LEVELS[level]
    ]


def app_checks(settings: Settings, runtime: Runtime, needs_members: bool) -> Iterator[Check]:
    app = runtime.bot.app
    try:
        info = app.app_info()
    except GitHubRequestError as exc:
        yield fail(
            "GitHub App",
            f"GitHub refuses the app's JWT ({_refusal(exc)})",
            "UNDERSIGN_GITHUB_APP_ID and UNDERSIGN_GITHUB_APP_PRIVATE_KEY must be the same app's: "
            "generate a new private key on the app's page if in doubt.",
        )
        return
    except GitHubError as exc:
        yield fail(
            "GitHub App", f"cannot ask GitHub: {_refusal(exc)}", "check UNDERSIGN_GITHUB_API_URL."
        )
        return
    slug = str(info.get("slug"))
    yield ok("GitHub App", f"{slug}, id {info.get('id')}")
    install_url = f"{settings.github_url}/apps/{slug}/installations/new"
    installations = app.installations()
    if not installations:
        yield fail(
            "App installations", "the app is installed nowhere.", f"install it: {install_url}"
        )
    for inst in installations:
        account = (inst.get("account") or {}).get("login", "?")
        name = f"installation on {account}"
        if inst.get("suspended_at"):
            by = (inst.get("suspended_by") or {}).get("login", "someone")
            yield fail(
                name,
                f"suspended by {by} since {inst['suspended_at']}: GitHub refuses its tokens, so "
                f"undersign cannot check or comment on {account}'s pull requests.",
                f"unsuspend it where it was suspended ({account}'s installed GitHub Apps "
                f"settings, or the app's Advanced page: {info.get('html_url')}/advanced).",
            )
            continue
        lacking = missing_permissions(inst.get("permissions") or {}, needs_members)
        events = set(inst.get("events") or [])
        absent = [e for e in REQUIRED_EVENTS if e not in events]
        problems = []
        if lacking:
            problems.append(f"lacks the permission {', '.join(lacking)}")
        if absent:
            problems.append(f"is not subscribed to {', '.join(absent)}")
        if problems:
            yield fail(
                name,
                "the app " + " and ".join(problems) + ".",
                f"on the app's settings page ({info.get('html_url')}) give it, then accept the "
                f"new permissions on the installation of {account}.",
            )
        else:
            yield ok(name)
    yield from _app_hook_checks(settings, runtime)


def _app_hook_checks(settings: Settings, runtime: Runtime) -> Iterator[Check]:
    app = runtime.bot.app
    try:
        config = app.hook_config()
        last = app.last_hook_delivery()
    except NotFound:
        yield fail(
            "App webhook",
            "the app has no webhook.",
            f"on the app's page: Webhook active, URL {_hook_url(settings)}.",
        )
        return
    except GitHubError as exc:
        yield skipped("App webhook", _refusal(exc))
        return
    yield hook_verdict("App webhook", config, None, settings)
    yield delivery_verdict("App webhook's last delivery", last)


def _hook_url(settings: Settings) -> str:
    """The payload URL every webhook of this instance must have."""
    return f"{settings.base_url}{WEBHOOK_PATH}"


def _url_key(url: str) -> tuple[str, str, int | None, str, str]:
    """What decides where a delivery to ``url`` lands: the scheme and host without case (a
    hook saved as ``https://Example.org/webhooks/github`` delivers here as well), the port
    whether a default one is spelled or not; the path and query exactly, as the webhook
    endpoint matches the path (``/webhooks/github/`` answers 404 here)."""
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    try:
        port = parts.port
    except ValueError:  # a port that is no number: the rest compared as written
        return scheme, parts.netloc.lower(), None, parts.path, parts.query
    default = {"http": 80, "https": 443}.get(scheme)
    return scheme, (parts.hostname or ""), port or default, parts.path, parts.query


def _points_here(config: dict[str, Any], settings: Settings) -> bool:
    """Whether a webhook's ``config`` sends its deliveries to this instance."""
    url = config.get("url")
    return isinstance(url, str) and _url_key(url) == _url_key(_hook_url(settings))


def _our_hooks(hooks: list[dict[str, Any]], settings: Settings) -> list[dict[str, Any]]:
    """The webhooks among ``hooks`` (as GitHub lists them) that point at this instance."""
    return [hook for hook in hooks if _points_here(hook.get("config") or {}, settings)]


def _meant_for_us(hooks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The webhooks among ``hooks`` whose URL ends in undersign's webhook path, slash or not,
    whatever its host: when none points here, the one to name as wrong (an operator's hook
    with a trailing slash or an old host), rather than another service's hook listed first."""
    return [
        hook
        for hook in hooks
        if urlsplit(str((hook.get("config") or {}).get("url") or ""))
        .path.rstrip("/")
        .endswith(WEBHOOK_PATH)
    ]


def hook_verdict(
    name: str, config: dict[str, Any], events: list[str] | None, settings: Settings
) -> Check:
    """A webhook's settings against what undersign needs (``events``: None for an app's
    hook, whose events are the installation's)."""
    expected = _hook_url(settings)
    problems = []
    if not _points_here(config, settings):
        problems.append(f"its URL is {config.get('url')}, not {expected}")
    if config.get("content_type") != "json":
        problems.append(f"its content type is {config.get('content_type')}, not json")
    if events is not None and "*" not in events:
        absent = [e for e in HOOK_EVENTS if e not in events]
        if absent:
            problems.append(f"it does not send {', '.join(absent)}")
    if not config.get("secret"):
        problems.append("it has no secret")
    if not problems:
        return ok(name)
    return fail(
        name,
        "; ".join(problems) + ".",
        f"edit it: Payload URL {expected}, Content type application/json, the events "
        f"{', '.join(HOOK_EVENTS)}, the secret of UNDERSIGN_WEBHOOK_SECRET.",
    )


def delivery_verdict(name: str, last: dict[str, Any] | None) -> Check:
    if last is None:
        return ok(name, "nothing delivered yet")
    if last.get("status") == "OK":
        return ok(name)
    return fail(
        name,
        f"{last.get('event')} at {last.get('delivered_at')} failed: {last.get('status')} "
        f"(HTTP {last.get('status_code')}).",
        "see the delivery on GitHub (Settings → Webhooks → Recent Deliveries); a 401 means the "
        "webhook's secret is not UNDERSIGN_WEBHOOK_SECRET; redeliver it once fixed.",
    )


def repo_checks(settings: Settings, client: GitHubClient, full_name: str) -> Iterator[Check]:
    owner, repo = full_name.split("/", 1)
    try:
        client.first_pulls(owner, repo)
        details = client.get_repo(owner, repo)
    except NotFound:
        fix = (
            f"install the app on {owner} with this repository."
            if settings.app_mode
            else "give the bot's account access to it (a collaborator with write access)."
        )
        yield fail(f"{full_name}: pull requests", "the bot cannot see the repository.", fix)
        return
    except GitHubError as exc:
        yield fail(f"{full_name}: pull requests", _refusal(exc), "see the message.")
        return
    yield ok(f"{full_name}: pull requests")
    if settings.app_mode:
        return  # statuses: the installation's permissions, checked above; hooks: the app's
    if not (details.get("permissions") or {}).get("push"):
        yield fail(
            f"{full_name}: statuses",
            "the bot may not write commit statuses (it has no write access).",
            f"add the bot's account as a collaborator with write access to {full_name}.",
        )
    else:
        yield ok(f"{full_name}: statuses")
    yield from webhook_checks(
        settings,
        full_name,
        lambda: client.list_repo_hooks(owner, repo),
        lambda hook_id: client.last_hook_delivery(owner, repo, hook_id),
        hidden=lambda: "GitHub shows webhooks to repository admins only; check it by hand",
        missing="the repository has no webhook.",
        where="Settings → Webhooks",
    )


def webhook_checks(
    settings: Settings,
    label: str,
    list_hooks: Callable[[], list[dict[str, Any]]],
    last_delivery: Callable[[int], dict[str, Any] | None],
    *,
    hidden: Callable[[], str],
    missing: str,
    where: str,
    without: Callable[[Check], Check] | None = None,
) -> Iterator[Check]:
    """A repository's or organisation's webhooks (``label``: its name): the one pointing at
    this instance (else one meant for it, else the first) against what undersign needs, and
    its last delivery.
    GitHub answers 404 to whoever may not see them: skipped, saying ``hidden()``. With no
    webhook at all the check fails, saying ``missing``, unless ``without`` (given that
    failure) finds the events arrive another way."""
    name = f"{label}: webhook"
    try:
        hooks = list_hooks()
    except (NotFound, GitHubRequestError):
        yield skipped(name, hidden())
        return
    except GitHubError as exc:
        yield skipped(name, _refusal(exc))
        return
    expected = _hook_url(settings)
    ours = _our_hooks(hooks, settings)
    if not ours and not hooks:
        failure = fail(
            name,
            missing,
            f"add one ({where}): Payload URL {expected}, Content type "
            f"application/json, the secret of UNDERSIGN_WEBHOOK_SECRET, the events "
            f"{', '.join(HOOK_EVENTS)}.",
        )
        yield without(failure) if without is not None else failure
        return
    hook = (ours or _meant_for_us(hooks) or hooks)[0]
    yield hook_verdict(name, hook.get("config") or {}, list(hook.get("events") or []), settings)
    try:
        last = last_delivery(int(hook["id"]))
    except GitHubError as exc:
        yield skipped(f"{label}: last delivery", _refusal(exc))
        return
    yield delivery_verdict(f"{label}: last delivery", last)


def org_checks(settings: Settings, runtime: Runtime, org: str) -> Iterator[Check]:
    """An organisation link: the app is installed there (App mode), and the bot can list
    the organisation's repositories (their pull requests are enforced as webhooks arrive)."""
    name = f"org {org}: repositories"
    try:
        if settings.app_mode:
            runtime.bot.app.installation_for_account(org)
        repos = runtime.bot.github.list_account_repos(org)
    except NotFound:
        fix = (
            f"install the app on {org}: {settings.github_url}/apps/SLUG/installations/new."
            if settings.app_mode
            else f"check the name; for private repositories, make the bot a member of {org}."
        )
        yield fail(name, f"GitHub shows the bot no organisation or account {org}.", fix)
        return
    except GitHubError as exc:
        yield fail(name, _refusal(exc), "see the message.")
        return
    yield ok(name, f"{len(repos)} visible")
    if not settings.app_mode:  # App mode: deliveries come through the app's webhook
        yield from org_hook_checks(settings, runtime.bot.github, org, repos)


def org_hook_checks(
    settings: Settings, client: GitHubClient, org: str, repos: list[dict[str, Any]]
) -> Iterator[Check]:
    """Token mode: an organisation webhook is how every repository's events arrive. Without
    one, the check passes only when each repository of ``repos`` (the organisation's, as
    the bot sees them) has a webhook of its own: see ``repo_hooks_instead``."""
    yield from webhook_checks(
        settings,
        f"org {org}",
        lambda: client.list_org_hooks(org),
        lambda hook_id: client.last_org_hook_delivery(org, hook_id),
        hidden=lambda: _org_hooks_hidden(client, org),
        missing="the organisation has no webhook: undersign hears only those of its "
        "repositories that have one of their own.",
        where=f"{org}'s Settings → Webhooks, as an owner",
        without=lambda failure: repo_hooks_instead(settings, client, org, repos, failure),
    )


def repo_hooks_instead(
    settings: Settings,
    client: GitHubClient,
    org: str,
    repos: list[dict[str, Any]],
    failure: Check,
) -> Check:
    """An organisation with no webhook: a warning, not a failure, when every repository it
    covers has its own webhook pointing at this instance, right as ``hook_verdict`` sees it
    (the repositories the reconciler walks: the organisation's, archived ones left out, as
    they take no pull requests). Only those repositories' events arrive: a repository made
    later is not heard until it gets a webhook or the organisation does. Otherwise
    ``failure``, naming the repositories without a webhook the bot can see to be right
    (GitHub is asked about each one until ``MAX_NAMED`` fall short). An organisation with
    no such repository stays a failure: nothing would be heard from it."""
    names = sorted(
        str(repo["full_name"])
        for repo in repos
        if repo.get("full_name") and not repo.get("archived")
    )
    if not names:
        return failure
    lacking: list[str] = []
    for full_name in names:
        problem = _own_hook_problem(settings, client, full_name)
        if problem:
            lacking.append(f"{full_name} ({problem})")
            if len(lacking) == MAX_NAMED:
                break
    if lacking:
        more = " and maybe more" if len(lacking) >= MAX_NAMED else ""
        return fail(
            failure.name,
            f"{failure.problem.rstrip('.')}, and not every one does: {'; '.join(lacking)}{more}.",
            failure.fix + " Or give each of those repositories its own.",
        )
    if len(names) == 1:
        which = f"its only repository, {names[0]}, has its own: only its events arrive"
    else:
        shown = ", ".join(names[:MAX_NAMED])
        if len(names) > MAX_NAMED:
            shown += f" and {len(names) - MAX_NAMED} more"
        which = (
            f"each of its {len(names)} repositories ({shown}) has its own: only their events arrive"
        )
    return ok(
        failure.name,
        f"warning: no organisation webhook, but {which}; a new repository of {org} is not "
        f"heard until it gets a webhook or {org} gets one",
    )


def _own_hook_problem(settings: Settings, client: GitHubClient, full_name: str) -> str | None:
    """What keeps a repository's own webhook from bringing its events here; None if nothing."""
    owner, repo = full_name.split("/", 1)
    try:
        hooks = client.list_repo_hooks(owner, repo)
    except (NotFound, GitHubRequestError):  # the bot cannot vouch for what it cannot see
        return "GitHub shows its webhooks to repository admins only, and the bot is not one"
    except GitHubError as exc:
        return f"not checked: {_refusal(exc).rstrip('.')}"
    ours = _our_hooks(hooks, settings)
    if not ours:
        return "no webhook of its own points at this instance"
    config, events = ours[0].get("config") or {}, list(ours[0].get("events") or [])
    verdict = hook_verdict(full_name, config, events, settings)
    return None if verdict.status == "ok" else f"its webhook: {verdict.problem.rstrip('.')}"


def _org_hooks_hidden(client: GitHubClient, org: str) -> str:
    """Why GitHub answered 404 for an organisation's webhooks: it shows them to the owners
    only, and to a classic token only with the ``admin:org_hook`` scope."""
    try:
        user, scopes = client.token_scopes()
    except GitHubError:
        scopes, user = None, {}
    tail = "; check it by hand (the organisation's Settings → Webhooks)"
    if scopes is not None and "admin:org_hook" not in scopes:
        return (
            "the token lacks the admin:org_hook scope, without which GitHub shows no "
            f"organisation webhook{tail}"
        )
    login = user.get("login") or "the bot"
    return f"GitHub shows {org}'s webhooks to its owners only, and {login} is not one{tail}"


# --- agreements ----------------------------------------------------------------------------------


def agreement_checks(database: Database) -> Iterator[Check]:
    with database.session() as session:
        risky = session.scalars(
            select(Agreement.slug)
            .where(Agreement.exempt_all_bots.is_(True))
            .order_by(Agreement.slug)
        ).all()
    for slug in risky:
        yield fail(
            f"agreement {slug}: bots",
            "every bot is exempt (risky: anyone can make a bot account and open pull requests "
            "with it).",
            f"`undersign agreement bots {slug} --listed-bots` and list the bots you trust.",
        )


# --- the whole run -------------------------------------------------------------------------------


def run_checks(cli: CLIContext, now: dt.datetime) -> Iterator[Check]:
    try:
        settings = cli.settings_or_error()
    except ConfigError as exc:
        yield fail("settings", f"{exc}.", "fix that variable (docs: README, Configuration).")
        return
    yield ok("settings", f"{settings.env}")
    database = cli.database
    checks = list(database_checks(database))
    yield from checks
    if any(c.status == "fail" for c in checks):
        return
    runtime = cli.runtime
    settings = runtime.settings  # with the app registered from /setup/, if any
    yield from queue_checks(runtime, now)
    try:
        load(database, settings.secret_key or "")
    except RegistrationError as exc:
        yield fail("registered GitHub App", f"{exc}.", f"open {settings.base_url}/setup/.")
    with database.session() as session:
        repos = sorted(session.scalars(select(RepoLink.full_name)).all())
        orgs = sorted(session.scalars(select(OrgLink.org)).all())
        needs_members = bool(
            session.scalar(select(RepoLink.id).where(RepoLink.exempt_org_members.is_(True)))
            or session.scalar(select(OrgLink.id).where(OrgLink.exempt_org_members.is_(True)))
        )
    if settings.app_mode:
        github_checks = list(app_checks(settings, runtime, needs_members))
    else:
        github_checks = list(token_checks(settings, runtime, needs_members))
    yield from github_checks
    working = bool(github_checks) and github_checks[0].status == "ok"
    for full_name in repos:
        if working:
            yield from repo_checks(settings, runtime.bot.github, full_name)
        else:
            yield skipped(full_name, "the GitHub credentials do not work")
    for org in orgs:
        if working:
            yield from org_checks(settings, runtime, org)
        else:
            yield skipped(f"org {org}", "the GitHub credentials do not work")
    yield from agreement_checks(database)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print one JSON object (for monitoring)")
@click.pass_context
def doctor(ctx: click.Context, as_json: bool) -> None:
    """Check the settings, database, queue, GitHub credentials and webhooks; exit 1 if any
    check fails."""
    cli = ctx.ensure_object(CLIContext)
    checks: list[Check] = []
    for check in run_checks(cli, dt.datetime.now(dt.UTC)):
        checks.append(check)
        if not as_json:
            click.echo(check.line())
    failed = [c for c in checks if c.status == "fail"]
    if as_json:
        click.echo(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, indent=2))
    elif failed:
        click.echo(f"{len(failed)} check(s) failed.")
    else:
        click.echo("Everything checked is fine.")
    ctx.exit(1 if failed else 0)


COMMANDS = (doctor,)
