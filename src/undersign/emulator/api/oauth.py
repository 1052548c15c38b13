"""GitHub's OAuth web application flow: ``/login/oauth/authorize`` and ``/access_token``.

Follows REFERENCE sections 1.1-1.7, including the quirks clients trip over: errors from the
token endpoint are HTTP 200, the default response is form-encoded, scopes come back
comma-joined, client credentials may arrive four ways, and a bad redirect_uri gets an HTML
warning page instead of a redirect.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import json
import re
import secrets
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit
from xml.sax.saxutils import escape as xml_escape

from flask import Blueprint, Response, abort, redirect, render_template, request

from undersign.emulator.http import current_state
from undersign.emulator.models import AuthCode, OAuthClient, PendingAuthorization, Token
from undersign.emulator.state import CODE_TTL_SECONDS, GitHubEmulator, random_token

bp = Blueprint("oauth", __name__, url_prefix="/login/oauth")

_ERRORS_DOC = (
    "https://docs.github.com/apps/managing-oauth-apps/"
    "troubleshooting-oauth-app-access-token-request-errors/"
)
TOKEN_ERRORS: dict[str, tuple[str, str]] = {
    "incorrect_client_credentials": (
        "The client_id and/or client_secret passed are incorrect.",
        _ERRORS_DOC + "#incorrect-client-credentials",
    ),
    "redirect_uri_mismatch": (
        "The redirect_uri MUST match the registered callback URL for this application.",
        "https://docs.github.com/apps/managing-oauth-apps/"
        "troubleshooting-authorization-request-errors/#redirect-uri-mismatch2",
    ),
    "bad_verification_code": (
        "The code passed is incorrect or expired.",
        _ERRORS_DOC + "#bad-verification-code",
    ),
    "bad_refresh_token": (
        "The refresh token passed is incorrect or expired.",
        _ERRORS_DOC + "#bad-refresh-token",
    ),
    "unsupported_grant_type": (
        "The grant type is not supported.",
        _ERRORS_DOC + "#unsupported-grant-type",
    ),
}
ACCESS_DENIED_URI = (
    "/apps/building-integrations/setting-up-and-registering-oauth-apps/"
    "troubleshooting-authorization-request-errors/#access-denied"
)

#: Scope -> scopes it includes; GitHub normalises requests (``user,user:email`` -> ``user``).
IMPLIED_SCOPES: dict[str, frozenset[str]] = {
    "user": frozenset({"read:user", "user:email", "user:follow"}),
    "repo": frozenset(
        {"repo:status", "repo_deployment", "public_repo", "repo:invite", "security_events"}
    ),
    "admin:org": frozenset({"write:org", "read:org", "manage_runners:org"}),
    "write:org": frozenset({"read:org"}),
    "admin:public_key": frozenset({"write:public_key", "read:public_key"}),
    "write:public_key": frozenset({"read:public_key"}),
    "admin:repo_hook": frozenset({"write:repo_hook", "read:repo_hook"}),
    "write:repo_hook": frozenset({"read:repo_hook"}),
    "admin:gpg_key": frozenset({"write:gpg_key", "read:gpg_key"}),
    "write:gpg_key": frozenset({"read:gpg_key"}),
    "write:packages": frozenset({"read:packages"}),
}
_CHALLENGE_RE = re.compile(r"[A-Za-z0-9_-]{43}")


# --- redirect_uri rules (REFERENCE 1.2) --------------------------------------------------------


def _is_loopback(host: str | None) -> bool:
    if host is None:
        return False
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _effective_port(scheme: str, port: int | None) -> int | None:
    return port if port is not None else {"http": 80, "https": 443}.get(scheme)


def _path_within(path: str, base: str) -> bool:
    base = base or "/"
    path = path or "/"
    if any(seg in ("..", ".") for seg in path.split("/")):
        return False  # no climbing out of the registered directory
    return path == base or path.startswith(base.rstrip("/") + "/")


def redirect_uri_matches(callback: str, candidate: str, *, wildcard: bool) -> bool:
    """Whether ``candidate`` may be used with the registered ``callback``.

    Wildcard matching: same scheme, host equal or a subdomain, same port, path equal or a
    subdirectory.  Exact matching: the whole URL.  Loopback callbacks (127.0.0.1, ::1) accept
    any port in both modes ("the redirect_uri does not need to match the port").
    """
    try:
        cb, cand = urlsplit(callback), urlsplit(candidate)
        cb_port, cand_port = cb.port, cand.port
    except ValueError:
        return False
    if cand.fragment or cb.scheme != cand.scheme or not cand.hostname:
        return False
    loopback = _is_loopback(cb.hostname)
    if not wildcard:
        if loopback and cb.hostname == cand.hostname:
            return (cb.path, cb.query) == (cand.path, cand.query)
        return callback == candidate
    cb_host, cand_host = (cb.hostname or "").lower(), cand.hostname.lower()
    if loopback:
        host_ok = cand_host == cb_host  # any port
    else:
        host_ok = (cand_host == cb_host or cand_host.endswith("." + cb_host)) and (
            _effective_port(cb.scheme, cb_port) == _effective_port(cand.scheme, cand_port)
        )
    return host_ok and _path_within(cand.path, cb.path)


def resolve_redirect_uri(client: OAuthClient, given: str | None) -> str | None:
    """The redirect URI to use, or None when ``given`` is not allowed for this client."""
    if given is None:
        return client.callback_urls[0]  # omitted: GitHub uses the (first) registered callback
    for callback in client.callback_urls:
        if redirect_uri_matches(callback, given, wildcard=client.wildcard):
            return given
    return None


def normalize_scopes(raw: str) -> list[str]:
    """Split GitHub's space-delimited (commas tolerated) scopes; drop duplicates and implied."""
    requested: list[str] = []
    for scope in re.split(r"[\s,]+", raw.strip()):
        # offline_access asks for an expiring token; it "is not tracked as a typical scope".
        if scope and scope != "offline_access" and scope not in requested:
            requested.append(scope)
    return [
        s
        for s in requested
        if not any(s in IMPLIED_SCOPES.get(other, frozenset()) for other in requested)
    ]


