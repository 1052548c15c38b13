"""The GitHub App side of the REST API: the JWT-only ``/app`` routes, the hook that keeps an
installation token inside its installation, and check runs (REFERENCE sections 2.2, 3).

State lives in :mod:`undersign.emulator.apps` (``GitHubEmulator.apps``); this module is HTTP
only.  Depends on Flask, :mod:`undersign.emulator.http` and the state modules; the REST
pipeline (:mod:`.rest`) calls in for the JWT credential and for the check-run paths its own
routes swallow.
"""

from __future__ import annotations

import json

import jwt
from flask import Blueprint, Flask, Response, g, has_request_context, request

from undersign.emulator.apps import (
    ACTION_LIMITS,
    APPS_DOCS,
    CHECK_CONCLUSIONS,
    CHECK_STATUSES,
    CHECKS_DOCS,
    INSTALLATION_SUSPENDED,
    JWT_BAD_EXP,
    JWT_BAD_IAT,
    JWT_EXP_TOO_FAR,
    JWT_UNDECODABLE,
    MAX_ACTIONS,
    MAX_ANNOTATIONS,
    MAX_JWT_LIFETIME,
    MAX_OUTPUT_TEXT,
    NOT_ACCESSIBLE,
    AppRec,
    CheckRunRec,
    InstallationRec,
)
from undersign.emulator.http import (
    JSON,
    MUTATING,
    PREFIX,
    ApiError,
    api_json,
    current_state,
    json_body,
    not_found,
    paginate,
    repo_route,
    require_auth,
    validation_failed,
)
from undersign.emulator.models import Repo, Token
from undersign.emulator.state import GitHubEmulator

bp = Blueprint("apps", __name__, url_prefix=PREFIX)

# --- REST: app routes (JWT), installation-token enforcement, check runs ------------------------

_APP_ROUTE_PREFIXES = ("/app", "/app/")


def is_jwt(raw: str) -> bool:
    return raw.count(".") == 2 and raw.startswith("eyJ")


def is_app_route(path: str) -> bool:
    """Routes that take the app JWT (githubkit's APP_ROUTES, the ones undersign uses)."""
    rest_path = path[len(PREFIX) :].rstrip("/")
    if rest_path == "/app" or rest_path.startswith("/app/"):
        return True
    parts = rest_path.split("/")
    return (len(parts) == 5 and parts[1] == "repos" and parts[4] == "installation") or (
        len(parts) == 4 and parts[1] in ("orgs", "users") and parts[3] == "installation"
    )


def verify_jwt(st: GitHubEmulator, raw: str) -> AppRec:
    """The app a JWT authenticates, or ApiError 401 with GitHub's message."""
    try:
        claims = jwt.decode(raw, options={"verify_signature": False})
        header = jwt.get_unverified_header(raw)
    except jwt.PyJWTError:
        raise ApiError(401, JWT_UNDECODABLE) from None
    issuer = claims.get("iss")
    app: AppRec | None = None
    for candidate in st.apps.apps.values():
        if (
            (isinstance(issuer, int) and not isinstance(issuer, bool) and issuer == candidate.id)
            or (isinstance(issuer, str) and issuer.isdigit() and int(issuer) == candidate.id)
            or (isinstance(issuer, str) and issuer == candidate.client_id)
        ):
            app = candidate
    if app is None or header.get("alg") != "RS256":
        raise ApiError(401, JWT_UNDECODABLE)
    try:
        jwt.decode(
            raw,
            app.public_key,
            algorithms=["RS256"],
            options={"verify_exp": False, "verify_iat": False, "verify_nbf": False},
        )
    except jwt.PyJWTError:
        raise ApiError(401, JWT_UNDECODABLE) from None
    now = st.clock()
    iat, exp = claims.get("iat"), claims.get("exp")
    if not isinstance(iat, int) or isinstance(iat, bool) or iat > now:
        # Clock drift puts iat in the future: GitHub answers with the same message.
        raise ApiError(401, JWT_BAD_IAT)
    if not isinstance(exp, int | float) or isinstance(exp, bool) or exp <= now:
        raise ApiError(401, JWT_BAD_EXP)
    if exp > now + MAX_JWT_LIFETIME:
        raise ApiError(401, JWT_EXP_TOO_FAR)
    return app


