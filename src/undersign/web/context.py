"""Per-request access to the services the app was built with.

Views stay thin: they fetch the database session and the signed-in user from here and
call domain services with plain values.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import current_app, g, session
from sqlalchemy.orm import Session

from undersign.accounts.models import User
from undersign.config import Settings
from undersign.db import Database


@dataclass
class Services:
    """Everything ``create_app`` wired; stored in ``app.extensions['undersign']``."""

    settings: Settings
    database: Database
    extras: dict[str, Any]


def services() -> Services:
    result: Services = current_app.extensions["undersign"]
    return result


def settings() -> Settings:
    return services().settings


def db_session() -> Session:
    """The request's SQLAlchemy session; rolled back and closed at teardown unless committed."""
    if "db_session" not in g:
        g.db_session = services().database.sessionmaker()
    result: Session = g.db_session
    return result


def close_db_session(_exc: BaseException | None = None) -> None:
    db = g.pop("db_session", None)
    if db is not None:
        db.rollback()
        db.close()


def current_user() -> User | None:
    """The signed-in person, or None. Looked up by GitHub id, never by login."""
    if "current_user" not in g:
        github_id = session.get("github_id")
        g.current_user = db_session().get(User, github_id) if github_id else None
    user: User | None = g.current_user
    return user