def _with_params(url: str, params: list[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True) + params
    return urlunsplit(parts._replace(query=urlencode(query)))


def _issuer() -> str:
    # RFC 9207 authorization server issuer identifier, sent on every callback.
    return request.url_root.rstrip("/") + "/login/oauth"


# --- /login/oauth/authorize --------------------------------------------------------------------


@bp.get("/authorize")
def authorize() -> Any:
    st = current_state()
    args = request.args  # unknown parameters (response_type, allow_signup, ...) are ignored
    with st.lock:
        client = st.oauth_clients.get(args.get("client_id", ""))
    if client is None:
        return render_template("emulator/not_found.html"), 404
    redirect_uri = resolve_redirect_uri(client, args.get("redirect_uri"))
    if redirect_uri is None:
        # Observed behaviour (REFERENCE 1.3): a warning page, deliberately no redirect.
        return render_template("emulator/redirect_mismatch.html", client=client), 200
    state_param = args.get("state")
    challenge = args.get("code_challenge")
    method = args.get("code_challenge_method")
    pkce_error = None
    if method is not None and method != "S256":
        pkce_error = "Unsupported code_challenge_method. Only S256 is supported."  # plain refused
    elif method is not None and challenge is None:
        pkce_error = "code_challenge is required when code_challenge_method is sent."
    elif challenge is not None and not _CHALLENGE_RE.fullmatch(challenge):
        pkce_error = "code_challenge must be a 43 character SHA-256 hash."
    if pkce_error is not None:
        # GUESS: GitHub's answer is undocumented; RFC 7636 4.4.1 says invalid_request.
        params = [("error", "invalid_request"), ("error_description", pkce_error)]
        return redirect(_callback(redirect_uri, params, state_param))
    scopes = normalize_scopes(args.get("scope", ""))
    pending = PendingAuthorization(
        client_id=client.client_id,
        redirect_uri=redirect_uri,
        state=state_param,
        scopes=scopes,
        code_challenge=challenge,
        login_hint=args.get("login"),
        created_at=st.clock(),
    )
    if st.auto_deny:
        return redirect(_denied(pending))
    if st.auto_approve_as is not None:
        with st.lock:
            user = st.require_user(st.auto_approve_as)
        return redirect(_approved(st, pending, user.id))
    nonce = secrets.token_urlsafe(24)
    with st.lock:
        st.pending_authorizations[nonce] = pending
        users = sorted(
            (u for u in st.users.values() if u.type == "User"), key=lambda u: u.login.lower()
        )
        choices = [(u.login, u.name) for u in users]
    return render_template(
        "emulator/authorize.html",
        client=client,
        nonce=nonce,
        scopes=scopes,
        users=choices,
        login_hint=pending.login_hint,
        redirect_host=urlsplit(redirect_uri).netloc,
    )


@bp.post("/authorize")
def authorize_decision() -> Any:
    """The consent page posts back here (the emulator's own form, bound by a one-time nonce)."""
    st = current_state()
    with st.lock:
        pending = st.pending_authorizations.pop(request.form.get("nonce", ""), None)
        if pending is None or st.clock() - pending.created_at > CODE_TTL_SECONDS:
            abort(400, "This authorization request has expired. Start again from the app.")
        if request.form.get("decision") != "approve":
            return redirect(_denied(pending))
        user = st.user_by_login(request.form.get("login", ""))
        if user is None:
            abort(400, "Pick an account.")
        return redirect(_approved(st, pending, user.id))


def _callback(redirect_uri: str, params: list[tuple[str, str]], state_param: str | None) -> str:
    if state_param is not None:  # echoed verbatim, and only if it was sent
        params = [*params, ("state", state_param)]
    return _with_params(redirect_uri, [*params, ("iss", _issuer())])


def _denied(pending: PendingAuthorization) -> str:
    return _callback(
        pending.redirect_uri,
        [
            ("error", "access_denied"),
            ("error_description", "The user has denied your application access."),
            ("error_uri", ACCESS_DENIED_URI),
        ],
        pending.state,
    )


def _approved(st: GitHubEmulator, pending: PendingAuthorization, user_id: int) -> str:
    with st.lock:
        # A returning user gets the union of the scopes they granted before (REFERENCE 1.1).
        grant = st.grants.setdefault((user_id, pending.client_id), set())
        scopes = normalize_scopes(" ".join([*pending.scopes, *sorted(grant)]))
        grant.update(scopes)
        code = secrets.token_hex(10)  # GitHub's codes are 20 hex characters
        st.auth_codes[code] = AuthCode(
            code=code,
            client_id=pending.client_id,
            redirect_uri=pending.redirect_uri,
            user_id=user_id,
            scopes=scopes,
            code_challenge=pending.code_challenge,
            expires_at=st.clock() + CODE_TTL_SECONDS,
        )
    return _callback(pending.redirect_uri, [("code", code)], pending.state)


# --- /login/oauth/access_token -----------------------------------------------------------------


def _token_params() -> dict[str, str]:
    """Parameters from the query string, a form body or a JSON body (GitHub takes all three)."""
    params: dict[str, str] = dict(request.args.items())
    if request.is_json:
        body = request.get_json(silent=True)
        if isinstance(body, dict):
            params.update({k: str(v) for k, v in body.items() if v is not None})
    else:
        params.update(request.form.items())
    return params


def _client_credentials(params: Mapping[str, str]) -> tuple[str | None, str | None]:
    """HTTP Basic (Authlib's default client_secret_basic) or client_id/client_secret params."""
    auth = request.authorization
    if auth is not None and auth.type == "basic" and auth.username:
        return auth.username, auth.password
    return params.get("client_id"), params.get("client_secret")


def _respond(data: dict[str, str | int]) -> Response:
    """Negotiate like GitHub: JSON / XML on request, form-encoded by default."""
    accept = request.headers.get("Accept", "")
    headers = {"Cache-Control": "max-age=0, private, must-revalidate"}
    if "application/json" in accept:
        body = json.dumps(data)
        mimetype = "application/json; charset=utf-8"
    elif "application/xml" in accept:
        keys = list(data)
        if "access_token" in data:  # GitHub's documented XML order
            keys = ["token_type", "scope", "access_token"]
        inner = "".join(f"<{k}>{xml_escape(str(data[k]))}</{k}>" for k in keys)
        body = f"<OAuth>{inner}</OAuth>"
        mimetype = "application/xml; charset=utf-8"
    else:
        body = urlencode(data)
        mimetype = "application/x-www-form-urlencoded; charset=utf-8"
    digest = hashlib.md5(body.encode(), usedforsecurity=False).hexdigest()
    headers["ETag"] = f'W/"{digest}"'
    return Response(body, status=200, headers=headers, content_type=mimetype)


def _error(code: str) -> Response:
    # GitHub answers token errors with HTTP 200 (octokit/auth-oauth-app.js#13).
    description, uri = TOKEN_ERRORS[code]
    return _respond({"error": code, "error_description": description, "error_uri": uri})


def pkce_s256(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii", "replace")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


@bp.post("/access_token")
def access_token() -> Response:
    """Exchange a code.  A GET to this URL is a 404 (no route), as on GitHub."""
    st = current_state()
    params = _token_params()
    client_id, client_secret = _client_credentials(params)
    with st.lock:
        client = st.oauth_clients.get(client_id or "")
        if client is None or not hmac.compare_digest(
            client.client_secret.encode(), (client_secret or "").encode()
        ):
            return _error("incorrect_client_credentials")
        grant_type = params.get("grant_type", "authorization_code")
        if grant_type == "refresh_token":
            # Rotates both tokens; the old pair stops working (REFERENCE 1.8).
            used = st.apps.refresh(client.client_id, params.get("refresh_token", ""))
            if used is None:
                return _error("bad_refresh_token")
            _old, user_id, scopes = used
            token = random_token("ghu_" if client.app_type == "github_app" else "gho_")
            st.tokens[token] = Token(token, user_id, scopes, client.client_id, st.clock())
            extra = st.apps.user_token_response(client.client_id, token, user_id)
            scope = "" if client.app_type == "github_app" else ",".join(scopes)
            return _respond(
                {"access_token": token, **extra, "scope": scope, "token_type": "bearer"}
            )
        if grant_type != "authorization_code":
            return _error("unsupported_grant_type")
        code = st.auth_codes.get(params.get("code", ""))
        if (
            code is None
            or code.used
            or code.client_id != client.client_id
            or st.clock() >= code.expires_at
        ):
            return _error("bad_verification_code")
        # Single use: the first exchange that passes client authentication consumes the code.
        code.used = st.burn_code_on_failed_exchange
        given_redirect = params.get("redirect_uri")
        if given_redirect is not None and given_redirect != code.redirect_uri:
            return _error("redirect_uri_mismatch")
        # A code_verifier without a challenge at authorize is ignored (lenient; undocumented).
        if code.code_challenge is not None:
            verifier = params.get("code_verifier")
            if verifier is None or not hmac.compare_digest(
                pkce_s256(verifier), code.code_challenge
            ):
                # GUESS: GitHub does not document the PKCE failure; bad_verification_code is the
                # safest reading (REFERENCE 1.1 and 8).
                return _error("bad_verification_code")
        code.used = True
        prefix = "ghu_" if client.app_type == "github_app" else "gho_"
        token = random_token(prefix)
        st.tokens[token] = Token(
            token, code.user_id, list(code.scopes), client.client_id, st.clock()
        )
        # GitHub Apps ignore scopes; OAuth apps answer them comma-joined ("repo,gist").
        scope = "" if client.app_type == "github_app" else ",".join(code.scopes)
        # A GitHub App with expiring user tokens: expires_in=28800 and a ghr_ refresh token.
        extra = st.apps.user_token_response(client.client_id, token, code.user_id)
    return _respond({"access_token": token, **extra, "scope": scope, "token_type": "bearer"})
