"""Evaluate a pull request against its agreement and tell GitHub: the CLA bot's main loop.

Level-triggered (SECURITY.md W7): whatever woke us (a delivery, a replay, a signature, the
command line), we read the pull request's *current* commits and give the verdict to the head
those commits describe, so a stale or replayed trigger can never set a verdict on anything
else. Call budget for a pull request of at most 100 commits whose authors all signed: one
call to list the commits and one to post the status; an unchanged re-evaluation costs one
conditional request (a 304, free of rate limit) and posts nothing.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
import secrets
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from undersign.agreements.service import AgreementService, SignatureService
from undersign.db import utcnow
from undersign.enforcement.contributors import (
    DEFAULT_NOREPLY_DOMAIN,
    Contributor,
    EmailResolver,
    contributors_from_commits,
)
from undersign.enforcement.models import BotIdentity, PullRequestCheck, PullRequestContributor
from undersign.enforcement.policy import Exemptions, Verdict, evaluate
from undersign.enforcement.report import (
    COMMENT_MARKER,
    DESCRIPTION_LIMIT,
    comment_body,
    comment_needed,
    is_own_comment,
    status_description,
)
from undersign.github.client import PULL_COMMITS_CAP
from undersign.github.errors import GitHubUnavailable, NotFound
from undersign.jobs.context import JobContext

__all__ = [
    "IncompleteCommits",
    "Outcome",
    "PullRequestBusy",
    "bot_identity",
    "evaluate_merge_group",
    "evaluate_pull_request",
    "mark_closed",
    "open_pulls_of_person",
    "post_error_status",
    "sign_url",
]

log = logging.getLogger(__name__)


class PullRequestBusy(Exception):
    """Another worker is evaluating this pull request right now; try again shortly."""


class IncompleteCommits(GitHubUnavailable):
    """GitHub returned fewer commits than the pull request has: never answer success."""


@dataclass(frozen=True)
class Outcome:
    """What an evaluation did. ``state`` is success / failure / error, or None when the
    repository has no agreement."""

    state: str | None
    head_sha: str | None = None
    verdict: Verdict | None = None
    skipped: str | None = None
    # ``defer_comment``: the comment needs a write that was left for a later evaluation.
    comment_deferred: bool = False


@dataclass(frozen=True)
class _Coverage:
    agreement_id: int
    slug: str
    title: str
    allowlist: tuple[str, ...]
    exempt_org_members: bool
    exempt_collaborators: bool


@dataclass(frozen=True)
class _Snapshot:
    head_sha: str | None
    verdict: str | None
    status: tuple[str | None, str | None, str | None, str | None]
    comment_id: int | None
    comment_sha256: str | None
    commits_etag: str | None
    contributors_cache: list[dict[str, Any]] | None
    evaluated_from: dt.datetime | None
    # True when this evaluation created the PR's row: no earlier attempt can have posted
    # anything for it (an attempt that died mid-way would have left the row behind).
    first_sighting: bool = False


def sign_url(base_url: str, slug: str, repo_full_name: str, number: int) -> str:
    """Where a contributor signs; it brings them back to their pull request afterwards.
    Opening it costs no GitHub call."""
    return (
        f"{base_url}/sign/{quote(slug, safe='')}"
        f"?repo={quote(repo_full_name, safe='/')}&pr={int(number)}"
    )


def _split(repo_full_name: str) -> tuple[str, str]:
    owner, _, name = repo_full_name.partition("/")
    if not owner or not name:
        raise ValueError(f"not an owner/repo name: {repo_full_name!r}")
    return owner, name


def noreply_domain(github_url: str) -> str:
    """``users.noreply.github.com``, or ``users.noreply.<host>`` on GitHub Enterprise Server."""
    host = urlsplit(github_url).hostname or ""
    if host in ("github.com", "www.github.com"):
        return DEFAULT_NOREPLY_DOMAIN
    return f"users.noreply.{host}"


def _email_resolver(session: Session) -> EmailResolver | None:
    """The seam for emails a signer proved to be theirs (a later issue); none yet."""
    return None


# --- the per pull request record and its lease ------------------------------------------------


def _lease(ctx: JobContext) -> dt.timedelta:
    return dt.timedelta(seconds=max(ctx.settings.job_lease, 5))


def _lock(ctx: JobContext, name: str, number: int, owner: str) -> _Snapshot:
    now = utcnow()
    lease = _lease(ctx)
    with ctx.database.session() as session:
        check = session.scalar(
            select(PullRequestCheck).where(
                PullRequestCheck.repo_full_name == name, PullRequestCheck.number == number
            )
        )
        first_sighting = check is None
        if first_sighting:
            session.add(PullRequestCheck(repo_full_name=name, number=number, updated_at=now))
    # Created in its own transaction above, so two first deliveries cannot both insert it
    # (the unique constraint refuses the second, whose job then retries).
    with ctx.database.session() as session:
        claimed = session.execute(
            update(PullRequestCheck)
            .where(
                PullRequestCheck.repo_full_name == name,
                PullRequestCheck.number == number,
                or_(
                    PullRequestCheck.locked_until.is_(None),
                    PullRequestCheck.locked_until < now,
                ),
            )
            .values(locked_until=now + lease, lock_owner=owner)
        )
        if getattr(claimed, "rowcount", 0) != 1:
            raise PullRequestBusy(f"{name}#{number} is being evaluated")
        check = session.scalar(
            select(PullRequestCheck).where(
                PullRequestCheck.repo_full_name == name, PullRequestCheck.number == number
            )
        )
        assert check is not None
        return _Snapshot(
            head_sha=check.head_sha,
            verdict=check.verdict,
            status=(
                check.status_sha,
                check.status_state,
                check.status_description,
                check.status_target_url,
            ),
            comment_id=check.comment_id,
            comment_sha256=check.comment_sha256,
            commits_etag=check.commits_etag,
            contributors_cache=check.contributors_cache,
            evaluated_from=check.evaluated_from,
            first_sighting=first_sighting,
        )


def _extend(ctx: JobContext, name: str, number: int, owner: str) -> None:
    """Confirm this evaluation still holds the pull request and push its lease forward.

    Called before every GitHub write and after every pacing wait: a lease that ran out (a
    long wait, a stalled process) may have let a newer evaluation publish meanwhile, and our
    older verdict must not land over it. PullRequestBusy makes the job retry and re-read.
    """
    with ctx.database.session() as session:
        kept = session.execute(
            update(PullRequestCheck)
            .where(
                PullRequestCheck.repo_full_name == name,
                PullRequestCheck.number == number,
                PullRequestCheck.lock_owner == owner,
            )
            .values(locked_until=utcnow() + _lease(ctx))
        )
        if getattr(kept, "rowcount", 0) != 1:
            raise PullRequestBusy(f"{name}#{number}: lost its lock to another evaluation")


def _keep_lock(
    ctx: JobContext, name: str, number: int, owner: str
) -> tuple[Callable[[], None], Callable[[], None]]:
    """From now on every pacing wait of this thread also extends (or loses) the lock.
    Returns (the check to call right before each write, the function that stops this)."""
    previous = ctx.heartbeat()

    def confirm() -> None:
        _extend(ctx, name, number, owner)

    def beat() -> None:
        if previous is not None:
            previous()
        confirm()

    ctx.set_heartbeat(beat)
    return confirm, lambda: ctx.set_heartbeat(previous)


def _unlock(ctx: JobContext, name: str, number: int, owner: str, **values: Any) -> None:
    with ctx.database.session() as session:
        check = session.scalar(
            select(PullRequestCheck).where(
                PullRequestCheck.repo_full_name == name,
                PullRequestCheck.number == number,
                PullRequestCheck.lock_owner == owner,
            )
        )
        if check is None:  # the lease ran out and someone else owns it now
            return
        contributor_ids = values.pop("contributor_ids", None)
        for key, value in values.items():
            setattr(check, key, value)
        if contributor_ids is not None:
            check.contributors.clear()
            session.flush()
            check.contributors.extend(
                PullRequestContributor(github_id=github_id, pending=pending)
                for github_id, pending in contributor_ids.items()
            )
        check.locked_until = None
        check.lock_owner = None
        check.updated_at = utcnow()


def mark_closed(
    ctx: JobContext, repo_full_name: str, number: int, *, before: dt.datetime | None = None
) -> None:
    """A closed pull request waits on nobody: signatures no longer re-evaluate it.
    ``before``: only if its row was last written earlier (it was not evaluated since)."""
    conditions = [
        PullRequestCheck.repo_full_name == repo_full_name.lower(),
        PullRequestCheck.number == number,
    ]
    if before is not None:
        conditions.append(PullRequestCheck.updated_at < before)
    with ctx.database.session() as session:
        session.execute(
            update(PullRequestCheck).where(*conditions).values(is_open=False, updated_at=utcnow())
        )


def open_pulls_of_person(session: Session, github_id: int) -> list[tuple[str, int]]:
    """Open pull requests this person contributed to, from what undersign stored (no GitHub
    call). All of them, not only those waiting on the person: a revocation must turn the ones
    they had signed for red again."""
    rows = session.execute(
        select(PullRequestCheck.repo_full_name, PullRequestCheck.number)
        .join(PullRequestContributor)
        .where(PullRequestContributor.github_id == github_id, PullRequestCheck.is_open.is_(True))
        .order_by(PullRequestCheck.id)
    )
    return [(name, number) for name, number in rows]


# --- who the bot is ---------------------------------------------------------------------------


def bot_identity(ctx: JobContext) -> tuple[str, int | None]:
    """(login, id) of the account the token acts as: ``UNDERSIGN_BOT_LOGIN``, else asked from
    GitHub once (``GET /user``) and kept in the database."""
    if ctx.settings.app_mode:  # installation tokens act as "<app slug>[bot]" (GET /app once)
        return ctx.settings.bot_login or ctx.app.bot_login(), None
    key = ctx.token_key
    with ctx.database.session() as session:
        known = session.get(BotIdentity, key)
        if known is not None:
            return known.login, known.github_id
    if ctx.settings.bot_login:
        return ctx.settings.bot_login, None
    user = ctx.github.authenticated_user()
    login, github_id = str(user.get("login") or ""), user.get("id")
    if not login or not isinstance(github_id, int):
        raise GitHubUnavailable("GET /user did not say who the bot is")
    with ctx.database.session() as session:
        if session.get(BotIdentity, key) is None:
            session.add(BotIdentity(token_key=key, github_id=github_id, login=login))
    return login, github_id


def _by_bot(user: object, login: str, github_id: int | None) -> bool:
    if not isinstance(user, dict):
        return False
    if github_id is not None and user.get("id") == github_id:
        return True
    other = user.get("login")
    return isinstance(other, str) and other.casefold() == login.casefold()


# --- evaluation ---------------------------------------------------------------------------------


def _coverage(ctx: JobContext, name: str) -> _Coverage | None:
    with ctx.database.session() as session:
        agreements = AgreementService(session)
        coverage = agreements.coverage_for_repo(name)
        if coverage is None:
            return None
        agreement = coverage.agreement
        return _Coverage(
            agreement_id=agreement.id,
            slug=agreement.slug,
            title=agreement.title,
            allowlist=tuple(entry.pattern for entry in agreements.allowlist(agreement)),
            exempt_org_members=coverage.exempt_org_members,
            exempt_collaborators=coverage.exempt_collaborators,
        )


def _dump(contributors: Sequence[Contributor]) -> list[dict[str, Any]]:
    return [{**dataclasses.asdict(c), "sources": list(c.sources)} for c in contributors]


def _load(cache: Iterable[dict[str, Any]]) -> list[Contributor]:
    return [Contributor(**{**item, "sources": tuple(item.get("sources") or ())}) for item in cache]


def _read_contributors(
    ctx: JobContext,
    owner: str,
    repo: str,
    number: int,
    snapshot: _Snapshot,
    commits_hint: int | None = None,
) -> tuple[str | None, list[Contributor], str | None, list[dict[str, Any]] | None]:
    """(head sha, contributors, etag, cache) from the pull request's current commits."""
    gh = ctx.github
    cached = snapshot.contributors_cache is not None and snapshot.head_sha is not None
    # The payload says the capped list cannot be complete: skip its pages.
    skip_list = commits_hint is not None and commits_hint > PULL_COMMITS_CAP and not cached
    if skip_list:
        commits: list[dict[str, Any]] | None = []
        etag: str | None = None
    else:
        commits, etag = gh.list_pull_commits_if_changed(
            owner, repo, number, snapshot.commits_etag if cached else None
        )
    if commits is None:  # 304: the same commits as last time
        cache = snapshot.contributors_cache or []
        return snapshot.head_sha, _load(cache), etag, cache
    if skip_list or len(commits) >= PULL_COMMITS_CAP:
        # "Lists a maximum of 250 commits for a pull request": page through the compare
        # endpoint instead, and check the count against the pull request's own (fail closed).
        pull = gh.get_pull(owner, repo, number)
        total = pull.get("commits")
        base_sha, head_sha = pull["base"]["sha"], pull["head"]["sha"]
        if isinstance(total, int) and total > len(commits):
            commits = gh.compare_commits(owner, repo, base_sha, head_sha)
        if not isinstance(total, int) or len(commits) != total:
            raise IncompleteCommits(
                f"GitHub listed {len(commits)} of {total} commits of {owner}/{repo}#{number}"
            )
        etag = None
    elif commits:
        # The list is in order, oldest first; the last commit is the head it describes.
        head_sha = str(commits[-1].get("sha") or "")
    else:
        return None, [], None, None
    with ctx.database.session() as session:
        resolver = _email_resolver(session)
    contributors = contributors_from_commits(
        commits,
        noreply_domain=noreply_domain(ctx.settings.github_url),
        resolve_email=resolver,
    )
    return head_sha, contributors, etag, _dump(contributors) if etag else None


