"""Enforcement's jobs: typed payloads, from the webhook view to the handler, and the handlers.

Three kinds of job reach the queue (``jobs.kind``):

* ``delivery``: a webhook delivery (``Delivery``, the trigger only, never the whole payload);
* ``evaluate``: one pull request to evaluate again (``Evaluate``: a signature, a policy
  change, the reconciler, an app installation, or a deferred comment edit);
* ``person``: someone signed or revoked (``PersonChanged``): one ``evaluate`` job for each
  open pull request they contributed to.

Each payload is a dataclass whose ``to_json`` writes the same keys rows have always had, and
whose ``from_json`` reads any row ever written (missing keys take their defaults), so jobs
stored before an upgrade still run after it. ``register`` puts the handlers, the failure
report and the log fields into the queue's ``JobHandlers``; the handlers turn GitHub's and
enforcement's errors into the queue's retry decisions.

Depends on enforcement (service, checks), github (errors, webhooks), jobs (queue, handlers).
"""

from __future__ import annotations

import logging
import random
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from undersign.enforcement import moves, service
from undersign.enforcement.app_events import APP_EVENT_KINDS, handle_app_delivery
from undersign.github.errors import (
    GitHubError,
    GitHubRequestError,
    InstallationSuspended,
    NotFound,
    RateLimited,
)
from undersign.github.webhooks import Event, has_recheck_command
from undersign.jobs.context import JobContext
from undersign.jobs.handlers import GiveUp, Handler, JobHandlers, RetryLater, RetrySoon
from undersign.jobs.models import Job
from undersign.jobs.queue import JobQueue, new_job
from undersign.jobs.runner import backoff_delay, short_reason

log = logging.getLogger(__name__)

DELIVERY = "delivery"
EVALUATE = "evaluate"
PERSON = "person"

#: A pull request being evaluated by another worker: try again in a moment.
BUSY_RETRY_SECONDS = 2.0


