"""First-run setup (``/setup/``): register undersign's GitHub App with GitHub's manifest flow.

Who sees it: in development, anyone while the environment configures no GitHub credentials
(no token, no app of its own: nobody can sign in yet) and no app has been registered here;
otherwise an instance admin (``UNDERSIGN_ADMINS``), signed in. Everyone else gets 404, as if
the page did not exist, so that once an app is registered no visitor can replace it. One
exception: the browser that just registered the app still sees the page that shows it (for
an hour, and only while that app is the one registered): the callback that stored it puts
the app's id in that browser's server-side session, beside the ``state`` it checked.

The flow: the admin names the app (and, optionally, the organisation that will own it); the
page posts the manifest to GitHub with a ``state`` kept in the server-side session (one use,
one hour); GitHub sends the browser back to ``/setup/callback`` with ``code`` and ``state``;
the code is exchanged and the credentials stored encrypted (``github.registration``); the
page then shows the link that installs the app. The credentials take effect at once in the
process that stored them, and within a few seconds in every other web process and queue
worker, without a restart (``Runtime.refresh_credentials``), unless the environment names an
app of its own, which wins.

Depends on github (registration, errors), web.context.
"""

from __future__ import annotations

import hmac
import json
import logging
import secrets
import time
from urllib.parse import urlencode

from flask import Blueprint, Flask, abort, redirect, render_template, request, session, url_for
from werkzeug.wrappers import Response as BaseResponse

from undersign.github import registration
from undersign.github.errors import GitHubError
from undersign.github.registration import RegisteredApp, RegistrationError
from undersign.web.context import (
    current_user,
    github_settings,
    is_instance_admin,
    runtime,
    settings,
)

log = logging.getLogger(__name__)

bp = Blueprint("setup", __name__, url_prefix="/setup")

#: Session key of the pending registration's ``state``; it lives as long as GitHub's code.
STATE_KEY = "setup_state"
STATE_TTL = 3600
#: Session key of the registration this browser just made: ``{"app_id", "at"}``.
RESULT_KEY = "setup_result"


def _registered() -> RegisteredApp | None:
    config = settings()
    try:
        return registration.load(runtime().database, config.secret_key or "")
    except RegistrationError:
        return None  # the page offers to register again


def _unconfigured_development() -> bool:
    """Development with no GitHub credentials in the environment (nobody can sign in yet
    but through an app registered here)."""
    config = runtime().configured
    return config.env == "development" and not config.github_token and not config.github_app_id


def _shows_own_result(app: RegisteredApp | None) -> bool:
    """This browser registered ``app`` in the last hour (see the module docstring)."""
    result = session.get(RESULT_KEY)
    return (
        app is not None
        and isinstance(result, dict)
        and result.get("app_id") == app.app_id
        and isinstance(result.get("at"), int | float)
        and time.time() - float(result["at"]) <= STATE_TTL
    )


def _guard() -> RegisteredApp | None:
    """The registered app, if the person may use the setup page; 404 otherwise. Once an app
    is registered (even one whose secrets no longer decrypt), only an instance admin may."""
    app = _registered()
    if is_instance_admin():
        return app
    if registration.exists(runtime().database) or not _unconfigured_development():
        abort(404)
    return app


def _page(
    app: RegisteredApp | None,
    *,
    error: str | None = None,
    status: int = 200,
    may_register: bool = True,
) -> tuple[str, int]:
    config = github_settings()  # the page says whether this app is the one in use
    return (
        render_template(
            "setup/index.html",
            app=app,
            may_register=may_register,
            install_url=app.install_url(config.github_url) if app else None,
            in_use=app is not None and config.github_app_id == str(app.app_id),
            environment_app=runtime().configured.app_mode,
            error=error,
            name=request.form.get("name", "undersign"),
            org=request.form.get("org", ""),
        ),
        status,
    )


@bp.get("/")
def index() -> tuple[str, int]:
    app = _registered()
    if app is not None and not is_instance_admin() and _shows_own_result(app):
        return _page(app, may_register=False)  # what this browser just registered
    return _page(_guard())


@bp.post("/")
def start() -> tuple[str, int]:
    """Build the manifest and the form that posts it to GitHub (the browser carries it)."""
    app = _guard()
    try:
        name = registration.check_name(request.form.get("name", ""))
        org = registration.check_org(request.form.get("org", ""))
    except RegistrationError as exc:
        return _page(app, error=str(exc), status=400)
    config = settings()
    state = secrets.token_urlsafe(32)
    session[STATE_KEY] = {"value": state, "at": time.time()}
    action = registration.new_app_url(config, org) + "?" + urlencode({"state": state})
    manifest = registration.manifest(config, name)
    return (
        render_template(
            "setup/continue.html",
            action=action,
            manifest=manifest,
            manifest_json=json.dumps(manifest),
            org=org,
        ),
        200,
    )


def _refused(message: str, status: int = 400) -> tuple[str, int]:
    return render_template("setup/failed.html", message=message), status


@bp.get("/callback")
def callback() -> BaseResponse | tuple[str, int]:
    """GitHub sends the browser back here with ``code`` and ``state``."""
    _guard()
    pending = session.pop(STATE_KEY, None)
    args = request.args
    if any(len(args.getlist(key)) > 1 for key in ("code", "state")):
        return _refused("The answer from GitHub was malformed. Start the registration again.")
    state, code = args.get("state", ""), args.get("code", "")
    if (
        not isinstance(pending, dict)
        or not isinstance(pending.get("value"), str)
        or not state
        or not hmac.compare_digest(pending["value"].encode(), state.encode())
        or time.time() - float(pending.get("at") or 0) > STATE_TTL
    ):
        return _refused(
            "This answer from GitHub does not belong to a registration started in this "
            "browser in the last hour. Start the registration again."
        )
    config = settings()
    try:
        data = registration.convert(config, code)
    except RegistrationError as exc:
        return _refused(str(exc))
    except GitHubError as exc:
        return _refused(f"GitHub could not complete the registration: {exc}", 502)
    if not is_instance_admin() and registration.exists(runtime().database):
        abort(404)  # another browser's registration was stored while GitHub answered this one
    user = current_user()
    app = registration.store(
        runtime().database, config.secret_key or "", data, user.github_id if user else None
    )
    session[RESULT_KEY] = {"app_id": app.app_id, "at": time.time()}
    runtime().refresh_credentials(now=True)  # this process acts as the app from now on
    return redirect(url_for("setup.index"))


def register(app: Flask) -> None:
    app.register_blueprint(bp)