def authenticate_jwt(st: GitHubEmulator, raw: str) -> None:
    """Called by rest.py for a bearer credential that is no known token."""
    with st.lock:
        app = verify_jwt(st, raw)
    if not is_app_route(request.path):
        # GUESS: GitHub answers a JWT on a non-app route as an unusable credential.
        raise ApiError(401, "Bad credentials")
    g.app = app
    g.bucket_key = f"app:{app.id}"


def _required_permission(method: str, rest_path: str) -> tuple[str, str] | None:
    """(permission, level) an installation token needs for a repository route."""
    parts = rest_path.split("/")
    tail = parts[4:] if parts[1:2] == ["repos"] else parts[3:]
    first = tail[0] if tail else ""
    write = method in MUTATING
    if first == "statuses" or (first == "commits" and tail[-1:] in (["statuses"], ["status"])):
        return ("statuses", "write" if write else "read")
    if first in ("check-runs", "check-suites") or tail[-1:] == ["check-runs"]:
        return ("checks", "write" if write else "read")
    if first == "hooks":  # the "Webhooks" repository permission
        return ("repository_hooks", "write" if write else "read")
    if first == "pulls":
        return ("pull_requests", "write" if write else "read")
    if first == "issues":
        return ("issues", "write" if write else "read")
    if first in ("compare", "commits", "contents", "git"):
        return ("contents", "write" if write else "read")
    return ("metadata", "read")


def _enforce_installation() -> None:
    """After rest.py's hook: an installation token only reaches its installation's
    repositories, with its permissions, and no user routes."""
    if not request.path.startswith(PREFIX + "/") or "request_id" not in g:
        return
    token: Token | None = g.get("token")
    st = current_state()
    with st.lock:
        inst = st.apps.token_installation(token.token) if token is not None else None
        if inst is None:
            return
        g.installation = inst
        if inst.suspended_at is not None:
            # GUESS: "the app's access to the GitHub API ... is blocked for that account"
            # (docs); the status and message of the token request's refusal are assumed.
            raise ApiError(403, INSTALLATION_SUSPENDED)
        rest_path = request.path[len(PREFIX) :]
        parts = rest_path.split("/")
        repo: Repo | None = None
        if parts[1:2] == ["repos"] and len(parts) >= 4:
            repo = st.find_repo(f"{parts[2]}/{parts[3]}")
        elif parts[1:2] == ["repositories"] and len(parts) >= 3 and parts[2].isdigit():
            repo = st.repos.get(int(parts[2]))
        elif parts[1:2] in (["user"], ["app"]) or is_app_route(request.path):
            raise ApiError(403, NOT_ACCESSIBLE)
        if repo is None:
            if parts[1:2] in (["repos"], ["repositories"]):
                raise not_found()
            return
        if not st.apps.covers(inst, repo):
            raise not_found()  # outside the installation: as invisible as a private repo
        needed = _required_permission(request.method, rest_path)
        if needed is not None:
            perm, level = needed
            have = inst.permissions.get(perm)
            if have is None or (level == "write" and have != "write"):
                raise ApiError(403, NOT_ACCESSIBLE)


def require_app() -> AppRec:
    app: AppRec | None = g.get("app")
    if app is None:
        # GitHub: these routes need the app JWT; a user or installation token cannot use them.
        raise ApiError(
            401,
            "A JSON web token could not be decoded",
            documentation_url=APPS_DOCS,
        )
    return app


@bp.get("/app")
def get_app() -> Response:
    app = require_app()
    st = current_state()
    with st.lock:
        return api_json(st.apps.app_json(app))


@bp.get("/app/installations")
def list_installations() -> Response:
    app = require_app()
    st = current_state()
    with st.lock:
        items = [
            st.apps.installation_json(i)
            for i in sorted(st.apps.installations.values(), key=lambda i: i.id)
            if i.app_id == app.id
        ]
    chunk, headers = paginate(items)
    return api_json(chunk, headers=headers)