def _int_or_none(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _str_or_none(value: object) -> str | None:
    return value if isinstance(value, str) else None


@dataclass(frozen=True)
class Delivery:
    """A webhook delivery's trigger, as ``github.webhooks.Event`` parsed it."""

    kind: str
    action: str | None = None
    repo: str | None = None
    repo_id: int | None = None
    numbers: tuple[int, ...] = ()
    head_sha: str | None = None
    comment_id: int | None = None
    comment_body: str | None = None
    commenter_login: str | None = None
    commenter_id: int | None = None
    commenter_type: str | None = None
    installation_id: int | None = None
    account_login: str | None = None
    account_id: int | None = None
    repository_selection: str | None = None
    repositories: tuple[tuple[int | None, str], ...] = ()
    commit_count: int | None = None
    pull: Mapping[str, Any] | None = None
    previous_name: str | None = None

    @classmethod
    def from_event(cls, event: Event) -> Delivery:
        return cls(
            kind=event.kind,
            action=event.action,
            repo=event.repo_full_name,
            repo_id=event.repo_id,
            numbers=event.numbers,
            head_sha=event.head_sha,
            comment_id=event.comment_id,
            comment_body=event.comment_body,
            commenter_login=event.commenter_login,
            commenter_id=event.commenter_id,
            commenter_type=event.commenter_type,
            installation_id=event.installation_id,
            account_login=event.account_login,
            account_id=event.account_id,
            repository_selection=event.repository_selection,
            repositories=event.repositories,
            commit_count=event.commit_count,
            pull=event.pull,
            previous_name=event.previous_name,
        )

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> Delivery:
        repositories: list[tuple[int | None, str]] = []
        for item in payload.get("repositories") or []:
            if isinstance(item, list | tuple) and len(item) == 2 and isinstance(item[1], str):
                repositories.append((_int_or_none(item[0]), item[1]))
        pull = payload.get("pull")
        return cls(
            kind=str(payload.get("kind") or ""),
            action=_str_or_none(payload.get("action")),
            repo=_str_or_none(payload.get("repo")),
            repo_id=_int_or_none(payload.get("repo_id")),
            numbers=tuple(int(n) for n in payload.get("numbers") or []),
            head_sha=_str_or_none(payload.get("head_sha")),
            comment_id=_int_or_none(payload.get("comment_id")),
            comment_body=_str_or_none(payload.get("comment_body")),
            commenter_login=_str_or_none(payload.get("commenter_login")),
            commenter_id=_int_or_none(payload.get("commenter_id")),
            commenter_type=_str_or_none(payload.get("commenter_type")),
            installation_id=_int_or_none(payload.get("installation_id")),
            account_login=_str_or_none(payload.get("account_login")),
            account_id=_int_or_none(payload.get("account_id")),
            repository_selection=_str_or_none(payload.get("repository_selection")),
            repositories=tuple(repositories),
            commit_count=_int_or_none(payload.get("commit_count")),
            pull=dict(pull) if isinstance(pull, Mapping) else None,
            previous_name=_str_or_none(payload.get("previous_name")),
        )

    def to_json(self) -> dict[str, Any]:
        """The trigger as stored with the job (never the whole payload); the same keys in rows
        of every version."""
        return {
            "kind": self.kind,
            "action": self.action,
            "repo": self.repo,
            "repo_id": self.repo_id,
            "numbers": list(self.numbers),
            "head_sha": self.head_sha,
            "comment_id": self.comment_id,
            "comment_body": self.comment_body,
            "commenter_login": self.commenter_login,
            "commenter_id": self.commenter_id,
            "commenter_type": self.commenter_type,
            "installation_id": self.installation_id,
            "account_login": self.account_login,
            "account_id": self.account_id,
            "repository_selection": self.repository_selection,
            "repositories": [list(r) for r in self.repositories],
            "commit_count": self.commit_count,
            "pull": dict(self.pull) if self.pull is not None else None,
            "previous_name": self.previous_name,
        }


@dataclass(frozen=True)
class Evaluate:
    """One pull request to evaluate again. ``because`` says why ("person 42", "policy
    change", "email change", "reconcile", "app installed"); ``comment``: this is the
    deferred comment edit of an earlier evaluation; ``pull``: the facts a listing just gave
    (head, base)."""

    repo: str
    number: int
    because: str = ""
    comment: bool = False
    pull: Mapping[str, Any] | None = None

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> Evaluate:
        pull = payload.get("pull")
        return cls(
            repo=str(payload["repo"]),
            number=int(payload["number"]),
            because=str(payload.get("because") or ""),
            comment=bool(payload.get("comment")),
            pull=dict(pull) if isinstance(pull, Mapping) else None,
        )

    def to_json(self) -> dict[str, Any]:
        payload: dict[str, Any] = {"repo": self.repo, "number": self.number}
        payload["because"] = self.because
        if self.pull is not None:
            payload["pull"] = dict(self.pull)
        if self.comment:
            payload["comment"] = True
        return payload

    @property
    def reuses_stored_facts(self) -> bool:
        """A signature or policy change did not touch the pull request itself."""
        return self.because.startswith("person") or self.because in (
            "policy change",
            "email change",
        )


@dataclass(frozen=True)
class PersonChanged:
    """Someone's signature changed (``event``: "signed" or "revoked")."""

    github_id: int
    event: str = ""

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> PersonChanged:
        return cls(github_id=int(payload["github_id"]), event=str(payload.get("event") or ""))

    def to_json(self) -> dict[str, Any]:
        return {"github_id": int(self.github_id), "event": self.event}


def evaluate_jobs(session: Session, evaluations: Iterable[Evaluate], *, lease: int) -> list[Job]:
    """One queued ``evaluate`` job per evaluation, added to ``session`` (the caller's
    transaction: the caller hands the ids to the queue after it commits)."""
    return [new_job(session, EVALUATE, each.to_json(), lease=lease) for each in evaluations]


def person_job(session: Session, change: PersonChanged, *, lease: int) -> Job:
    """The ``person`` job for a signature change, in the change's own transaction."""
    return new_job(session, PERSON, change.to_json(), lease=lease)


def targets(kind: str, payload: Mapping[str, Any] | None) -> tuple[str, list[int]]:
    """The repository and pull requests a job (of any version) is about; none for a merge
    group (its head is gone once the queue moves on) or a job about no repository."""
    payload = payload or {}
    repo = str(payload.get("repo") or "")
    numbers = [n for n in payload.get("numbers") or [] if isinstance(n, int)]
    if kind == EVALUATE and isinstance(payload.get("number"), int):
        numbers = [payload["number"]]
    if payload.get("kind") == "merge_group":
        numbers = []
    return repo, numbers if repo else []


def _describe(job: Job) -> dict[str, Any]:
    repo, numbers = targets(job.kind, job.payload)
    return {
        "repository": repo or None,
        "pull_request": numbers[0] if len(numbers) == 1 else (numbers or None),
    }


def _report_give_up(ctx: JobContext, job: Job, reason: str) -> None:
    """The pull requests of a job that gave up get an ``error`` status saying why, instead
    of waiting forever."""
    repo, numbers = targets(job.kind, job.payload)
    for number in numbers:
        try:
            service.post_error_status(
                ctx, repo, number, _status_reason(reason), not_before=job.created_at
            )
        except Exception as exc:
            log.warning("could not post the error status on %s#%s: %s", repo, number, exc)


def _status_reason(reason: str) -> str:
    if "answered 5" in reason or "Unavailable" in reason or "did not answer" in reason:
        return "GitHub is failing; comment /cla check to retry."
    if "rate limit" in reason.lower():
        return "GitHub rate limit; comment /cla check to retry."
    return reason[:80] + "; comment /cla check to retry."


def _deciding_retries(handler: Handler) -> Handler:
    """GitHub's and enforcement's errors as the queue's decisions: a busy pull request is
    retried in a moment (no attempt used); a rate limit waits exactly as long as GitHub said
    (and shuts the token's gate for every process, or only that of the installation whose
    limit ran out); a plain 404 (repository gone, access
    lost) is not retried, nor is a suspended installation's (nothing can be reported there);
    any other 4xx gives up, reported; 5xx and timeouts back off."""

    def run(ctx: JobContext, queue: JobQueue, job: Job) -> str:
        try:
            return handler(ctx, queue, job)
        except service.PullRequestBusy as exc:
            raise RetrySoon(BUSY_RETRY_SECONDS, str(exc)) from None
        except RateLimited as exc:
            wait = ctx.pacer.block(exc.retry_after, str(exc) or "rate limited", exc.scope)
            jitter = random.uniform(0, 1)  # noqa: S311 - jitter, not crypto
            raise RetryLater(wait + jitter, f"rate limited: {exc}") from None
        except NotFound as exc:
            raise GiveUp(f"GitHub answered 404: {exc}", report=False) from None
        except InstallationSuspended as exc:  # nothing can be written there, not even why
            raise GiveUp(str(exc), report=False) from None
        except GitHubRequestError as exc:
            raise GiveUp(str(exc), report=True) from None
        except GitHubError as exc:
            raise RetryLater(backoff_delay(ctx, job.attempts), short_reason(exc)) from None

    return run


def _verdict(*outcomes: service.Outcome) -> str:
    """``success``/``failure``/``error``, or why nothing was published; one per PR."""
    return ", ".join(o.state or o.skipped or "nothing to do" for o in outcomes) or "no PR"


def run_evaluate(ctx: JobContext, queue: JobQueue, job: Job) -> str:
    """A re-evaluation (a signature, a policy change, the reconciler: usually one of many).

    Its status goes out now; a comment edit it needs goes to a new job at the back of the
    queue. A burst's jobs are all queued before any of those, so every status of the burst
    is posted before any comment edit, under the same write pacing: the last pull request
    turns green after N writes, not 2N. The comment job (``comment``) evaluates again (one
    conditional request, free when nothing changed) and writes the comment inline.
    """
    evaluation = Evaluate.from_json(job.payload)
    outcome = service.evaluate_pull_request(
        ctx,
        evaluation.repo,
        evaluation.number,
        not_before=job.created_at,
        known=service.PullFacts.from_pull(evaluation.pull),
        reuse_stored=evaluation.reuses_stored_facts,
        defer_comment=not evaluation.comment,
    )
    if outcome.comment_deferred:
        # The same cause: what it says about the pull request still holds.
        follow_up = Evaluate(
            evaluation.repo, evaluation.number, evaluation.because, True, evaluation.pull
        )
        with ctx.database.session() as session:
            ids = [j.id for j in evaluate_jobs(session, [follow_up], lease=ctx.settings.job_lease)]
        queue.enqueue_quietly(ids)
        return _verdict(outcome) + " (comment edit queued)"
    return _verdict(outcome)


def run_delivery(ctx: JobContext, queue: JobQueue, job: Job) -> str:
    """A webhook delivery: evaluate, close, or (GitHub App mode) record installations."""
    delivery = Delivery.from_json(job.payload)
    kind, action = delivery.kind, delivery.action
    repo = delivery.repo or ""
    numbers = list(delivery.numbers)
    if kind == "pull_request" and action == "closed":
        for number in numbers:
            service.mark_closed(ctx, repo, number)
        return "closed"
    if kind == "pull_request":
        return _verdict(
            *(
                service.evaluate_pull_request(
                    ctx,
                    repo,
                    number,
                    not_before=job.created_at,
                    commits_hint=delivery.commit_count,
                    just_opened=action == "opened",
                    known=service.PullFacts.from_pull(delivery.pull),
                )
                for number in numbers
            )
        )
    if kind == "issue_comment":
        if not _is_recheck(ctx, delivery):
            return "no recheck command"
        return _verdict(
            *(
                service.evaluate_pull_request(ctx, repo, number, not_before=job.created_at)
                for number in numbers
            )
        )
    if kind == "merge_group":
        return _verdict(
            service.evaluate_merge_group(
                ctx, repo, numbers, str(delivery.head_sha), not_before=job.created_at
            )
        )
    if kind in APP_EVENT_KINDS:
        installed = handle_app_delivery(ctx, delivery, job.created_at)
        _queue_evaluations(ctx, queue, installed, "app installed")
        return f"{kind} handled"
    if kind == "repository":
        followed = moves.follow_moved_repository(
            ctx, delivery.repo_id, delivery.previous_name or "", repo
        )
        _queue_evaluations(ctx, queue, followed, f"repository {action}")
        return f"repository {action}: {len(followed)} open pull request(s) to evaluate"
    if kind in ("organization", "installation_target"):
        followed = moves.follow_renamed_account(
            ctx, delivery.account_id, delivery.previous_name or "", delivery.account_login or ""
        )
        _queue_evaluations(ctx, queue, followed, "account renamed")
        return f"account renamed: {len(followed)} open pull request(s) to evaluate"
    raise GiveUp(f"unknown delivery kind {kind!r}", report=False)


def _queue_evaluations(
    ctx: JobContext, queue: JobQueue, pulls: list[tuple[str, int]], because: str
) -> None:
    """One ``evaluate`` job for each of these pull requests, committed, then queued."""
    if not pulls:
        return
    evaluations = [Evaluate(name, number, because) for name, number in pulls]
    with ctx.database.session() as session:
        ids = [j.id for j in evaluate_jobs(session, evaluations, lease=ctx.settings.job_lease)]
    queue.enqueue_quietly(ids)
    log.info("%s: %d open pull request(s) to evaluate", because, len(ids))


def _is_recheck(ctx: JobContext, delivery: Delivery) -> bool:
    """A recheck command from a person (never from a bot, least of all ourselves)."""
    body = delivery.comment_body
    if delivery.commenter_type == "Bot" or service.COMMENT_MARKER in str(body or ""):
        return False
    login, bot_id = service.bot_identity(ctx)
    commenter_login = delivery.commenter_login or ""
    if delivery.commenter_id == bot_id or commenter_login.casefold() == login.casefold():
        return False
    return has_recheck_command(body, bot_login=login)


def run_person(ctx: JobContext, queue: JobQueue, job: Job) -> str:
    """A signature changed: evaluate every open pull request this person contributed to,
    one job each (so one slow pull request does not hold up the others)."""
    change = PersonChanged.from_json(job.payload)
    because = f"person {change.github_id}"
    with ctx.database.session() as session:
        pulls = service.open_pulls_of_person(session, change.github_id)
        evaluations = [Evaluate(repo, number, because) for repo, number in pulls]
        ids = [j.id for j in evaluate_jobs(session, evaluations, lease=ctx.settings.job_lease)]
    queue.enqueue_quietly(ids)
    return f"{len(ids)} pull request(s) to re-evaluate"


def register(handlers: JobHandlers) -> None:
    """Teach the queue enforcement's three job kinds, its log fields and its failure report."""
    handlers.register(DELIVERY, _deciding_retries(run_delivery))
    handlers.register(EVALUATE, _deciding_retries(run_evaluate))
    handlers.register(PERSON, _deciding_retries(run_person))
    handlers.describe = _describe
    handlers.on_give_up = _report_give_up
