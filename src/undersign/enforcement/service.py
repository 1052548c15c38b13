"""Evaluate a pull request against its agreement and tell GitHub: the CLA bot's main loop.

Level-triggered (SECURITY.md W7): whatever woke us (a delivery, a replay, a signature, the
command line), we read the pull request's *current* commits and give the verdict to the pull
request's head as GitHub reports it (``pull_request.head.sha``), never to an element of the
commit list: the head a trigger carries is used only when it is the one tip of the commits
just listed, otherwise the pull request is read again. So a stale or replayed trigger can
never set a verdict on anything else. The opener (``pull_request.user``) is read from the
same pull request. Call budget for a pull request of at most 100 commits whose authors all
signed, evaluated from its webhook: one call to list the commits and one to post the status;
an unchanged re-evaluation costs one conditional request (a 304, free of rate limit) and
posts nothing. A ``/cla check``, the command line and merge groups read the pull request
itself (one more call), so a closed pull request is left alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from undersign.accounts.models import User
from undersign.agreements.companies import CompanyCoverage, CompanyService
from undersign.agreements.emails import ProvenEmailService
from undersign.agreements.service import AgreementService, SignatureService
from undersign.db import utcnow
from undersign.enforcement.agents import DEFAULT_BOT_IDS, AgentPolicy
from undersign.enforcement.checks import publish_check_run, publish_merge_group_check
from undersign.enforcement.contributors import (
    DEFAULT_NOREPLY_DOMAIN,
    Contributor,
    EmailResolver,
    LoginResolver,
    commit_emails,
    contributors_from_commits,
    github_account,
)
from undersign.enforcement.lease import (
    HeldPullRequest,
    PullRequestBusy,
    PullRequestSnapshot,
    pr_lease,
)
from undersign.enforcement.models import BotIdentity, PullRequestCheck, PullRequestContributor
from undersign.enforcement.policy import Exemptions, Verdict, evaluate
from undersign.enforcement.report import (
    COMMENT_MARKER,
    DESCRIPTION_LIMIT,
    comment_body,
    comment_needed,
    is_own_comment,
    report_description,
    status_description,
)
from undersign.github.client import PULL_COMMITS_CAP
from undersign.github.errors import GitHubUnavailable, NotFound
from undersign.jobs.context import JobContext

__all__ = [
    "IncompleteCommits",
    "OrgMembership",
    "Outcome",
    "PullFacts",
    "PullRequestBusy",
    "PullRequestMoved",
    "bot_identity",
    "evaluate_merge_group",
    "evaluate_pull_request",
    "mark_closed",
    "open_pulls_of_person",
    "post_error_status",
    "sign_url",
]

log = logging.getLogger(__name__)

#: At most this many old-style noreply logins are asked of GitHub per reading of a pull
#: request's commits: trailers are free text, and a push must not buy unbounded API calls.
#: Further ones stay authors without an account (red, as before), in commit order.
LEGACY_NOREPLY_LOOKUPS = 20


class IncompleteCommits(GitHubUnavailable):
    """GitHub returned fewer commits than the pull request has: never answer success."""


class PullRequestMoved(GitHubUnavailable):
    """The pull request's head is not the tip of the commits just listed (a push landed
    between the two reads): try again rather than judge one head by another's commits."""