def _own_installation(
    st: GitHubEmulator, app: AppRec, installation_id: int, docs: str
) -> InstallationRec:
    """The requesting app's installation ``installation_id``; another app's is a 404."""
    inst = st.apps.installations.get(installation_id)
    if inst is None or inst.app_id != app.id:
        raise not_found(docs)
    return inst


@bp.get("/app/installations/<int:installation_id>")
def get_installation(installation_id: int) -> Response:
    app = require_app()
    st = current_state()
    docs = APPS_DOCS + "#get-an-installation-for-the-authenticated-app"
    with st.lock:
        return api_json(
            st.apps.installation_json(_own_installation(st, app, installation_id, docs))
        )


@bp.post("/app/installations/<int:installation_id>/access_tokens")
def create_access_token(installation_id: int) -> Response:
    app = require_app()
    st = current_state()
    docs = APPS_DOCS + "#create-an-installation-access-token-for-an-app"
    with st.lock:
        inst = _own_installation(st, app, installation_id, docs)
        if inst.suspended_at is not None:
            raise ApiError(403, INSTALLATION_SUSPENDED, documentation_url=docs)
    # Any value other than enabled/disabled is ignored (changelog 2026-05-15).
    stateless = request.headers.get("X-GitHub-Stateless-S2S-Token", "").lower() == "enabled"
    body = st.apps.issue_installation_token(installation_id, stateless=stateless)
    return api_json(body, 201)


@bp.put("/app/installations/<int:installation_id>/suspended")
@bp.delete("/app/installations/<int:installation_id>/suspended")
def suspend_installation(installation_id: int) -> Response:
    """The app's owner suspends (PUT) or unsuspends (DELETE) an installation: 204."""
    app = require_app()
    st = current_state()
    with st.lock:
        _own_installation(st, app, installation_id, APPS_DOCS + "#suspend-an-app-installation")
        if request.method == "PUT":
            st.apps.suspend(installation_id, by_login=st.users[app.owner_id].login)
        else:
            st.apps.unsuspend(installation_id)
    return Response(status=204)


def _installation_for(
    st: GitHubEmulator, app: AppRec, account_id: int | None, repo: Repo | None
) -> InstallationRec | None:
    for inst in st.apps.installations.values():
        if inst.app_id != app.id:
            continue
        if repo is not None and st.apps.covers(inst, repo):
            return inst
        if repo is None and inst.account_id == account_id:
            return inst
    return None


@bp.get("/repos/<owner>/<name>/installation")
def repo_installation(owner: str, name: str) -> Response:
    app = require_app()
    st = current_state()
    with st.lock:
        repo = st.find_repo(f"{owner}/{name}")
        inst = _installation_for(st, app, None, repo) if repo is not None else None
        if inst is None:
            raise not_found(APPS_DOCS + "#get-a-repository-installation-for-the-authenticated-app")
        return api_json(st.apps.installation_json(inst))


@bp.get("/orgs/<org>/installation")
@bp.get("/users/<org>/installation")
def account_installation(org: str) -> Response:
    app = require_app()
    st = current_state()
    with st.lock:
        account = st.user_by_login(org)
        wanted = "Organization" if request.path.split("/")[3] == "orgs" else None
        inst = None
        if account is not None and (wanted is None or account.type == wanted):
            inst = _installation_for(st, app, account.id, None)
        if inst is None:
            raise not_found(APPS_DOCS)
        return api_json(st.apps.installation_json(inst))


def _app_of_token() -> AppRec:
    """The app behind a ``ghs_``/``ghu_`` token; rest.py refuses every other token first."""
    st = current_state()
    token: Token = g.token
    info = st.apps.tokens.get(token.token)
    if info is not None and info.app_id is not None:
        return st.apps.apps[info.app_id]
    client = token.client_id
    for app in st.apps.apps.values():
        if app.client_id == client:
            return app
    raise ApiError(403, "You must authenticate via a GitHub App.", documentation_url=CHECKS_DOCS)


def _bad_request(message: str, docs: str) -> ApiError:
    return ApiError(422, f"Invalid request.\n\n{message}", documentation_url=docs)


