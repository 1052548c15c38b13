"""GitHub App mode: the webhooks only an App receives (``installation``,
``installation_repositories``, ``check_run``).

An installation records or forgets what the App may act on (github/app.py owns those tables);
a new installation or new repositories put their open pull requests up for a verdict (the
caller queues them); a check run's "Re-run" or "Re-check" re-evaluates its pull requests
here. Kept apart from checks.py, which service.py calls to publish, so neither imports the other
in a circle.
"""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

from sqlalchemy import select

from undersign.agreements.service import AgreementService
from undersign.enforcement import service
from undersign.enforcement.models import PullRequestCheck
from undersign.github.app import forget_installation, record_installation, remove_repositories
from undersign.jobs.context import JobContext

if TYPE_CHECKING:  # the payload type only: enforcement.tasks imports this module
    from undersign.enforcement.tasks import Delivery

APP_EVENT_KINDS = frozenset({"installation", "installation_repositories", "check_run"})
#: ``installation`` actions that say whether it is suspended (a new one is not).
SUSPENSION_STATES = frozenset({"created", "suspend", "unsuspend"})


def handle_app_delivery(
    ctx: JobContext, delivery: Delivery, not_before: dt.datetime
) -> list[tuple[str, int]]:
    """``installation``, ``installation_repositories`` and ``check_run`` deliveries. Returns
    the open pull requests a new installation covers: the caller queues one evaluation each."""
    kind, action = delivery.kind, delivery.action
    installation_id = delivery.installation_id
    repos = list(delivery.repositories)
    if installation_id is None:
        return []
    if kind == "installation" and action == "deleted":
        forget_installation(ctx.database, installation_id)
        return []
    if kind == "installation_repositories" and action == "removed":
        remove_repositories(ctx.database, installation_id, [n for _, n in repos])
        return []
    if kind in ("installation", "installation_repositories"):
        installation: dict[str, Any] = {
            "id": installation_id,
            "account": {"login": delivery.account_login, "id": delivery.account_id},
            "repository_selection": delivery.repository_selection or "selected",
        }
        if kind == "installation" and action in SUSPENSION_STATES:
            installation["suspended_at"] = not_before if action == "suspend" else None
        # A suspend payload need not list the repositories: it changes none of them.
        replace = kind == "installation" and (action not in ("suspend", "unsuspend") or bool(repos))
        record_installation(ctx.database, installation, repos, replace=replace)
        if kind == "installation" and action == "suspend":
            ctx.app.forget_token(installation_id)  # GitHub no longer honours it either
        elif kind == "installation" and action in SUSPENSION_STATES:
            ctx.app.installation_changed(installation_id)  # not suspended (any more)
        if action in ("created", "added", "new_permissions_accepted", "unsuspend"):
            return open_pulls_installed(ctx, [n for _, n in repos])
        return []
    if kind == "check_run":
        numbers = list(delivery.numbers)
        repo = delivery.repo or ""
        if not numbers:
            numbers = _numbers_for_head(ctx, repo, delivery.head_sha or "")
        for number in numbers:
            service.evaluate_pull_request(ctx, repo, number, not_before=not_before)
    return []


def _numbers_for_head(ctx: JobContext, repo: str, head_sha: str) -> list[int]:
    """Fork pull requests leave ``check_run.pull_requests`` empty: find them by head."""
    with ctx.database.session() as session:
        return list(
            session.scalars(
                select(PullRequestCheck.number).where(
                    PullRequestCheck.repo_full_name == repo.lower(),
                    PullRequestCheck.is_open.is_(True),
                    PullRequestCheck.head_sha == head_sha,
                )
            )
        )


def open_pulls_installed(ctx: JobContext, repositories: list[str]) -> list[tuple[str, int]]:
    """The app was just installed (or given repositories): every open pull request of a
    covered repository is to get a verdict."""
    with ctx.database.session() as session:
        agreements = AgreementService(session)
        covered = [r for r in repositories if agreements.coverage_for_repo(r) is not None]
    targets: list[tuple[str, int]] = []
    for full_name in covered:
        owner, repo = full_name.split("/", 1)
        for pull in ctx.github.list_open_pulls(owner, repo):
            targets.append((full_name.lower(), int(pull["number"])))
    return targets
