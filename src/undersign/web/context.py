"""Per-request access to the runtime the app was built with.

Views stay thin: they fetch the database session and the signed-in user from here and
call domain services with plain values. Depends on accounts.models, config, runtime.
"""

from __future__ import annotations

from flask import abort, current_app, g, redirect, request, session, url_for
from sqlalchemy.orm import Session

from undersign.accounts.models import User
from undersign.config import Settings
from undersign.runtime import Runtime

#: ``app.extensions`` key of the app's ``Runtime``.
RUNTIME = "undersign"


def runtime() -> Runtime:
    """The runtime ``create_app`` was given or built (``app.extensions['undersign']``)."""
    result: Runtime = current_app.extensions[RUNTIME]
    return result


def settings() -> Settings:
    return runtime().settings


def github_settings() -> Settings:
    """The settings, once an app registered from the setup page since is taken up (a read
    at most every few seconds, ``Runtime.refresh_credentials``): for the views about to use
    the GitHub credentials (sign-in), never for every request."""
    svc = runtime()
    svc.refresh_credentials()
    return svc.settings


def db_session() -> Session:
    """The request's SQLAlchemy session; rolled back and closed at teardown unless committed."""
    if "db_session" not in g:
        g.db_session = runtime().database.sessionmaker()
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


def is_instance_admin() -> bool:
    """The signed-in person is an instance admin (``UNDERSIGN_ADMINS``): operators' pages,
    and the reasons only an operator can act on."""
    user = current_user()
    return user is not None and user.github_id in settings().admins


def require_user() -> User:
    """The signed-in person (the sign page and the console); a page view without one goes
    to sign-in and comes back, a form post answers 401."""
    user = current_user()
    if user is None:
        if request.method == "GET":
            here = request.full_path.rstrip("?") if request.query_string else request.path
            abort(redirect(url_for("auth.login", next=here)))
        abort(401, description="Your sign-in has expired. Sign in with GitHub and try again.")
    return user