@dataclass(frozen=True)
class PullFacts:
    """A pull request as GitHub reported it (``GET /pulls/{n}``, a webhook's
    ``pull_request``, an item of the open-pulls listing): the head the status goes on, the
    opener who must be covered, the base branch, whether it is open."""

    head_sha: str
    opener: Contributor | None
    base_ref: str | None = None
    base_sha: str | None = None
    is_open: bool = True
    commits: int | None = None

    @classmethod
    def from_pull(cls, pull: object) -> PullFacts | None:
        """None when ``pull`` lacks a head sha or an opener (then it is read again)."""
        if not isinstance(pull, Mapping):
            return None
        head, base = pull.get("head"), pull.get("base")
        head_sha = head.get("sha") if isinstance(head, Mapping) else None
        opener = github_account(pull.get("user"))
        if not isinstance(head_sha, str) or not head_sha or opener is None:
            return None
        base = base if isinstance(base, Mapping) else {}
        commits = pull.get("commits")
        return cls(
            head_sha=head_sha,
            opener=opener,
            base_ref=base.get("ref") if isinstance(base.get("ref"), str) else None,
            base_sha=base.get("sha") if isinstance(base.get("sha"), str) else None,
            is_open=pull.get("state", "open") == "open",
            commits=commits if isinstance(commits, int) and not isinstance(commits, bool) else None,
        )

    def to_json(self) -> dict[str, Any]:
        """The same facts in GitHub's shape (``from_pull`` reads it back): job payloads."""
        user = {}
        if self.opener is not None:
            user = {
                "id": self.opener.github_id,
                "login": self.opener.login,
                "type": self.opener.account_type,
            }
        return {
            "head": {"sha": self.head_sha},
            "base": {"ref": self.base_ref, "sha": self.base_sha},
            "user": user,
            "state": "open" if self.is_open else "closed",
            "commits": self.commits,
        }


def pull_subset(pull: Mapping[str, Any]) -> dict[str, Any] | None:
    """The few facts of a pull request object a job needs later (never the whole object)."""
    facts = PullFacts.from_pull(pull)
    return facts.to_json() if facts is not None else None


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
    bot_ids: frozenset[int] = DEFAULT_BOT_IDS
    all_bots: bool = False
    agent_policy: AgentPolicy = "require-human"
    # The link's mode: report publishes success with the real count (a rollout), and
    # comments only when ``report_comments``.
    report_only: bool = False
    report_comments: bool = False
    #: A corporate agreement stands beside this one: companies may cover people.
    corporate: bool = False


@dataclass(frozen=True)
class _CompanyNotes:
    """What the pull request comment says about companies, learnt with the verdict: one
    value, so a new note travels from ``_verdict`` to the comment without touching the
    functions in between."""

    #: A corporate agreement stands beside this one: the comment names both ways out.
    corporate: bool = False
    #: The unsigned a company would cover once the maintainers accept it.
    awaiting_review: frozenset[int] = frozenset()
    #: The unsigned a company would cover once it signs the current version.
    signed_earlier: frozenset[int] = frozenset()
    #: The unsigned who signed a version a material change replaced themselves.
    people_signed_earlier: frozenset[int] = frozenset()


def sign_url(base_url: str, slug: str, repo_full_name: str, number: int) -> str:
    """Where a contributor signs; it brings them back to their pull request afterwards.
    Opening it costs no GitHub call."""
    return (
        f"{base_url}/sign/{quote(slug, safe='')}"
        f"?repo={quote(repo_full_name, safe='/')}&pr={int(number)}"
    )


def emails_url(base_url: str) -> str:
    """Where an author proves the addresses GitHub verified for them (``/me/emails``)."""
    return f"{base_url}/me/emails"


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


def _proven_owners(ctx: JobContext, emails: Sequence[str]) -> dict[str, int | None]:
    """{address: the account that proved it, or None} for these author addresses."""
    with ctx.database.session() as session:
        owners = ProvenEmailService(session).owners(emails)
    return {email: owners.get(email) for email in emails}


def _email_resolver(ctx: JobContext, owners: Mapping[str, int | None]) -> EmailResolver:
    """Proven addresses as the accounts that proved them. The login shown is the one
    undersign last saw at sign-in: for display only (never verified, so it grants no
    allowlist exemption)."""
    ids = {owner for owner in owners.values() if owner is not None}
    logins: dict[int, str] = {}
    if ids:
        with ctx.database.session() as session:
            rows = session.execute(
                select(User.github_id, User.login).where(User.github_id.in_(ids))
            )
            logins = {int(github_id): login for github_id, login in rows}

    def resolve(email: str) -> Contributor | None:
        owner = owners.get(email.strip().casefold())
        if owner is None:
            return None
        return Contributor(kind="github", github_id=owner, login=logins.get(owner))

    return resolve


