"""A repository renamed or transferred, or an account renamed, on GitHub: undersign follows
it to its new name.

undersign knows a repository by the ``owner/name`` it was linked with (its repository or
organisation link, the pull requests it keeps, an installation's list), while GitHub sends
every event after a rename or a transfer under the new name. Left alone, the repository would
quietly lose its agreement: its new pull requests would get no ``license/cla`` status at all,
blocked for ever where branch protection requires it, merged unchecked where it does not.
(GitHub's REST API redirects the old name, 301 or 307 to ``/repositories/{id}``, but only
until another repository takes the name, and webhooks never use it.)

The delivery is a trigger, not the truth: the new name is followed only when GitHub says now
that it is the name of the repository (or account) the delivery is about, so a replayed
delivery of an old rename moves nothing.

Depends on agreements.service, enforcement (app_events, models), github (app, errors).
"""

from __future__ import annotations

import logging

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from undersign.agreements.service import AgreementService
from undersign.enforcement.app_events import open_pulls_installed
from undersign.enforcement.models import PullRequestCheck
from undersign.github.app import forget_repository_name, rename_account
from undersign.github.errors import NotFound
from undersign.jobs.context import JobContext

__all__ = ["GITHUB_ACTOR", "follow_moved_repository", "follow_renamed_account"]

log = logging.getLogger(__name__)

#: Who the audit log names for a change GitHub made (a link following its repository).
GITHUB_ACTOR = "github"


def follow_moved_repository(
    ctx: JobContext, repo_id: int | None, previous: str, current: str
) -> list[tuple[str, int]]:
    """Move what undersign keeps under ``previous`` to ``current`` once GitHub confirms the
    repository ``repo_id`` is called ``current`` now. Returns the open pull requests of the
    repository when an agreement covers it under its new name: the caller queues one
    evaluation each (those opened since the move have had no status yet)."""
    old, new = previous.strip().lower(), current.strip().lower()
    if not old or old == new or repo_id is None:
        return []
    owner, _, name = new.partition("/")
    try:
        now = ctx.github.get_repo(owner, name)
    except NotFound:
        log.info("repository %s (id %s) is not found on GitHub: nothing follows", new, repo_id)
        return []
    if now.get("id") != repo_id or str(now.get("full_name") or "").lower() != new:
        log.info("GitHub no longer calls repository %s %s: nothing follows", repo_id, new)
        return []
    with ctx.database.session() as session:
        moved = AgreementService(session, actor=GITHUB_ACTOR).follow_repo_move(old, new)
        _move_checks(session, old, new)
    forget_repository_name(ctx.database, old)
    log.info("repository %s is now %s%s", old, new, " (its link followed)" if moved else "")
    return open_pulls_installed(ctx, [new])


def follow_renamed_account(
    ctx: JobContext, account_id: int | None, previous: str, current: str
) -> list[tuple[str, int]]:
    """An organisation or user renamed itself: its link, its repositories' links, the pull
    requests undersign keeps and the installation on it go by ``current``, once GitHub
    confirms that account ``account_id`` is called ``current`` now. Returns the open pull
    requests undersign knew of there, to evaluate again."""
    old, new = previous.strip().lower(), current.strip().lower()
    if not old or old == new or account_id is None:
        return []
    account = ctx.github.account(new)
    if account is None or account.id != account_id or account.login.lower() != new:
        log.info("GitHub no longer calls account %s %s: nothing follows", account_id, new)
        return []
    with ctx.database.session() as session:
        moved = AgreementService(session, actor=GITHUB_ACTOR).follow_account_rename(old, new)
        names = session.scalars(
            select(PullRequestCheck.repo_full_name)
            .where(PullRequestCheck.repo_full_name.startswith(f"{old}/"))
            .distinct()
        ).all()
        for name in names:
            _move_checks(session, name, f"{new}/{name.partition('/')[2]}")
        pulls = session.execute(
            select(PullRequestCheck.repo_full_name, PullRequestCheck.number)
            .where(
                PullRequestCheck.repo_full_name.startswith(f"{new}/"),
                PullRequestCheck.is_open.is_(True),
            )
            .order_by(PullRequestCheck.repo_full_name, PullRequestCheck.number)
        ).all()
    rename_account(ctx.database, old, new)
    log.info("account %s is now %s (%d link(s) followed)", old, new, moved)
    return [(name, int(number)) for name, number in pulls]


def _move_checks(session: Session, old: str, new: str) -> None:
    """The pull requests undersign keeps under repository ``old`` go by ``new``; one already
    seen under the new name keeps that row, and the old one closes."""
    taken = set(
        session.scalars(
            select(PullRequestCheck.number).where(PullRequestCheck.repo_full_name == new)
        )
    )
    session.execute(
        update(PullRequestCheck)
        .where(PullRequestCheck.repo_full_name == old, PullRequestCheck.number.in_(taken))
        .values(is_open=False)
    )
    session.execute(
        update(PullRequestCheck)
        .where(PullRequestCheck.repo_full_name == old, PullRequestCheck.number.not_in(taken))
        .values(repo_full_name=new)
    )