def _member_ids(
    ctx: JobContext, coverage: _Coverage, owner: str, repo: str, people: Iterable[Contributor]
) -> set[int]:
    """Org members / write collaborators, asked only for people not covered otherwise."""
    if not (coverage.exempt_org_members or coverage.exempt_collaborators):
        return set()
    members: set[int] = set()
    for person in people:
        if person.github_id is None or not person.login or not person.login_verified:
            continue
        if _is_member(ctx, coverage, owner, repo, person.login):
            members.add(person.github_id)
    return members


def _is_member(ctx: JobContext, coverage: _Coverage, owner: str, repo: str, login: str) -> bool:
    # Private org membership is visible only when the bot itself is a member; otherwise
    # GitHub redirects to the public-members check (REFERENCE.md §2.2).
    if coverage.exempt_org_members and ctx.github.is_org_member(owner, login):
        return True
    if coverage.exempt_collaborators:
        return ctx.github.collaborator_permission(owner, repo, login) in ("admin", "write")
    return False


def _verdict(
    ctx: JobContext, coverage: _Coverage, owner: str, repo: str, contributors: list[Contributor]
) -> Verdict:
    ids = [c.github_id for c in contributors if c.github_id is not None]
    with ctx.database.session() as session:
        signed = SignatureService(session).covered_ids(coverage.agreement_id, ids)
    exemptions = Exemptions(all_bots=True, allowlist=coverage.allowlist)
    first = evaluate(contributors, signed, exemptions)
    if not first.unsigned:
        return first
    members = _member_ids(ctx, coverage, owner, repo, first.unsigned)
    if not members:
        return first
    exemptions = dataclasses.replace(exemptions, member_ids=frozenset(members))
    return evaluate(contributors, signed, exemptions)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sync_comment(
    ctx: JobContext,
    owner: str,
    repo: str,
    number: int,
    verdict: Verdict,
    snapshot: _Snapshot,
    url: str,
    title: str,
    confirm: Callable[[], None],
    *,
    look_for_existing: bool = True,
) -> tuple[int | None, str | None]:
    """Create, edit in place or leave the one undersign comment; returns (id, body hash)."""
    comment_id, stored_hash = snapshot.comment_id, snapshot.comment_sha256
    if not comment_needed(verdict, comment_id):
        return comment_id, stored_hash
    login, bot_id = bot_identity(ctx)
    body = comment_body(verdict, sign_url=url, agreement_title=title, bot_login=login)
    digest = _sha256(body)
    gh = ctx.github
    if comment_id is None and look_for_existing:
        # Nothing stored (first time, or the database was restored): look for our marker once.
        for comment in gh.list_issue_comments(owner, repo, number):
            if is_own_comment(comment.get("body")) and _by_bot(comment.get("user"), login, bot_id):
                comment_id = int(comment["id"])
                stored_hash = _sha256(str(comment.get("body") or ""))
                break
    if comment_id is not None:
        if stored_hash == digest:
            return comment_id, digest
        try:
            confirm()
            gh.update_comment(owner, repo, comment_id, body)
            return comment_id, digest
        except NotFound:  # someone deleted it; write a new one only if it is still needed
            comment_id = None
            if verdict.passed:
                return None, None
    confirm()
    created = gh.create_comment(owner, repo, number, body)
    return int(created["id"]), digest