def _legacy_noreply_resolver(ctx: JobContext) -> LoginResolver:
    """The person holding an old-style noreply address's login now: ``GET /users/{login}``,
    asked once per login for one reading of the commits (contributors cached with the
    commits' ETag are not read again), for at most ``LEGACY_NOREPLY_LOOKUPS`` logins. None
    for no such account, an organisation or a bot (``user_account``: not a person, so it
    cannot sign). GitHub failing propagates, so the evaluation is retried rather than
    judging the address as nobody's."""
    answers: dict[str, Contributor | None] = {}

    def resolve(login: str) -> Contributor | None:
        key = login.casefold()  # GitHub logins are case-insensitive
        if key not in answers:
            if len(answers) >= LEGACY_NOREPLY_LOOKUPS:
                return None
            found = ctx.github.user_account(login)
            answers[key] = (
                None
                if found is None
                else Contributor(kind="github", github_id=found[0], login=found[1])
            )
        return answers[key]

    return resolve


def _cache_still_proven(ctx: JobContext, snapshot: PullRequestSnapshot) -> bool:
    """The cached contributors were resolved with the proven owners of today."""
    if snapshot.author_emails is None:  # evaluated before addresses were recorded
        return False
    emails = list(snapshot.author_emails)
    return _proven_owners(ctx, emails) == dict(snapshot.author_emails)


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
    try:
        with ctx.database.session() as session:
            if session.get(BotIdentity, key) is None:
                session.add(BotIdentity(token_key=key, github_id=github_id, login=login))
    except IntegrityError:
        pass  # another worker asked GitHub at the same time and wrote the same row first
    return login, github_id


def _by_bot(user: object, login: str, github_id: int | None) -> bool:
    if not isinstance(user, dict):
        return False
    if github_id is not None and user.get("id") == github_id:
        return True
    other = user.get("login")
    return isinstance(other, str) and other.casefold() == login.casefold()


# --- evaluation ---------------------------------------------------------------------------------


_WARNED_ALL_BOTS: set[str] = set()


def _warn_all_bots(slug: str) -> None:
    """Once per process: an agreement exempts every Bot account (the risky opt-in)."""
    if slug not in _WARNED_ALL_BOTS:
        _WARNED_ALL_BOTS.add(slug)
        log.warning(
            "agreement %s exempts every bot account (all bots): anyone can register a GitHub "
            "App; prefer bot ids (undersign agreement bots %s --listed-bots)",
            slug,
            slug,
        )


def _coverage(ctx: JobContext, name: str) -> _Coverage | None:
    with ctx.database.session() as session:
        agreements = AgreementService(session)
        coverage = agreements.coverage_for_repo(name)
        if coverage is None:
            return None
        agreement = coverage.agreement
        bot_ids = agreement.exempt_bot_ids
        if agreement.exempt_all_bots:
            _warn_all_bots(agreement.slug)
        return _Coverage(
            agreement_id=agreement.id,
            slug=agreement.slug,
            title=agreement.title,
            allowlist=tuple(entry.pattern for entry in agreements.allowlist(agreement)),
            exempt_org_members=coverage.exempt_org_members,
            exempt_collaborators=coverage.exempt_collaborators,
            bot_ids=DEFAULT_BOT_IDS if bot_ids is None else frozenset(int(i) for i in bot_ids),
            all_bots=bool(agreement.exempt_all_bots),
            agent_policy="refuse" if agreement.agent_policy == "refuse" else "require-human",
            report_only=coverage.report_only,
            report_comments=coverage.report_comments,
            corporate=coverage.corporate,
        )


def _dump(contributors: Sequence[Contributor]) -> list[dict[str, Any]]:
    return [{**dataclasses.asdict(c), "sources": list(c.sources)} for c in contributors]


def _load(cache: Iterable[dict[str, Any]]) -> list[Contributor]:
    return [Contributor(**{**item, "sources": tuple(item.get("sources") or ())}) for item in cache]