def _validate_check_body(body: JSON, docs: str, *, creating: bool) -> JSON:
    """GitHub's limits for a check run body; returns the fields to store."""
    out: JSON = {}
    for key in ("name", "head_sha"):
        if key in body or creating:
            value = body.get(key)
            if not isinstance(value, str) or not value:
                raise _bad_request(f'"{key}" wasn\'t supplied.', docs)
            out[key] = value
    if creating is False:
        out.pop("head_sha", None)
    for key in ("details_url", "external_id"):
        if key in body:
            if body[key] is not None and not isinstance(body[key], str):
                raise _bad_request(f"For '{key}', {json.dumps(body[key])} is not a string.", docs)
            out[key] = body[key]
    status = body.get("status")
    if status is not None:
        if status not in CHECK_STATUSES:
            # waiting / requested / pending are GitHub Actions' own.
            raise _bad_request(
                f"For 'properties/status', {json.dumps(status)} is not one of "
                f"{json.dumps(list(CHECK_STATUSES))}.",
                docs,
            )
        out["status"] = status
    conclusion = body.get("conclusion")
    if conclusion is not None:
        if conclusion not in CHECK_CONCLUSIONS:  # "stale" can only be set by GitHub
            raise _bad_request(
                f"For 'properties/conclusion', {json.dumps(conclusion)} is not one of "
                f"{json.dumps(list(CHECK_CONCLUSIONS))}.",
                docs,
            )
        out["conclusion"] = conclusion
        out["status"] = "completed"  # "Providing conclusion will automatically set status"
    elif status == "completed":
        raise validation_failed(
            "CheckRun", "conclusion", "Conclusion can't be blank when status is completed", docs
        )  # wording approximated
    if conclusion == "action_required" and not (body.get("details_url") or not creating):
        raise validation_failed(
            "CheckRun", "details_url", "details_url is required for action_required", docs
        )  # "When the conclusion is action_required, additional details should be provided"
    output = body.get("output")
    if output is not None:
        if not isinstance(output, dict):
            raise _bad_request("For 'output', it is not an object.", docs)
        for key in ("title", "summary"):
            if not isinstance(output.get(key), str):
                raise _bad_request(f'"{key}" wasn\'t supplied.', docs)
        for key in ("summary", "text"):
            text = output.get(key)
            if text is not None and (not isinstance(text, str) or len(text) > MAX_OUTPUT_TEXT):
                raise validation_failed(
                    "CheckRun",
                    f"output.{key}",
                    f"Output {key} is too long (maximum is {MAX_OUTPUT_TEXT} characters)",
                    docs,
                )
        annotations = output.get("annotations") or []
        if not isinstance(annotations, list) or len(annotations) > MAX_ANNOTATIONS:
            raise validation_failed(
                "CheckRun", "output.annotations", "at most 50 annotations per request", docs
            )
        out["output"] = dict(output)
    actions = body.get("actions")
    if actions is not None:
        if not isinstance(actions, list) or len(actions) > MAX_ACTIONS:
            raise validation_failed(
                "CheckRun", "actions", "A maximum of 3 actions can be supplied", docs
            )
        for action in actions:
            if not isinstance(action, dict):
                raise _bad_request("For 'items', it is not an object.", docs)
            for key, limit in ACTION_LIMITS.items():
                value = action.get(key)
                if not isinstance(value, str):
                    raise _bad_request(f'"{key}" wasn\'t supplied.', docs)
                if len(value) > limit:
                    raise validation_failed(
                        "CheckRun",
                        f"actions.{key}",
                        f"{key} is too long (maximum is {limit} characters)",
                        docs,
                    )
        out["actions"] = [dict(a) for a in actions]
    return out