def _comment_outdated(
    ctx: JobContext, verdict: Verdict, snapshot: _Snapshot, url: str, title: str
) -> bool:
    """Whether ``_sync_comment`` would write (create or edit), judged from what is stored."""
    if not comment_needed(verdict, snapshot.comment_id):
        return False
    login, _ = bot_identity(ctx)
    body = comment_body(verdict, sign_url=url, agreement_title=title, bot_login=login)
    return snapshot.comment_id is None or snapshot.comment_sha256 != _sha256(body)


def evaluate_pull_request(
    ctx: JobContext,
    repo_full_name: str,
    number: int,
    *,
    not_before: dt.datetime | None = None,
    commits_hint: int | None = None,
    just_opened: bool = False,
    defer_comment: bool = False,
) -> Outcome:
    """Evaluate one pull request and publish the verdict (status, comment), idempotently.

    ``not_before``: the time the trigger arrived. When an evaluation that started later has
    already finished, it answered this trigger too, and nothing is asked of GitHub.
    ``commits_hint`` (the payload's commit count) and ``just_opened`` only save calls: the
    verdict is always computed from what GitHub answers now. ``defer_comment``: publish the
    status (and check run) only; a comment that needs writing is left as it is and the
    outcome says so, for a later evaluation (a burst posts every status before any comment:
    the status is what gates the merge, and writes are paced).
    """
    name = repo_full_name.strip().lower()
    owner, repo = _split(name)
    coverage = _coverage(ctx, name)
    if coverage is None:
        return _release_uncovered(ctx, name, number)
    lock_owner = secrets.token_hex(8)
    snapshot = _lock(ctx, name, number, lock_owner)
    values: dict[str, Any] = {}
    confirm, stop_keeping = _keep_lock(ctx, name, number, lock_owner)
    try:
        if (
            not_before is not None
            and snapshot.evaluated_from is not None
            and snapshot.evaluated_from >= not_before
        ):
            return Outcome(snapshot.verdict, snapshot.head_sha, skipped="already evaluated")
        started = utcnow()
        head_sha, contributors, etag, cache = _read_contributors(
            ctx, owner, repo, number, snapshot, commits_hint
        )
        if head_sha is None:
            return Outcome(None, skipped="the pull request has no commits")
        verdict = _verdict(ctx, coverage, owner, repo, contributors)
        url = sign_url(ctx.settings.base_url, coverage.slug, name, number)
        description = status_description(verdict)[:DESCRIPTION_LIMIT]
        status = (head_sha, verdict.state, description, url)
        if status != snapshot.status:
            # Skipping an identical status matters: GitHub keeps at most 1000 per sha+context.
            confirm()
            values.update(_post_status(ctx, owner, repo, head_sha, verdict.state, description, url))
        if ctx.settings.app_mode:  # the same verdict as this app's check run
            from undersign.enforcement.checks import publish_check_run

            confirm()
            values.update(publish_check_run(ctx, name, number, head_sha, verdict, url))
        deferred = defer_comment and _comment_outdated(ctx, verdict, snapshot, url, coverage.title)
        if deferred:  # stored as it is on GitHub: the later evaluation sees it is outdated
            comment_id, comment_hash = snapshot.comment_id, snapshot.comment_sha256
        else:
            comment_id, comment_hash = _sync_comment(
                ctx,
                owner,
                repo,
                number,
                verdict,
                snapshot,
                url,
                coverage.title,
                confirm,
                # A PR GitHub has just opened and undersign never saw cannot hold our comment.
                look_for_existing=not (just_opened and snapshot.first_sighting),
            )
        pending = {c.github_id for c in verdict.unsigned if c.github_id is not None}
        values.update(
            is_open=True,
            head_sha=head_sha,
            verdict=verdict.state,
            comment_id=comment_id,
            comment_sha256=comment_hash,
            commits_etag=etag,
            contributors_cache=cache,
            evaluated_from=started,
            contributor_ids={
                c.github_id: c.github_id in pending
                for c in verdict.contributors
                if c.github_id is not None
            },
        )
        return Outcome(verdict.state, head_sha, verdict, comment_deferred=deferred)
    finally:
        stop_keeping()
        _unlock(ctx, name, number, lock_owner, **values)