def _tip(commits: Sequence[Mapping[str, Any]]) -> str | None:
    """The one commit of a complete pull request commit list that no other listed commit
    has as parent: the head those commits describe (None if there is not exactly one)."""
    parents = {
        parent.get("sha")
        for commit in commits
        for parent in commit.get("parents") or ()
        if isinstance(parent, Mapping)
    }
    tips = [str(c.get("sha")) for c in commits if c.get("sha") and c.get("sha") not in parents]
    return tips[0] if len(tips) == 1 else None


def _stored_facts(snapshot: PullRequestSnapshot) -> PullFacts | None:
    """What the last evaluation learnt from GitHub about the pull request, if complete."""
    if snapshot.head_sha is None or not snapshot.opener:
        return None
    opener = github_account(snapshot.opener)
    if opener is None:
        return None
    return PullFacts(
        head_sha=snapshot.head_sha,
        opener=opener,
        base_ref=snapshot.base_ref,
        is_open=snapshot.is_open,
    )


def _fetch_facts(ctx: JobContext, owner: str, repo: str, number: int) -> PullFacts:
    facts = PullFacts.from_pull(ctx.github.get_pull(owner, repo, number))
    if facts is None:
        raise GitHubUnavailable(f"GitHub did not say who opened {owner}/{repo}#{number}")
    return facts


def _read_contributors(
    ctx: JobContext,
    owner: str,
    repo: str,
    number: int,
    snapshot: PullRequestSnapshot,
    commits_hint: int | None = None,
    known: PullFacts | None = None,
) -> tuple[
    PullFacts | None,
    list[Contributor],
    str | None,
    list[dict[str, Any]] | None,
    dict[str, int | None] | None,
]:
    """(the pull request, contributors, etag, cache, {author address: proven owner}) from
    its current commits.

    ``known``: what a trigger said about the pull request; its head is trusted only when it
    is the tip of the commits listed now (or, for a 304, the head those commits had). Else
    the pull request is read (``GET /pulls/{n}``), whose head must then be that tip."""
    gh = ctx.github
    fresh = None
    if known is None:  # nothing to go by: read the pull request first (closed: stop here)
        fresh = known = _fetch_facts(ctx, owner, repo, number)
        if not fresh.is_open:
            return fresh, [], None, None, None
    given: PullFacts = known

    def confirm(head: str | None) -> PullFacts:
        """The facts whose head is ``head``, the tip of the commits just read."""
        facts = given if given.head_sha == head else None
        if facts is None and fresh is None:
            facts = _fetch_facts(ctx, owner, repo, number)
        if facts is None or facts.head_sha != head:
            raise PullRequestMoved(f"{owner}/{repo}#{number} moved while it was read")
        return facts

    cached = (
        snapshot.contributors_cache is not None
        and snapshot.head_sha is not None
        and _cache_still_proven(ctx, snapshot)
    )
    if given.commits is not None:
        commits_hint = given.commits
    # The payload says the capped list cannot be complete: skip its pages.
    skip_list = commits_hint is not None and commits_hint > PULL_COMMITS_CAP and not cached
    if skip_list:
        commits: list[dict[str, Any]] | None = []
        etag: str | None = None
    else:
        commits, etag = gh.list_pull_commits_if_changed(
            owner, repo, number, snapshot.commits_etag if cached else None
        )
    if commits is None:  # 304: the same commits, so the same head, as last time
        facts = confirm(snapshot.head_sha)
        cache = snapshot.contributors_cache or []
        return facts, _load(cache), etag, cache, snapshot.author_emails
    if skip_list or len(commits) >= PULL_COMMITS_CAP:
        # "Lists a maximum of 250 commits for a pull request": page through the compare
        # endpoint instead, and check the count against the pull request's own (fail closed).
        facts = fresh or _fetch_facts(ctx, owner, repo, number)
        total = facts.commits
        if isinstance(total, int) and total > len(commits) and facts.base_sha:
            commits = gh.compare_commits(owner, repo, facts.base_sha, facts.head_sha)
        if not isinstance(total, int) or len(commits) != total:
            raise IncompleteCommits(
                f"GitHub listed {len(commits)} of {total} commits of {owner}/{repo}#{number}"
            )
        etag = None
    elif commits:
        facts = confirm(_tip(commits))
    else:
        return None, [], None, None, None
    owners = _proven_owners(ctx, commit_emails(commits))
    contributors = contributors_from_commits(
        commits,
        noreply_domain=noreply_domain(ctx.settings.github_url),
        resolve_email=_email_resolver(ctx, owners),
        resolve_login=_legacy_noreply_resolver(ctx),
    )
    return facts, contributors, etag, _dump(contributors) if etag else None, owners