def create_check_run(repo: Repo) -> Response:
    """``POST /repos/{o}/{r}/check-runs`` with an app token (rest.py answers the 403 else)."""
    docs = CHECKS_DOCS + "#create-a-check-run"
    app = _app_of_token()
    fields = _validate_check_body(json_body(), docs, creating=True)
    st = current_state()
    with st.lock:
        sha = fields["head_sha"]
        if sha not in st.commits:
            raise ApiError(422, f"No commit found for SHA: {sha}", documentation_url=docs)
        now = st.clock()
        suite = st.apps.check_suite_id(repo.id, app.id, sha)
        status = fields.get("status", "queued")
        rec = CheckRunRec(
            id=st.apps.next_id("check_run"),
            repo_id=repo.id,
            app_id=app.id,
            head_sha=sha,
            name=fields["name"],
            status=status,
            conclusion=fields.get("conclusion"),
            started_at=now,
            completed_at=now if status == "completed" else None,
            details_url=fields.get("details_url"),
            external_id=fields.get("external_id") or "",
            output=fields.get("output") or {},
            actions=fields.get("actions") or [],
            check_suite_id=suite,
            created_at=now,
            updated_at=now,
        )
        rec.history.append({"method": "POST", "fields": fields})
        st.apps.check_runs[rec.id] = rec
        out = st.apps.check_run_json(rec)
    return api_json(out, 201, {"Location": out["url"]})


@repo_route(bp, "/check-runs/<int:check_run_id>", methods=("GET", "PATCH"))
def one_check_run(repo: Repo, check_run_id: int) -> Response:
    st = current_state()
    docs = CHECKS_DOCS + "#update-a-check-run"
    with st.lock:
        rec = st.apps.check_runs.get(check_run_id)
        if rec is None or rec.repo_id != repo.id:
            raise not_found(CHECKS_DOCS)
        if request.method == "GET":
            return api_json(st.apps.check_run_json(rec))
    require_auth(docs)
    token: Token = g.token
    if not token.token.startswith(("ghs_", "ghu_")):
        raise ApiError(403, "You must authenticate via a GitHub App.", documentation_url=docs)
    app = _app_of_token()
    if app.id != rec.app_id:
        raise ApiError(403, NOT_ACCESSIBLE, documentation_url=docs)
    fields = _validate_check_body(json_body(), docs, creating=False)
    with st.lock:
        now = st.clock()
        for key in ("name", "details_url", "output", "actions", "conclusion"):
            if key in fields:
                setattr(rec, key, fields[key])
        if "external_id" in fields:
            rec.external_id = fields["external_id"] or ""
        if "status" in fields:
            rec.status = fields["status"]
            rec.completed_at = now if rec.status == "completed" else None
            if rec.status != "completed":
                rec.conclusion = None
        rec.updated_at = now
        rec.history.append({"method": "PATCH", "fields": fields})
        return api_json(st.apps.check_run_json(rec))


def list_check_runs_for_ref(repo: Repo, ref: str) -> Response:
    """``GET /repos/{o}/{r}/commits/{ref}/check-runs`` (``filter=latest`` per name)."""
    st = current_state()
    with st.lock:
        sha = st.resolve_ref(repo, ref)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        runs = st.apps.runs_for(repo, sha)
        args = request.args
        if args.get("check_name"):
            runs = [r for r in runs if r.name == args["check_name"]]
        if args.get("status"):
            runs = [r for r in runs if r.status == args["status"]]
        if args.get("app_id", "").isdigit():
            runs = [r for r in runs if r.app_id == int(args["app_id"])]
        if args.get("filter", "latest") == "latest":
            seen: set[tuple[int, str]] = set()
            latest = []
            for r in runs:
                if (r.app_id, r.name) not in seen:
                    seen.add((r.app_id, r.name))
                    latest.append(r)
            runs = latest
        chunk, headers = paginate(runs)
        body = {
            "total_count": len(runs),
            "check_runs": [st.apps.check_run_json(r) for r in chunk],
        }
    return api_json(body, headers=headers)


def request_installation() -> InstallationRec | None:
    """The installation whose token made the current request (None outside a request)."""
    if not has_request_context():
        return None
    inst: InstallationRec | None = g.get("installation")
    return inst


def register(app: Flask) -> None:
    """Install the hook that scopes installation tokens (after rest.py's own hook), and the
    app routes."""
    app.before_request(_enforce_installation)
    app.register_blueprint(bp)