def evaluate_merge_group(
    ctx: JobContext,
    repo_full_name: str,
    numbers: Sequence[int],
    head_sha: str,
    *,
    not_before: dt.datetime | None = None,
) -> Outcome:
    """Give a merge queue's group head the verdict of its pull requests, so a required CLA
    check never blocks the queue (nor lets an unsigned change through)."""
    name = repo_full_name.strip().lower()
    owner, repo = _split(name)
    coverage = _coverage(ctx, name)
    if coverage is None or not numbers:
        return Outcome(None, skipped="no agreement covers this repository")
    failing = [
        n
        for n in numbers
        if evaluate_pull_request(ctx, name, n, not_before=not_before).state != "success"
    ]
    if failing:
        state = "failure"
        description = f"Pull request #{failing[0]} has contributors who have not signed the CLA."
    else:
        state = "success"
        description = "Every contributor in this merge group has signed the CLA."
    ctx.github.create_status(
        owner,
        repo,
        head_sha,
        state=state,
        description=description[:DESCRIPTION_LIMIT],
        target_url=sign_url(ctx.settings.base_url, coverage.slug, name, (failing or numbers)[0]),
        context=ctx.settings.status_context,
    )
    if ctx.settings.app_mode:  # a required app check must not block the merge queue either
        from undersign.enforcement.checks import publish_merge_group_check

        url = sign_url(ctx.settings.base_url, coverage.slug, name, (failing or numbers)[0])
        publish_merge_group_check(ctx, name, head_sha, state, description, url)
    return Outcome(state, head_sha)