class OrgMembership:
    """``is_org_member(org, login)`` asked of GitHub at most once per (org, login) for the
    life of one evaluation, shared by the org-member exemption and the companies' org
    approvals: however many companies approve the same organisation, one evaluation costs
    one call per person. Kept no longer than the evaluation (membership changes)."""

    def __init__(self, ask: Callable[[str, str], bool]) -> None:
        self._ask = ask
        self._answers: dict[tuple[str, str], bool] = {}

    def __call__(self, org: str, login: str) -> bool:
        # GitHub logins and org names are case-insensitive.
        key = (org.casefold(), login.casefold())
        if key not in self._answers:
            self._answers[key] = self._ask(org, login)
        return self._answers[key]


def _member_ids(
    ctx: JobContext,
    coverage: _Coverage,
    owner: str,
    repo: str,
    people: Iterable[Contributor],
    is_org_member: OrgMembership,
) -> set[int]:
    """Org members / write collaborators, asked only for people not covered otherwise."""
    if not (coverage.exempt_org_members or coverage.exempt_collaborators):
        return set()
    members: set[int] = set()
    for person in people:
        if person.github_id is None or not person.login or not person.login_verified:
            continue
        if _is_member(ctx, coverage, owner, repo, person.login, is_org_member):
            members.add(person.github_id)
    return members


def _is_member(
    ctx: JobContext,
    coverage: _Coverage,
    owner: str,
    repo: str,
    login: str,
    is_org_member: OrgMembership,
) -> bool:
    # Private org membership is visible only when the bot itself is a member; otherwise
    # GitHub redirects to the public-members check (REFERENCE.md §2.2).
    if coverage.exempt_org_members and is_org_member(owner, login):
        return True
    if coverage.exempt_collaborators:
        return ctx.github.collaborator_permission(owner, repo, login) in ("admin", "write")
    return False


def _verdict(
    ctx: JobContext,
    coverage: _Coverage,
    owner: str,
    repo: str,
    contributors: list[Contributor],
    opener: Contributor | None,
) -> tuple[Verdict, _CompanyNotes]:
    """The verdict, and who among the unsigned a company would cover once the maintainers
    accept it (``awaiting_review``) or once it signs the current version (``signed_earlier``).

    One session reads the signatures and what the companies say (accepted and pending at
    once); it is closed before GitHub is asked about organisations or collaborators, so no
    connection waits on the network."""
    people = [*contributors, *([opener] if opener is not None else [])]
    ids = [c.github_id for c in people if c.github_id is not None]
    companies = CompanyCoverage()
    earlier: set[int] = set()
    with ctx.database.session() as session:
        signatures = SignatureService(session)
        signed = signatures.covered_ids(coverage.agreement_id, ids)
        if coverage.corporate:
            companies = CompanyService(session).coverage(coverage.agreement_id, set(ids) - signed)
        if set(ids) - signed:  # who signed a replaced version, for the comment
            earlier = signatures.signed_earlier_ids(coverage.agreement_id, set(ids) - signed)
    membership = OrgMembership(ctx.github.is_org_member)
    signed |= companies.with_org_members(_org_candidates(people, signed), membership)
    exemptions = Exemptions(
        bot_ids=coverage.bot_ids, all_bots=coverage.all_bots, allowlist=coverage.allowlist
    )

    def judge(exempt: Exemptions) -> Verdict:
        return evaluate(
            contributors, signed, exempt, opener=opener, agent_policy=coverage.agent_policy
        )

    verdict = judge(exemptions)
    if verdict.unsigned:
        members = _member_ids(ctx, coverage, owner, repo, verdict.unsigned, membership)
        if members:
            verdict = judge(dataclasses.replace(exemptions, member_ids=frozenset(members)))
    unsigned = {c.github_id for c in verdict.unsigned if c.github_id is not None}
    return verdict, _CompanyNotes(
        corporate=coverage.corporate,
        awaiting_review=companies.awaiting_review & unsigned,
        signed_earlier=companies.outdated & unsigned,
        people_signed_earlier=frozenset(earlier & unsigned),
    )


