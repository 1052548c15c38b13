"""Recording who signed in, by GitHub id."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from undersign.accounts.models import User
from undersign.db import utcnow


@dataclass(frozen=True)
class GitHubIdentity:
    """What GitHub's ``GET /user`` told us about the person who signed in."""

    github_id: int
    login: str
    name: str | None = None
    email: str | None = None
    avatar_url: str | None = None
    account_type: str = "User"


def record_sign_in(session: Session, identity: GitHubIdentity) -> User:
    """Create or refresh the user; a renamed login is updated, never duplicated."""
    user = session.get(User, identity.github_id)
    if user is None:
        user = User(github_id=identity.github_id, login=identity.login)
        session.add(user)
    user.login = identity.login
    user.name = identity.name
    user.email = identity.email
    user.avatar_url = identity.avatar_url
    user.account_type = identity.account_type
    user.last_login_at = utcnow()
    session.flush()
    return user