NOT_REQUIRED = "No contributor agreement covers this repository any more."


def _post_status(
    ctx: JobContext,
    owner: str,
    repo: str,
    sha: str,
    state: str,
    description: str,
    target_url: str | None,
) -> dict[str, Any]:
    """Post the ``license/cla`` status; return the columns that remember it (so an identical
    status is never posted twice: GitHub keeps at most 1000 per sha and context)."""
    ctx.github.create_status(
        owner,
        repo,
        sha,
        state=state,
        description=description,
        target_url=target_url,
        context=ctx.settings.status_context,
    )
    return {
        "status_sha": sha,
        "status_state": state,
        "status_description": description,
        "status_target_url": target_url,
    }


def _release_uncovered(ctx: JobContext, name: str, number: int) -> Outcome:
    """The repository lost its agreement (a link was removed). A red status undersign posted
    would block merges under branch protection forever: replace it, once, with a success
    that says why. Pull requests undersign never judged are left alone."""
    skipped = Outcome(None, skipped="no agreement covers this repository")
    with ctx.database.session() as session:
        check = session.scalar(
            select(PullRequestCheck).where(
                PullRequestCheck.repo_full_name == name, PullRequestCheck.number == number
            )
        )
        if check is None or not check.is_open or check.status_state in (None, "success"):
            return skipped
    owner, repo = _split(name)
    lock_owner = secrets.token_hex(8)
    _lock(ctx, name, number, lock_owner)
    values: dict[str, Any] = {}
    confirm, stop_keeping = _keep_lock(ctx, name, number, lock_owner)
    try:
        head_sha = str(ctx.github.get_pull(owner, repo, number)["head"]["sha"])
        confirm()
        values.update(
            _post_status(ctx, owner, repo, head_sha, "success", NOT_REQUIRED, None),
            head_sha=head_sha,
            verdict="success",
        )
        return Outcome("success", head_sha, skipped="no agreement covers this repository")
    finally:
        stop_keeping()
        _unlock(ctx, name, number, lock_owner, **values)