def _org_candidates(people: Iterable[Contributor], signed: set[int]) -> dict[int, str | None]:
    """Who an approved organisation may cover: people not signed, by GitHub id. Only logins
    GitHub's API gave count for org membership (a noreply address's login is anyone's to
    write)."""
    return {
        c.github_id: (c.login if c.login_verified else None)
        for c in people
        if c.github_id is not None and c.kind == "github" and c.github_id not in signed
    }


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _sync_comment(
    ctx: JobContext,
    owner: str,
    repo: str,
    number: int,
    verdict: Verdict,
    snapshot: PullRequestSnapshot,
    url: str,
    title: str,
    confirm: Callable[[], None],
    *,
    look_for_existing: bool = True,
    companies: _CompanyNotes,
) -> tuple[int | None, str | None]:
    """Create, edit in place or leave the one undersign comment; returns (id, body hash)."""
    comment_id, stored_hash = snapshot.comment_id, snapshot.comment_sha256
    if not comment_needed(verdict, comment_id):
        return comment_id, stored_hash
    login, bot_id = bot_identity(ctx)
    body = _comment_text(ctx, verdict, url, title, login, companies)
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


def _comment_text(
    ctx: JobContext,
    verdict: Verdict,
    url: str,
    title: str,
    login: str,
    companies: _CompanyNotes,
) -> str:
    """The comment this verdict wants, as ``_sync_comment`` writes it."""
    return comment_body(
        verdict,
        sign_url=url,
        agreement_title=title,
        bot_login=login,
        emails_url=emails_url(ctx.settings.base_url),
        corporate=companies.corporate,
        awaiting_review=companies.awaiting_review,
        signed_earlier=companies.signed_earlier,
        people_signed_earlier=companies.people_signed_earlier,
    )


def _comment_outdated(
    ctx: JobContext,
    verdict: Verdict,
    snapshot: PullRequestSnapshot,
    url: str,
    title: str,
    companies: _CompanyNotes,
) -> bool:
    """Whether ``_sync_comment`` would write (create or edit), judged from what is stored."""
    if not comment_needed(verdict, snapshot.comment_id):
        return False
    login, _ = bot_identity(ctx)
    body = _comment_text(ctx, verdict, url, title, login, companies)
    return snapshot.comment_id is None or snapshot.comment_sha256 != _sha256(body)


