"""Sign in with GitHub: the OAuth2 web flow with state, PKCE and every failure handled.

Authlib does the protocol (PKCE S256, the token request, GitHub's HTTP 200 error bodies).
What Authlib leaves to us is checked here: the age of ``state`` (Authlib never looks at its
expiry), GitHub's ``iss`` callback parameter (RFC 9207, ignored by Authlib), duplicated
parameters, and a friendly page for each way the flow can fail. The access token is used
for exactly one call (``GET /user``) and then dropped: it is never stored or logged.

Sign-in asks GitHub for no scope. Proving email addresses (``/me/emails``, issue 14) is a
second authorization through the same code, state, PKCE and ``iss`` checks and the same
callback, asking for ``user:email`` only then: its token reads ``GET /user`` (it must be the
signed-in person's) and ``GET /user/emails`` once, and is dropped.
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

import requests
from authlib.integrations.base_client.errors import MismatchingStateError, OAuthError
from authlib.integrations.flask_client import OAuth
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from sqlalchemy.exc import IntegrityError
from werkzeug.wrappers import Response

from undersign.accounts.service import GitHubIdentity, record_sign_in
from undersign.agreements.emails import GitHubEmail, ProvenEmailService, parse_user_emails
from undersign.auth.redirects import safe_next_path
from undersign.config import Settings
from undersign.web import console
from undersign.web.context import db_session, github_settings, runtime, settings
from undersign.web.ratelimit import sign_in_rate_limit

log = logging.getLogger(__name__)

#: Sign-ins that come back to a page under this prefix learn what the person administers.
CONSOLE_PREFIX = "/admin/"

bp = Blueprint("auth", __name__)

STATE_MAX_AGE = 600  # seconds; also the lifetime of GitHub's authorization codes
MAX_PENDING_FLOWS = 5  # sign-ins started in other tabs that may still come back
FLOWS_KEY = "oauth_flows"
#: The one scope undersign ever asks for, and only to prove email addresses.
EMAIL_SCOPE = "user:email"
#: Where proving email addresses starts and ends.
EMAILS_PAGE = "/me/emails"


#: ``app.extensions`` key of the sign-in client and the credentials it was made with.
OAUTH = "undersign_oauth"


def _oauth_credentials(config: Settings) -> tuple[object, ...]:
    return (
        config.github_client_id,
        config.github_client_secret,
        config.github_url,
        config.github_api_url,
        config.http_timeout,
    )


def _oauth_client(app: Flask, config: Settings) -> Any:
    # One registry per client: Authlib caches built clients, so a shared registry would keep
    # the first app's GitHub URLs (and the first credentials).
    oauth = OAuth(app)
    return oauth.register(
        "github",
        client_id=config.github_client_id,
        client_secret=config.github_client_secret,
        authorize_url=f"{config.github_url}/login/oauth/authorize",
        access_token_url=f"{config.github_url}/login/oauth/access_token",
        api_base_url=f"{config.github_api_url}/",
        client_kwargs={
            "code_challenge_method": "S256",
            # GitHub documents client credentials in the POST body.
            "token_endpoint_auth_method": "client_secret_post",
            "default_timeout": config.http_timeout,
        },
    )


def init_oauth(app: Flask, config: Settings) -> None:
    app.extensions[OAUTH] = (_oauth_credentials(config), _oauth_client(app, config))


class SignInFailed(Exception):
    """One way the sign-in can fail, with the page a person sees."""

    def __init__(self, status: int, title: str, message: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.title = title
        self.message = message
        self.reason = reason


@bp.errorhandler(SignInFailed)
def _sign_in_failed(error: SignInFailed) -> tuple[str, int]:
    log.info("sign-in failed: %s", error.reason)
    return (
        render_template("auth/error.html", title=error.title, message=error.message),
        error.status,
    )


def _github(config: Settings) -> Any:
    """The sign-in client for ``config``'s credentials, made again when they changed (an
    app registered from the setup page brings its own client id and secret). Two threads
    may both make it once: the same client, the last one kept."""
    credentials = _oauth_credentials(config)
    made_for, client = current_app.extensions[OAUTH]
    if made_for != credentials:
        client = _oauth_client(current_app, config)
        current_app.extensions[OAUTH] = (credentials, client)
    return client


def _client_for(flow: dict[str, Any]) -> Any:
    """The sign-in client ``flow`` was started with: GitHub takes a code only from the client
    it was issued to, and in the seconds after an app is registered from the setup page the
    process that started the sign-in and the one it comes back to may not act as the same
    app yet. A flow started with another client has this process read the registration at
    once (a flow is this server's own record, so nobody else can ask for that read); one
    started with the environment's client before the app was taken up finishes with it."""
    config = github_settings()
    started_with = flow.get("client_id", config.github_client_id)
    if started_with != config.github_client_id:
        svc = runtime()
        svc.refresh_credentials(now=True)
        config = svc.settings
        if started_with != config.github_client_id and (
            started_with == svc.configured.github_client_id
        ):
            config = svc.configured
    return _github(config)


@bp.before_request
def _anti_automation() -> None:
    """Sign-in start and callback share one per-IP budget (SECURITY.md O13)."""
    if request.endpoint in ("auth.login", "auth.callback"):
        sign_in_rate_limit()


@bp.get("/login")
def login() -> Response:
    config = github_settings()
    if not config.github_client_id:
        raise SignInFailed(
            503,
            "Sign-in is not configured",
            "This undersign has no GitHub OAuth client configured. Tell its operator.",
            "no client id",
        )
    return start_authorization({"next": safe_next_path(request.args.get("next"))})


def start_authorization(
    flow: dict[str, Any],
    scope: str | None = None,
    *,
    code: int = 302,
    login: str | None = None,
) -> Response:
    """Send the browser to GitHub's authorize page with a new ``state`` bound to this
    session and a PKCE challenge; ``flow`` is what the callback needs afterwards (``next``;
    ``purpose`` and ``github_id`` for proving email addresses). Sign-in asks for no scope.
    ``login`` is GitHub's account hint: its page suggests that account, and says so when
    the browser is signed in to GitHub as another one."""
    config = github_settings()
    client = _github(config)
    extra = {} if scope is None else {"scope": scope}
    if login:
        extra["login"] = login
    authorization = client.create_authorization_url(config.callback_url, **extra)
    client.save_authorize_data(redirect_uri=config.callback_url, **authorization)
    flows: dict[str, dict[str, Any]] = dict(session.get(FLOWS_KEY, {}))
    now = time.time()
    flows = {s: f for s, f in flows.items() if now - f["started"] < STATE_MAX_AGE}
    while len(flows) >= MAX_PENDING_FLOWS:
        oldest = min(flows, key=lambda s: flows[s]["started"])
        flows.pop(oldest)
        session.pop(f"_state_github_{oldest}", None)
    flows[authorization["state"]] = {**flow, "started": now, "client_id": config.github_client_id}
    session[FLOWS_KEY] = flows
    return redirect(authorization["url"], code)


def _single(name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise SignInFailed(
            400,
            "Sign-in link is malformed",
            "The link back from GitHub carried a parameter twice. Please start again.",
            f"duplicated {name}",
        )
    return values[0] if values else None


def _take_flow(state: str | None) -> dict[str, Any]:
    """Consume this browser's record of the sign-in it started; each state works once."""
    if not state:
        raise SignInFailed(
            400,
            "Sign-in could not be verified",
            "The answer from GitHub carried no state, so it cannot be tied to this browser.",
            "missing state",
        )
    flows: dict[str, dict[str, Any]] = dict(session.get(FLOWS_KEY, {}))
    flow = flows.pop(state, None)
    if flow is None:
        if not flows:
            raise SignInFailed(
                400,
                "Your sign-in session expired",
                "This browser has no sign-in in progress: it may have expired, or cookies are "
                "blocked. Please start again.",
                "no flow in session",
            )
        raise SignInFailed(
            400,
            "Sign-in could not be verified",
            "The answer from GitHub does not match the sign-in this browser started.",
            "state mismatch",
        )
    session[FLOWS_KEY] = flows
    if time.time() - flow["started"] > STATE_MAX_AGE:
        session.pop(f"_state_github_{state}", None)
        raise SignInFailed(
            400,
            "Your sign-in took too long",
            "Sign-in must be finished within 10 minutes. Please start again.",
            "state expired",
        )
    return flow


_TOKEN_ERRORS = {
    "bad_verification_code": (
        400,
        "The sign-in code was refused",
        "GitHub says the code is wrong, already used or expired. Please start again.",
    ),
    "incorrect_client_credentials": (
        400,
        "undersign is misconfigured",
        "GitHub refused this service's client credentials. Tell its operator.",
    ),
    "redirect_uri_mismatch": (
        400,
        "undersign is misconfigured",
        "GitHub refused the callback address. Tell its operator.",
    ),
}


def _unreachable(reason: str) -> SignInFailed:
    return SignInFailed(
        502,
        "GitHub could not be reached",
        "GitHub did not answer in time. Please try again in a moment.",
        reason,
    )


def _exchange_code(client: Any) -> dict[str, Any]:
    try:
        token: dict[str, Any] = client.authorize_access_token()
    except MismatchingStateError:
        raise SignInFailed(
            400,
            "Sign-in could not be verified",
            "The answer from GitHub does not match the sign-in this browser started.",
            "authlib state mismatch",
        ) from None
    except OAuthError as exc:
        status, title, message = _TOKEN_ERRORS.get(
            exc.error or "",
            (400, "Sign-in failed", "GitHub did not complete the sign-in. Please try again."),
        )
        raise SignInFailed(status, title, message, f"token error {exc.error}") from None
    except requests.Timeout:
        raise _unreachable("token request timed out") from None
    except requests.RequestException as exc:
        raise _unreachable(f"token request failed: {type(exc).__name__}") from None
    except ValueError:  # a body that is neither JSON nor a token
        raise _unreachable("token response unreadable") from None
    if not token.get("access_token"):
        raise _unreachable("token response without access_token")
    return token


def _fetch_identity(client: Any, token: dict[str, Any]) -> GitHubIdentity:
    try:
        response = client.get("user", token=token, timeout=settings().http_timeout)
    except requests.Timeout:
        raise _unreachable("GET /user timed out") from None
    except requests.RequestException as exc:
        raise _unreachable(f"GET /user failed: {type(exc).__name__}") from None
    if response.status_code == 401:
        raise SignInFailed(
            401,
            "GitHub refused the sign-in",
            "GitHub did not accept the token it had just issued. Please start again.",
            "GET /user answered 401",
        )
    if response.status_code != 200:
        raise _unreachable(f"GET /user answered {response.status_code}")
    try:
        data = response.json()
        github_id = int(data["id"])
        login = str(data["login"])
    except (ValueError, KeyError, TypeError):
        raise _unreachable("GET /user answer unreadable") from None
    return GitHubIdentity(
        github_id=github_id,
        login=login,
        name=data.get("name") or None,
        email=data.get("email") or None,
        avatar_url=data.get("avatar_url") or None,
        account_type=str(data.get("type") or "User"),
    )


@bp.get("/login/callback")
def callback() -> Response:
    for name in ("code", "state", "iss", "error", "error_description"):
        _single(name)
    state = _single("state")
    flow = _take_flow(state)
    assert state is not None  # _take_flow refused a missing state
    iss = _single("iss")
    if iss is not None and iss != settings().github_issuer:
        session.pop(f"_state_github_{state}", None)
        raise SignInFailed(
            400,
            "Sign-in could not be verified",
            "The answer came from an unexpected issuer.",
            "iss mismatch",
        )
    error = _single("error")
    if error:
        session.pop(f"_state_github_{state}", None)
        if error == "access_denied":
            raise SignInFailed(
                403,
                "Sign-in cancelled",
                "You declined the request on GitHub, so you are not signed in.",
                "access_denied",
            )
        raise SignInFailed(400, "Sign-in failed", "GitHub reported an error.", f"error {error}")
    if not _single("code"):
        session.pop(f"_state_github_{state}", None)
        raise SignInFailed(
            400, "Sign-in link is malformed", "GitHub's answer carried no code.", "missing code"
        )
    if flow.get("purpose") == "emails":
        return _finish_email_proof(state, flow)
    client = _client_for(flow)
    token = _exchange_code(client)
    identity = _fetch_identity(client, token)
    del token
    db = db_session()
    record_sign_in(db, identity)
    db.commit()
    _start_signed_in_session(identity)
    log.info("sign-in succeeded for github id %s", identity.github_id)
    if flow["next"].startswith(CONSOLE_PREFIX):
        # Coming to the console: ask GitHub what they administer now (contributors who only
        # sign are not asked: it costs one call per linked repository and organisation).
        # A failed lookup is not kept: the console page they land on asks again and says why.
        with contextlib.suppress(console.LookupFailed):
            console.refresh_scope(identity.github_id, identity.login)
    return redirect(flow["next"])


def _fetch_emails(client: Any, token: dict[str, Any]) -> list[GitHubEmail]:
    """``GET /user/emails`` once (up to 100 addresses, GitHub's page maximum)."""
    try:
        response = client.get(
            "user/emails", token=token, params={"per_page": 100}, timeout=settings().http_timeout
        )
    except requests.Timeout:
        raise _unreachable("GET /user/emails timed out") from None
    except requests.RequestException as exc:
        raise _unreachable(f"GET /user/emails failed: {type(exc).__name__}") from None
    if response.status_code in (403, 404):  # GitHub's answer to a token without user:email
        raise SignInFailed(
            403,
            "GitHub did not share your email addresses",
            "undersign needs the permission to read your email addresses (user:email) to "
            "prove them. Please try again and approve it on GitHub.",
            f"GET /user/emails answered {response.status_code}",
        )
    if response.status_code != 200:
        raise _unreachable(f"GET /user/emails answered {response.status_code}")
    try:
        return parse_user_emails(response.json())
    except ValueError:
        raise _unreachable("GET /user/emails answer unreadable") from None


def _finish_email_proof(state: str, flow: dict[str, Any]) -> Response:
    """The second authorization came back: keep the addresses GitHub verified for the
    signed-in person, then drop the token."""
    github_id = session.get("github_id")
    if not github_id or github_id != flow.get("github_id"):
        session.pop(f"_state_github_{state}", None)
        raise SignInFailed(
            401,
            "Your sign-in has expired",
            "Sign in with GitHub again, then link your email addresses from My email addresses.",
            "email proof without the session that started it",
        )
    client = _client_for(flow)
    token = _exchange_code(client)
    identity = _fetch_identity(client, token)
    if identity.github_id != github_id:
        raise SignInFailed(
            403,
            "That was another GitHub account",
            f"You approved the request on GitHub as {identity.login}, not as the account "
            "signed in here. Sign in to GitHub with the right account and try again.",
            "email proof by another account",
        )
    emails = _fetch_emails(client, token)
    del token
    db = db_session()
    service = ProvenEmailService(db, runtime().email_hook(db), actor=str(github_id))
    try:
        result = service.link_verified(github_id, emails)
        db.commit()
    except IntegrityError:  # someone proved the same address at the same moment
        db.rollback()
        raise SignInFailed(
            409,
            "Please try again",
            "An address was being linked from another session at the same time.",
            "proven email conflict",
        ) from None
    log.info(
        "github id %s proved %d address(es), %d moved, %d unverified ignored",
        github_id,
        len(result.linked) + len(result.kept),
        len(result.moved),
        len(result.unverified),
    )
    flash(
        _proof_summary(len(result.linked) + len(result.moved) + len(result.kept), result.unverified)
    )
    return redirect(EMAILS_PAGE, 303)


def _proof_summary(proven: int, unverified: list[str]) -> str:
    text = f"GitHub verified {proven} address{'es' if proven != 1 else ''} for you: linked."
    if unverified:
        count = len(unverified)
        text += (
            f" {count} more {'is' if count == 1 else 'are'} listed on GitHub without being "
            f"verified: verify {'it' if count == 1 else 'them'} on GitHub, then link again."
        )
    return text


def _start_signed_in_session(identity: GitHubIdentity) -> None:
    """New session id, CSRF token and contents: nothing from before sign-in carries over."""
    session.clear()
    session.regenerate()  # type: ignore[attr-defined]  # a ServerSession (web/sessions.py)
    session["github_id"] = identity.github_id
    session["login"] = identity.login
    session["signed_in_at"] = time.time()


@bp.post("/logout")
def logout() -> Response:
    session.destroy()  # type: ignore[attr-defined]  # a ServerSession (web/sessions.py)
    return redirect(url_for("main.index"))


@bp.route("/login/callback/<path:_rest>")
def callback_subpath(_rest: str) -> Response:
    # GitHub accepts any redirect_uri below the registered callback; nothing may live there.
    abort(404)