def post_error_status(
    ctx: JobContext,
    repo_full_name: str,
    number: int,
    reason: str,
    *,
    not_before: dt.datetime | None = None,
) -> None:
    """After a job gave up: an ``error`` status on the current head rather than a pull request
    left pending forever. Best effort: GitHub may well be what failed.

    Under the pull request's lock, and only when no evaluation that started after the failed
    job's trigger (``not_before``) has finished: its verdict answers that trigger already, and
    an error posted over it would turn a settled pull request back to "error".
    """
    name = repo_full_name.strip().lower()
    owner, repo = _split(name)
    coverage = _coverage(ctx, name)
    if coverage is None:
        return
    lock_owner = secrets.token_hex(8)
    try:
        snapshot = _lock(ctx, name, number, lock_owner)
    except PullRequestBusy:
        log.info("%s#%s is being evaluated: its verdict replaces the error status", name, number)
        return
    values: dict[str, Any] = {}
    confirm, stop_keeping = _keep_lock(ctx, name, number, lock_owner)
    try:
        if (
            not_before is not None
            and snapshot.evaluated_from is not None
            and snapshot.evaluated_from >= not_before
        ):
            return
        head_sha = ctx.github.get_pull(owner, repo, number)["head"]["sha"]
        description = f"undersign could not check the CLA: {reason}"
        if len(description) > DESCRIPTION_LIMIT:
            description = description[: DESCRIPTION_LIMIT - 3] + "..."
        url = sign_url(ctx.settings.base_url, coverage.slug, name, number)
        confirm()
        values.update(
            _post_status(ctx, owner, repo, head_sha, "error", description, url), verdict="error"
        )
        if ctx.settings.app_mode:
            from undersign.enforcement.checks import publish_check_run

            confirm()
            values.update(
                publish_check_run(ctx, name, number, head_sha, None, url, error=description)
            )
    except PullRequestBusy:
        log.info("%s#%s was taken over by a newer evaluation: no error status", name, number)
    finally:
        stop_keeping()
        _unlock(ctx, name, number, lock_owner, **values)


__all__ += ["COMMENT_MARKER", "noreply_domain"]
