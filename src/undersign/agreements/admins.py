"""Who administers which agreement, as GitHub answers with the bot's credentials.

An agreement admin is a person with ``admin`` permission on a repository linked to the
agreement, or an active owner (membership role ``admin``) of an organisation linked to it.
Instance admins (``UNDERSIGN_ADMINS``, numeric ids) administer every agreement without
asking GitHub. Any GitHub error or timeout raises ``AdminLookupFailed``: the caller denies
(fails closed) rather than guessing.

Depends on agreements.models, github (the client and its errors).
"""

from __future__ import annotations

import time
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from undersign.agreements.models import OrgLink, RepoLink
from undersign.github.client import GitHubClient
from undersign.github.errors import NEEDS_AN_OPERATOR, GitHubError, NotFound

#: How long an answer from GitHub is trusted before it is asked again (seconds).
ADMIN_ANSWER_TTL = 600.0


class AdminLookupFailed(Exception):
    """GitHub could not say whether this person administers a repository or organisation."""


@dataclass(frozen=True)
class AdminScope:
    """What one person may manage: everything (an instance admin), or these agreements."""

    github_id: int
    instance_admin: bool
    agreement_ids: frozenset[int] = field(default_factory=frozenset)
    #: ``time.time()`` when GitHub was asked (0 for an instance admin, who is never asked).
    checked_at: float = 0.0
    #: Why GitHub's answer is missing, when the lookup failed (then nothing is allowed).
    failure: str | None = None
    #: The failure is one only an operator can mend (``NEEDS_AN_OPERATOR``): its reason is
    #: theirs to read, not this person's. Not kept in the session: a failed scope never is
    #: reused.
    needs_operator: bool = False

    def administers(self, agreement_id: int) -> bool:
        return self.instance_admin or (self.failure is None and agreement_id in self.agreement_ids)

    def is_stale(self, now: float) -> bool:
        return not self.instance_admin and now - self.checked_at > ADMIN_ANSWER_TTL

    def to_json(self) -> dict[str, Any]:
        """The form kept in the person's server-side session."""
        return {
            "github_id": self.github_id,
            "agreements": sorted(self.agreement_ids),
            "checked_at": self.checked_at,
            "failure": self.failure,
        }

    @classmethod
    def from_json(cls, data: Any, github_id: int, admins: Collection[int]) -> AdminScope | None:
        """A stored scope for this person, or None when there is none (or it is someone
        else's). Instance admin status always comes from the settings, never the session."""
        if github_id in admins:
            return cls(github_id=github_id, instance_admin=True)
        if not isinstance(data, dict) or data.get("github_id") != github_id:
            return None
        try:
            ids = frozenset(int(i) for i in data.get("agreements") or ())
            checked_at = float(data.get("checked_at") or 0.0)
        except (TypeError, ValueError):
            return None
        failure = data.get("failure")
        return cls(
            github_id=github_id,
            instance_admin=False,
            agreement_ids=ids,
            checked_at=checked_at,
            failure=str(failure) if failure else None,
        )


def _about(answer: dict[str, Any], github_id: int) -> bool:
    """The answer is about this person's account: GitHub looks people up by login, and a
    login renamed since the person's last sign-in may now belong to someone else."""
    user = answer.get("user")
    return isinstance(user, dict) and user.get("id") == github_id


def repo_admin(github: GitHubClient, full_name: str, login: str, github_id: int) -> bool:
    """``GET /repos/{owner}/{repo}/collaborators/{login}/permission`` says ``admin``, about
    the account ``github_id``."""
    owner, _, repo = full_name.partition("/")
    answer = github.collaborator_permission_record(owner, repo, login)
    return answer.get("permission") == "admin" and _about(answer, github_id)


def org_owner(github: GitHubClient, org: str, login: str, github_id: int) -> bool:
    """``GET /orgs/{org}/memberships/{login}``: role ``admin`` and state ``active`` (an
    invitation not yet accepted is ``pending``), about the account ``github_id``; 404 means
    no member."""
    try:
        membership = github.org_membership(org, login)
    except NotFound:
        return False
    return (
        membership.get("role") == "admin"
        and membership.get("state") == "active"
        and _about(membership, github_id)
    )


def look_up_scope(
    session: Session,
    github: GitHubClient,
    *,
    github_id: int,
    login: str,
    admins: Collection[int],
    now: float | None = None,
) -> AdminScope:
    """Ask GitHub which linked repositories and organisations this person administers.

    One call per linked repository and organisation (the console is for a few maintainers;
    a big installation pays this once per person every ten minutes). A GitHub error on any
    of them gives a scope that allows nothing and says why.
    """
    checked_at = time.time() if now is None else now
    if github_id in admins:
        return AdminScope(github_id=github_id, instance_admin=True, checked_at=checked_at)
    repos = session.execute(select(RepoLink.full_name, RepoLink.agreement_id)).all()
    orgs = session.execute(select(OrgLink.org, OrgLink.agreement_id)).all()
    allowed: set[int] = set()
    try:
        for org, agreement_id in sorted(orgs):
            if agreement_id not in allowed and org_owner(github, org, login, github_id):
                allowed.add(agreement_id)
        for full_name, agreement_id in sorted(repos):
            if agreement_id not in allowed and repo_admin(github, full_name, login, github_id):
                allowed.add(agreement_id)
    except GitHubError as exc:
        return AdminScope(
            github_id=github_id,
            instance_admin=False,
            checked_at=checked_at,
            failure=str(exc) or type(exc).__name__,
            needs_operator=isinstance(exc, NEEDS_AN_OPERATOR),
        )
    return AdminScope(
        github_id=github_id,
        instance_admin=False,
        agreement_ids=frozenset(allowed),
        checked_at=checked_at,
    )