def evaluate_pull_request(
    ctx: JobContext,
    repo_full_name: str,
    number: int,
    *,
    not_before: dt.datetime | None = None,
    commits_hint: int | None = None,
    just_opened: bool = False,
    known: PullFacts | None = None,
    reuse_stored: bool = False,
    defer_comment: bool = False,
) -> Outcome:
    """Evaluate one pull request and publish the verdict (status, comment), idempotently.

    ``not_before``: the time the trigger arrived. When an evaluation that started later has
    already finished, it answered this trigger too, and nothing is asked of GitHub.
    ``commits_hint`` (the payload's commit count), ``just_opened``, ``known`` (the pull
    request a trigger carried) and ``reuse_stored`` (what the last evaluation learnt of it,
    for signature and policy changes) only save calls: the verdict is always computed from
    the commits GitHub lists now, and the head is checked against them.
    A closed pull request is left alone: nothing is posted.
    ``defer_comment``: publish the status (and check run) only; a comment that needs writing
    is left as it is and the outcome says so, for a later evaluation (a burst posts every
    status before any comment: the status is what gates the merge, and writes are paced).
    """
    name = repo_full_name.strip().lower()
    owner, repo = _split(name)
    coverage = _coverage(ctx, name)
    if coverage is None:
        return _release_uncovered(ctx, name, number)
    with pr_lease(ctx, name, number) as held:
        snapshot, values, confirm = held.snapshot, held.values, held.confirm
        if (
            not_before is not None
            and snapshot.evaluated_from is not None
            and snapshot.evaluated_from >= not_before
        ):
            return Outcome(snapshot.verdict, snapshot.head_sha, skipped="already evaluated")
        started = utcnow()
        if known is None and reuse_stored:
            known = _stored_facts(snapshot)
        facts, contributors, etag, cache, author_emails = _read_contributors(
            ctx, owner, repo, number, snapshot, commits_hint, known
        )
        if facts is not None and not facts.is_open:
            values.update(is_open=False)
            return Outcome(None, facts.head_sha, skipped="the pull request is closed")
        if facts is None:
            return Outcome(None, skipped="the pull request has no commits")
        head_sha = facts.head_sha
        verdict, companies = _verdict(ctx, coverage, owner, repo, contributors, facts.opener)
        url = sign_url(ctx.settings.base_url, coverage.slug, name, number)
        # Report mode (a rollout): never blocks, but says how many have signed.
        state = "success" if coverage.report_only else verdict.state
        # Who signed a replaced version reads "sign the new version" here as in the comment.
        describe = report_description if coverage.report_only else status_description
        description = describe(verdict, people_signed_earlier=companies.people_signed_earlier)[
            :DESCRIPTION_LIMIT
        ]
        status = (head_sha, state, description, url)
        if status != snapshot.status:
            # Skipping an identical status matters: GitHub keeps at most 1000 per sha+context.
            confirm()
            values.update(_post_status(ctx, owner, repo, head_sha, state, description, url))
            log.info("%s#%s: %s on %s (%s)", name, number, state, head_sha[:12], description)
        if ctx.settings.app_mode:  # the same verdict as this app's check run
            confirm()
            values.update(
                publish_check_run(
                    ctx,
                    name,
                    number,
                    head_sha,
                    verdict,
                    url,
                    report_only=coverage.report_only,
                    emails_url=emails_url(ctx.settings.base_url),
                    corporate=coverage.corporate,
                    people_signed_earlier=companies.people_signed_earlier,
                )
            )
        silent = coverage.report_only and not coverage.report_comments
        deferred = (
            not silent
            and defer_comment
            and _comment_outdated(ctx, verdict, snapshot, url, coverage.title, companies)
        )
        if deferred or silent:
            # Deferred: stored as it is on GitHub, so the later evaluation sees it is
            # outdated. Silent (report mode without comments): no comment is written or edited.
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
                companies=companies,
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
            opener=facts.to_json()["user"],
            base_ref=facts.base_ref,
            contributor_ids={
                c.github_id: c.github_id in pending
                for c in verdict.contributors
                if c.github_id is not None
            },
            author_emails=author_emails,
        )
        return Outcome(state, head_sha, verdict, comment_deferred=deferred)


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
        and not coverage.report_only  # report mode never blocks the merge queue either
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
    with pr_lease(ctx, name, number) as held:
        head_sha = str(ctx.github.get_pull(owner, repo, number)["head"]["sha"])
        held.confirm()
        held.values.update(
            _post_status(ctx, owner, repo, head_sha, "success", NOT_REQUIRED, None),
            head_sha=head_sha,
            verdict="success",
        )
        return Outcome("success", head_sha, skipped="no agreement covers this repository")


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
    held: HeldPullRequest | None = None  # set once the lease is taken
    try:
        with pr_lease(ctx, name, number) as held:
            snapshot = held.snapshot
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
            held.confirm()
            held.values.update(
                _post_status(ctx, owner, repo, head_sha, "error", description, url),
                verdict="error",
            )
            if ctx.settings.app_mode:
                held.confirm()
                held.values.update(
                    publish_check_run(ctx, name, number, head_sha, None, url, error=description)
                )
    except PullRequestBusy:
        if held is None:
            log.info(
                "%s#%s is being evaluated: its verdict replaces the error status", name, number
            )
        else:
            log.info("%s#%s was taken over by a newer evaluation: no error status", name, number)


__all__ += ["COMMENT_MARKER", "noreply_domain", "pull_subset"]
