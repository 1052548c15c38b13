"""GitHub's REST API under ``/api/v3`` (the GHES layout), for what undersign uses.

Cross-cutting behaviour (REFERENCE 2.1, 2.3) lives in the request hooks: API version
negotiation, token auth (query-string credentials are not honoured: GitHub removed them in
2021), per-user primary rate limits with their headers, secondary limits, ETag/304 that does
not count, and GitHub's error shapes.  Repository endpoints answer both at
``/repos/{owner}/{repo}/...`` and at ``/repositories/{id}/...`` because GitHub's pagination
links use the latter.

The helpers every view shares (errors, JSON answers, the caller, pagination, ``repo_route``)
are in :mod:`undersign.emulator.http`; the GitHub App routes and check runs in
:mod:`undersign.emulator.api.apps`.
"""

from __future__ import annotations

import base64
import hashlib
import math
import secrets
from typing import Any

from flask import Blueprint, Flask, Response, g, render_template, request
from werkzeug.exceptions import HTTPException

from undersign.emulator import objects
from undersign.emulator.api import apps as apps_api
from undersign.emulator.http import (
    DOCS,
    JSON,
    MUTATING,
    PREFIX,
    ApiError,
    api_json,
    current_state,
    has_scope,
    int_arg,
    is_api,
    json_body,
    no_content,
    not_found,
    paginate,
    repo_route,
    require_auth,
    validation_failed,
    viewer_id,
)
from undersign.emulator.models import PERMISSION_LEVELS, PullRec, Repo, User
from undersign.emulator.state import (
    DEFAULT_API_VERSION,
    SUPPORTED_API_VERSIONS,
    GitHubEmulator,
)

RATE_DOCS = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"
STATUS_STATES = ("error", "failure", "pending", "success")
MAX_STATUS_DESCRIPTION = 140
MAX_STATUSES_PER_CONTEXT = 1000
MAX_COMMENT_BODY = 65536
PULL_COMMITS_CAP = 250
COMPARE_UNPAGED_CAP = 250
EXPOSE_HEADERS = (
    "ETag, Link, Location, Retry-After, X-GitHub-OTP, X-RateLimit-Limit, X-RateLimit-Remaining, "
    "X-RateLimit-Used, X-RateLimit-Resource, X-RateLimit-Reset, X-OAuth-Scopes, "
    "X-Accepted-OAuth-Scopes, X-Poll-Interval, X-GitHub-Media-Type, X-GitHub-SSO, "
    "X-GitHub-Request-Id, Deprecation, Sunset"
)

bp = Blueprint("rest", __name__, url_prefix=PREFIX)


# --- request pipeline --------------------------------------------------------------------------


def _request_id() -> str:
    parts = [secrets.token_hex(2), secrets.token_hex(2), secrets.token_hex(4), secrets.token_hex(4)]
    return ":".join([*(p.upper() for p in parts), secrets.token_hex(4).upper()])


def _read_token() -> str | None:
    """The credential in ``Authorization`` (``token``/``Bearer``, or Basic with the token as
    password).  ``?access_token=`` is deliberately ignored: GitHub removed query-parameter
    authentication on 2021-09-08, so such a request is simply unauthenticated."""
    header = request.headers.get("Authorization")
    if not header:
        return None
    scheme, _, credential = header.partition(" ")
    scheme = scheme.lower()
    if scheme in ("token", "bearer"):
        return credential.strip()
    if scheme == "basic":
        try:
            decoded = base64.b64decode(credential.strip()).decode("utf-8")
        except ValueError:
            return ""
        return decoded.partition(":")[2]
    return ""


def _before_api() -> Response | None:
    if not is_api(request.path):
        return None
    st = current_state()
    g.request_id = _request_id()
    g.counted = not request.path.rstrip("/").endswith("/rate_limit")  # /rate_limit is free
    g.user, g.token, g.app, g.installation = None, None, None, None
    g.bucket_key, g.bucket_user = f"ip:{request.remote_addr}", None
    version = request.headers.get("X-GitHub-Api-Version")
    g.api_version = DEFAULT_API_VERSION if version is None else version
    if version is not None and version not in SUPPORTED_API_VERSIONS:
        g.api_version = DEFAULT_API_VERSION
        raise ApiError(
            400,
            f"The '{version}' API version is not supported.",  # wording approximated
            documentation_url="https://docs.github.com/rest/overview/api-versions",
        )
    raw = _read_token()
    if raw is not None:
        with st.lock:
            found = st.token_user(raw)
        if found is None:
            if not apps_api.is_jwt(raw):
                raise ApiError(401, "Bad credentials")
            apps_api.authenticate_jwt(st, raw)  # a GitHub App's JWT: 401s with GitHub's messages
        else:
            g.token, g.user = found
            g.bucket_key, g.bucket_user = f"user:{g.user.id}", g.user.id
            with st.lock:
                installation = st.apps.token_installation(raw)
            if installation is not None:
                # "Rate limits for installation access tokens": each installation has its own
                # (at least 5,000 an hour), not the app's bot account across installations.
                g.bucket_key = f"installation:{installation.id}"
    now = st.clock()
    with st.lock:
        bucket = st.rate_bucket(g.bucket_key, g.bucket_user)
        if g.counted and bucket.remaining <= 0:
            g.counted = False
            who = f"user ID {g.user.id}" if g.user else f"{request.remote_addr}"
            if g.bucket_key.startswith("installation:"):
                who = f"installation ID {g.bucket_key.partition(':')[2]}"
            extra = (
                ""
                if g.user
                else " (But here's the good news: Authenticated requests get a higher rate "
                "limit. Check out the documentation for more details.)"
            )
            raise ApiError(
                403,
                f"API rate limit exceeded for {who}.{extra}",
                documentation_url=RATE_DOCS + "#about-rate-limits",
            )
        if request.method in MUTATING:
            retry_after: int | None
            refused, retry_after = st.take_secondary_refusal()
            if refused:
                raise _secondary_error(retry_after)
            limit = st.content_creation_limit_per_minute
            if limit is not None:
                while bucket.writes and bucket.writes[0] <= now - 60:
                    bucket.writes.popleft()
                if len(bucket.writes) >= limit:
                    retry_after = max(1, math.ceil(bucket.writes[0] + 60 - now))
                    raise _secondary_error(retry_after)
                bucket.writes.append(now)
    return None


def _secondary_error(retry_after: int | None) -> ApiError:
    g.counted = False
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else {}
    return ApiError(
        403,
        "You have exceeded a secondary rate limit. Please wait a few minutes before you try "
        f"again. If you reach out to GitHub Support for help, please include the request ID "
        f"{g.request_id}.",
        documentation_url=RATE_DOCS + "#about-secondary-rate-limits",
        headers=headers,
    )


def _etag_matches(header: str, etag: str) -> bool:
    strip = etag.removeprefix("W/")
    return any(t.strip() == "*" or t.strip().removeprefix("W/") == strip for t in header.split(","))


def _after_api(response: Response) -> Response:
    if not is_api(request.path) or "request_id" not in g:
        return response
    st = current_state()
    if (
        request.method in ("GET", "HEAD")
        and response.status_code == 200
        and response.mimetype == "application/json"
    ):
        who = str(g.user.id) if g.user else ""
        digest = hashlib.sha256(response.get_data() + who.encode()).hexdigest()
        etag = f'W/"{digest}"'
        response.headers["ETag"] = etag
        inm = request.headers.get("If-None-Match")
        if inm and _etag_matches(inm, etag):
            # "Making a conditional request ... does not count against your primary rate limit"
            g.counted = False
            not_modified = Response(status=304)
            for key in ("ETag", "Link"):
                if key in response.headers:
                    not_modified.headers[key] = response.headers[key]
            response = not_modified
    with st.lock:
        bucket = st.rate_bucket(g.bucket_key, g.bucket_user)
        if g.counted:
            bucket.remaining = max(0, bucket.remaining - 1)
        limit, remaining, reset = bucket.limit, bucket.remaining, bucket.reset_at
    h = response.headers
    h["X-RateLimit-Limit"] = str(limit)
    h["X-RateLimit-Remaining"] = str(remaining)
    h["X-RateLimit-Reset"] = str(int(reset))
    h["X-RateLimit-Used"] = str(limit - remaining)
    h["X-RateLimit-Resource"] = "core"
    h["X-GitHub-Api-Version-Selected"] = g.api_version
    h["X-GitHub-Media-Type"] = "github.v3; format=json"
    h["X-GitHub-Request-Id"] = g.request_id
    if g.token is not None:
        h["X-OAuth-Scopes"] = ", ".join(g.token.scopes)
    h.setdefault("X-Accepted-OAuth-Scopes", "")
    if request.method == "GET" and response.status_code == 200:
        h["Cache-Control"] = ("private" if g.user else "public") + ", max-age=60, s-maxage=60"
    h["Vary"] = "Accept, Authorization, Cookie, X-GitHub-OTP"
    h["Access-Control-Allow-Origin"] = "*"
    h["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
    h["X-Content-Type-Options"] = "nosniff"
    h["X-Frame-Options"] = "deny"
    h["Content-Security-Policy"] = "default-src 'none'"
    return response


def _api_error_response(err: ApiError) -> Response:
    return api_json(err.body, err.status, err.headers)


def _http_error(err: HTTPException) -> Response | HTTPException | tuple[str, int]:
    if not is_api(request.path):
        if err.code == 405:  # e.g. GET /login/oauth/access_token: GitHub answers 404
            return render_template("emulator/not_found.html"), 404
        return err
    if err.code in (404, 405):
        return _api_error_response(not_found())
    if err.code == 400:  # malformed bodies, e.g. invalid JSON
        return _api_error_response(ApiError(400, "Problems parsing JSON"))
    return _api_error_response(ApiError(err.code or 500, err.name))


def register(app: Flask) -> None:
    app.before_request(_before_api)
    app.after_request(_after_api)
    app.register_error_handler(ApiError, _api_error_response)
    app.register_error_handler(HTTPException, _http_error)
    app.register_blueprint(bp)


# --- helpers for views -------------------------------------------------------------------------


def _require_push(repo: Repo, *scopes: str) -> None:
    st = current_state()
    with st.lock:
        allowed = st.can_push(repo, viewer_id())
    if not allowed or not has_scope(*scopes):
        # GitHub hides write endpoints from users (and scopes) that cannot use them.
        raise ApiError(404, "Not Found", documentation_url=DOCS)


def _pull_or_404(st: GitHubEmulator, repo: Repo, number: int) -> PullRec:
    pr = st.pulls.get((repo.id, number))
    if pr is None:
        raise not_found()
    return pr


def _user_or_404(st: GitHubEmulator, login: str) -> User:
    user = st.user_by_login(login)
    if user is None:
        raise not_found()
    return user


# --- users -------------------------------------------------------------------------------------

USERS_DOCS = "https://docs.github.com/rest/users/users"


@bp.get("/user")
def get_authenticated_user() -> Response:
    user = require_auth(USERS_DOCS + "#get-the-authenticated-user")
    st = current_state()
    with st.lock:
        if has_scope("user", "read:user"):
            return api_json(objects.private_user(st, user))
        return api_json(objects.public_user(st, user))


@bp.get("/user/emails")
def list_emails() -> Response:
    docs = (
        "https://docs.github.com/rest/users/emails#list-email-addresses-for-the-authenticated-user"
    )
    user = require_auth(docs)
    accepted = {"X-Accepted-OAuth-Scopes": "user, user:email"}
    if not has_scope("user", "user:email"):
        # GitHub hides what the token may not read: 404, not 403 (octokit/core.js#338).
        raise ApiError(404, "Not Found", documentation_url=docs, headers=accepted)
    with current_state().lock:
        chunk, headers = paginate(objects.emails(user))
    return api_json(chunk, headers={**headers, **accepted})


@bp.get("/users/<login>")
def get_user(login: str) -> Response:
    st = current_state()
    with st.lock:
        return api_json(objects.public_user(st, _user_or_404(st, login)))


@bp.get("/rate_limit")
def rate_limit() -> Response:
    st = current_state()
    with st.lock:
        bucket = st.rate_bucket(g.bucket_key, g.bucket_user)
        core = {
            "limit": bucket.limit,
            "used": bucket.limit - bucket.remaining,
            "remaining": bucket.remaining,
            "reset": int(bucket.reset_at),
        }
    search = {**core, "limit": 30, "used": 0, "remaining": 30}
    graphql = {**core, "used": 0, "remaining": core["limit"]}
    body: JSON = {"resources": {"core": core, "search": search, "graphql": graphql}}
    if g.api_version < "2026-03-10":
        body["rate"] = core  # dropped in 2026-03-10
    return api_json(body)


# --- repositories, pulls, commits --------------------------------------------------------------


@repo_route(bp, "")
def get_repo(repo: Repo) -> Response:
    st = current_state()
    with st.lock:
        return api_json(
            objects.repository(st, repo, api_version=g.api_version, viewer_id=viewer_id())
        )


@repo_route(bp, "/pulls")
def list_pulls(repo: Repo) -> Response:
    wanted = request.args.get("state", "open")
    if wanted not in ("open", "closed", "all"):
        raise ApiError(
            422,
            "Validation Failed",
            errors=[{"resource": "Issue", "field": "state", "code": "invalid"}],
            documentation_url="https://docs.github.com/rest/pulls/pulls#list-pull-requests",
        )
    st = current_state()
    with st.lock:
        pulls = [p for p in st.pulls.values() if p.repo_id == repo.id]
        pulls = [p for p in pulls if wanted in ("all", p.state)]
        if "base" in request.args:
            pulls = [p for p in pulls if p.base_ref == request.args["base"]]
        if "head" in request.args:
            owner, _, ref = request.args["head"].rpartition(":")
            pulls = [
                p
                for p in pulls
                if p.head_ref == ref and (not owner or _head_owner(st, p) == owner.lower())
            ]
        sort = request.args.get("sort", "created")
        key = (lambda p: p.updated_at) if sort == "updated" else (lambda p: p.created_at)
        default_dir = "desc" if sort in ("created", "updated") else "asc"
        reverse = request.args.get("direction", default_dir) == "desc"
        pulls.sort(key=lambda p: (key(p), p.number), reverse=reverse)
        chunk, headers = paginate(pulls)
        return api_json([objects.pull_request(st, p, simple=True) for p in chunk], headers=headers)


def _head_owner(st: GitHubEmulator, pr: PullRec) -> str | None:
    """The login owning a pull request's head repository (lowercased); None once that fork
    was deleted (GitHub cannot match ``head=owner:ref`` against it then)."""
    head = st.head_repo(pr)
    return None if head is None else st.users[head.owner_id].login.lower()


@repo_route(bp, "/pulls/<int:number>")
def get_pull(repo: Repo, number: int) -> Response:
    st = current_state()
    with st.lock:
        return api_json(objects.pull_request(st, _pull_or_404(st, repo, number)))


@repo_route(bp, "/pulls/<int:number>/commits")
def list_pull_commits(repo: Repo, number: int) -> Response:
    st = current_state()
    with st.lock:
        pr = _pull_or_404(st, repo, number)
        # "Lists a maximum of 250 commits for a pull request" (pulls/list-commits).
        shas = st.pull_commit_shas(pr)[:PULL_COMMITS_CAP]
        chunk, headers = paginate(shas)
        return api_json([objects.commit(st, st.commits[s], repo) for s in chunk], headers=headers)


@repo_route(bp, "/compare/<path:basehead>")
def compare(repo: Repo, basehead: str) -> Response:
    base_ref, sep, head_ref = basehead.partition("...")
    if not sep:
        base_ref, sep, head_ref = basehead.partition("..")
    st = current_state()
    with st.lock:
        base = st.resolve_ref(repo, base_ref.rpartition(":")[2]) if sep else None
        head = st.resolve_ref(repo, head_ref.rpartition(":")[2]) if sep else None
        if base is None or head is None:
            raise not_found("https://docs.github.com/rest/commits/commits#compare-two-commits")
        ahead, behind, merge_base = st.compare(base, head)
        if "page" in request.args or "per_page" in request.args:
            listed, headers = paginate(ahead)
        else:
            listed, headers = ahead[:COMPARE_UNPAGED_CAP], {}
        if ahead and behind:
            status = "diverged"
        elif ahead:
            status = "ahead"
        elif behind:
            status = "behind"
        else:
            status = "identical"
        full = st.full_name(repo)
        html = f"{st.base_url}/{full}/compare/{basehead}"
        body = {
            "url": f"{st.api_url}/repos/{full}/compare/{basehead}",
            "html_url": html,
            "permalink_url": f"{st.base_url}/{full}/compare/{base}...{head}",
            "diff_url": f"{html}.diff",
            "patch_url": f"{html}.patch",
            "base_commit": objects.commit(st, st.commits[base], repo),
            "merge_base_commit": objects.commit(st, st.commits[merge_base or base], repo),
            "status": status,
            "ahead_by": len(ahead),
            "behind_by": behind,
            "total_commits": len(ahead),
            "commits": [objects.commit(st, c, repo) for c in listed],
        }
        if int_arg("page", 1) <= 1:
            body["files"] = []  # files[] only on the first page
        return api_json(body, headers=headers)


@repo_route(bp, "/commits/<path:ref>")
def get_commit(repo: Repo, ref: str) -> Response:
    st = current_state()
    if ref.endswith("/statuses"):
        return _list_statuses(repo, ref.removesuffix("/statuses"))
    if ref.endswith("/status"):
        return _combined_status(repo, ref.removesuffix("/status"))
    if ref.endswith("/check-runs"):
        return apps_api.list_check_runs_for_ref(repo, ref.removesuffix("/check-runs"))
    with st.lock:
        sha = st.resolve_ref(repo, ref)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        body = objects.commit(st, st.commits[sha], repo)
        body["stats"] = {"total": 1, "additions": 1, "deletions": 0}
        body["files"] = []
        return api_json(body)


# --- statuses ----------------------------------------------------------------------------------

STATUS_DOCS = "https://docs.github.com/rest/commits/statuses"


@repo_route(bp, "/statuses/<sha>", methods=("POST",))
def create_status(repo: Repo, sha: str) -> Response:
    require_auth(STATUS_DOCS + "#create-a-commit-status")
    _require_push(repo, "repo", "repo:status")
    body = json_body()
    docs = STATUS_DOCS + "#create-a-commit-status"
    state_value = body.get("state")
    if state_value not in STATUS_STATES:
        raise validation_failed("Status", "state", "state is not included in the list", docs)
    description = body.get("description")
    if description is not None and len(str(description)) > MAX_STATUS_DESCRIPTION:
        raise validation_failed(
            "Status", "description", "description is too long (maximum is 140 characters)", docs
        )
    context = body.get("context") or "default"
    target_url = body.get("target_url")
    st = current_state()
    with st.lock:
        if sha not in st.commits:
            raise ApiError(422, f"No commit found for SHA: {sha}", documentation_url=docs)
        same = [
            s
            for s in st.status_records
            if s.repo_id == repo.id and s.sha == sha and s.context.lower() == context.lower()
        ]
        if len(same) >= MAX_STATUSES_PER_CONTEXT:
            raise validation_failed(
                "Status",
                "sha",
                "This SHA and context has reached the maximum number of statuses.",
                docs,
            )
        rec = st.record_status(
            repo,
            sha,
            str(state_value),
            None if description is None else str(description),
            None if target_url is None else str(target_url),
            str(context),
            require_auth().id,
        )
        out = objects.status(st, rec)
    return api_json(out, 201, {"Location": out["url"]})


def _list_statuses(repo: Repo, ref: str) -> Response:
    st = current_state()
    with st.lock:
        sha = st.resolve_ref(repo, ref)
        recs = st.status_history(repo, sha) if sha else []
        chunk, headers = paginate(recs)
        return api_json([objects.status(st, s) for s in chunk], headers=headers)


@repo_route(bp, "/statuses/<path:ref>")
def list_statuses_legacy(repo: Repo, ref: str) -> Response:
    return _list_statuses(repo, ref)


def _combined_status(repo: Repo, ref: str) -> Response:
    st = current_state()
    with st.lock:
        sha = st.resolve_ref(repo, ref)
        if sha is None:
            raise ApiError(422, f"No commit found for SHA: {ref}")
        return api_json(st.combined_status_of(repo, sha))


# --- issue comments ----------------------------------------------------------------------------

COMMENT_DOCS = "https://docs.github.com/rest/issues/comments"


def _comment_body(body: JSON, docs: str) -> str:
    text = body.get("body")
    if not isinstance(text, str):
        raise ApiError(422, 'Invalid request.\n\n"body" wasn\'t supplied.', documentation_url=docs)
    if len(text) > MAX_COMMENT_BODY:
        raise validation_failed(
            "IssueComment", "body", "body is too long (maximum is 65536 characters)", docs
        )
    return text


def _require_comment_scope(repo: Repo) -> None:
    if not has_scope("repo") and not (not repo.private and has_scope("public_repo")):
        raise ApiError(404, "Not Found", headers={"X-Accepted-OAuth-Scopes": "repo"})


@repo_route(bp, "/issues/<int:number>")
def get_issue(repo: Repo, number: int) -> Response:
    st = current_state()
    with st.lock:
        return api_json(objects.issue_for_pull(st, _pull_or_404(st, repo, number)))


@repo_route(bp, "/issues/<int:number>/comments", methods=("POST",))
def create_comment(repo: Repo, number: int) -> Response:
    docs = COMMENT_DOCS + "#create-an-issue-comment"
    user = require_auth(docs)
    _require_comment_scope(repo)
    text = _comment_body(json_body(), docs)
    st = current_state()
    with st.lock:
        _pull_or_404(st, repo, number)
        out = objects.comment(st, st.record_comment(repo.id, number, text, user.id))
    return api_json(out, 201, {"Location": out["url"]})


@repo_route(bp, "/issues/<int:number>/comments")
def list_comments(repo: Repo, number: int) -> Response:
    st = current_state()
    since = request.args.get("since")
    with st.lock:
        _pull_or_404(st, repo, number)
        recs = sorted(
            (
                c
                for c in st.comment_records.values()
                if c.repo_id == repo.id and c.issue_number == number
            ),
            key=lambda c: c.id,  # ascending by id
        )
        if since:
            recs = [c for c in recs if objects.iso(c.updated_at) >= since]
        chunk, headers = paginate(recs)
        return api_json([objects.comment(st, c) for c in chunk], headers=headers)


@repo_route(bp, "/issues/comments/<int:comment_id>", methods=("GET", "PATCH", "DELETE"))
def one_comment(repo: Repo, comment_id: int) -> Response:
    st = current_state()
    with st.lock:
        rec = st.comment_records.get(comment_id)
        if rec is None or rec.repo_id != repo.id:
            raise not_found(COMMENT_DOCS)
        if request.method == "GET":
            return api_json(objects.comment(st, rec))
    user = require_auth(COMMENT_DOCS)
    _require_comment_scope(repo)
    with st.lock:
        if rec.user_id != user.id and not st.can_push(repo, user.id):
            raise ApiError(403, "Must have admin rights to Repository.")
        if request.method == "DELETE":
            del st.comment_records[comment_id]
            return no_content()
    text = _comment_body(json_body(), COMMENT_DOCS + "#update-an-issue-comment")
    with st.lock:
        rec.body, rec.updated_at = text, st.clock()
        return api_json(objects.comment(st, rec))


# --- check runs: only GitHub Apps may create them ----------------------------------------------


@repo_route(bp, "/check-runs", methods=("POST",))
def create_check_run(repo: Repo) -> Response:
    require_auth()
    if g.token is not None and g.token.token.startswith(("ghs_", "ghu_")):
        return apps_api.create_check_run(repo)
    raise ApiError(
        403,
        "You must authenticate via a GitHub App.",
        documentation_url="https://docs.github.com/rest/checks/runs#create-a-check-run",
    )


# --- collaborators -----------------------------------------------------------------------------

COLLAB_DOCS = "https://docs.github.com/rest/collaborators/collaborators"


def _collaborator_context(repo: Repo, login: str) -> tuple[GitHubEmulator, User]:
    require_auth(COLLAB_DOCS)
    st = current_state()
    with st.lock:
        if not st.can_push(repo, viewer_id()):
            raise ApiError(403, "Must have push access to view repository collaborators.")
        user = st.user_by_login(login)
    if user is None:
        raise ApiError(404, f"{login} is not a user", documentation_url=COLLAB_DOCS)
    return st, user


@repo_route(bp, "/collaborators/<login>/permission")
def collaborator_permission(repo: Repo, login: str) -> Response:
    st, user = _collaborator_context(repo, login)
    with st.lock:
        role = st.permission(repo, user.id)
        # The legacy ``permission`` folds maintain->write and triage->read (REFERENCE 2.2).
        legacy = {"admin": "admin", "maintain": "write", "write": "write"}.get(role or "", "read")
        if role is None and repo.private:
            legacy = "none"
        role_name = role or legacy
        level = PERMISSION_LEVELS.index(role) if role else -1
        collaborator = {
            **objects.simple_user(st, user),
            "permissions": {
                "admin": level >= 4,
                "maintain": level >= 3,
                "push": level >= 2,
                "triage": level >= 1,
                "pull": level >= 0,
            },
            "role_name": role_name,
        }
        return api_json({"permission": legacy, "role_name": role_name, "user": collaborator})


@repo_route(bp, "/collaborators/<login>")
def check_collaborator(repo: Repo, login: str) -> Response:
    st, user = _collaborator_context(repo, login)
    with st.lock:
        if st.permission(repo, user.id) is None:
            raise not_found(COLLAB_DOCS + "#check-if-a-user-is-a-repository-collaborator")
    return no_content()


# --- organisations -----------------------------------------------------------------------------

ORG_DOCS = "https://docs.github.com/rest/orgs/members"


def _org(st: GitHubEmulator, login: str) -> tuple[User, Any]:
    org_user = st.user_by_login(login)
    org = st.orgs.get(org_user.id) if org_user else None
    if org_user is None or org is None:
        raise not_found(ORG_DOCS)
    return org_user, org


@bp.get("/orgs/<org>")
def get_org(org: str) -> Response:
    st = current_state()
    with st.lock:
        org_user, _ = _org(st, org)
        return api_json(objects.organization(st, org_user))


def _owned_repos(st: GitHubEmulator, owner: User, *, private_too: bool) -> list[Repo]:
    """An account's repositories the caller may see, oldest first (GitHub's default sort for
    these lists is ``created`` for orgs and ``full_name`` for users; the order is stable)."""
    repos = [r for r in st.repos.values() if r.owner_id == owner.id]
    if private_too:
        repos = [
            r for r in repos if st.can_read(r, viewer_id()) and (not r.private or has_scope("repo"))
        ]
    else:
        repos = [r for r in repos if not r.private]
    return sorted(repos, key=lambda r: (r.created_at, r.id))


@bp.get("/orgs/<org>/repos")
def list_org_repos(org: str) -> Response:
    st = current_state()
    with st.lock:
        org_user, _ = _org(st, org)
        chunk, headers = paginate(_owned_repos(st, org_user, private_too=True))
        return api_json(
            [
                objects.repository(st, r, api_version=g.api_version, viewer_id=viewer_id())
                for r in chunk
            ],
            headers=headers,
        )


@bp.get("/users/<login>/repos")
def list_user_repos(login: str) -> Response:
    """Public repositories only, even for the owner's own token (GitHub: use /user/repos)."""
    st = current_state()
    with st.lock:
        owner = _user_or_404(st, login)
        chunk, headers = paginate(_owned_repos(st, owner, private_too=False))
        return api_json(
            [
                objects.repository(st, r, api_version=g.api_version, viewer_id=viewer_id())
                for r in chunk
            ],
            headers=headers,
        )


@bp.get("/orgs/<org>/members/<login>")
def check_member(org: str, login: str) -> Response:
    st = current_state()
    with st.lock:
        org_user, record = _org(st, org)
        user = st.user_by_login(login)
        requester_is_member = g.user is not None and g.user.id in record.members
        # An installation with Members: read sees private memberships too.
        requester_is_member = requester_is_member or st.apps.reads_members(org_user.id)
        if not requester_is_member:
            # Not a member yourself: GitHub answers 302 to the public-membership check.
            location = f"{st.api_url}/orgs/{org_user.login}/public_members/{login}"
            return Response(status=302, headers={"Location": location})
        if user is None or user.id not in record.members:
            raise not_found(ORG_DOCS + "#check-organization-membership-for-a-user")
    return no_content()


@bp.get("/orgs/<org>/public_members/<login>")
def check_public_member(org: str, login: str) -> Response:
    st = current_state()
    with st.lock:
        _, record = _org(st, org)
        user = st.user_by_login(login)
        if user is None or user.id not in record.public_members:
            raise not_found(ORG_DOCS + "#check-public-organization-membership-for-a-user")
    return no_content()


@bp.get("/orgs/<org>/memberships/<login>")
def get_membership(org: str, login: str) -> Response:
    requester = require_auth(ORG_DOCS)
    st = current_state()
    with st.lock:
        org_user, record = _org(st, org)
        user = st.user_by_login(login)
        # An installation with Members: read (App mode) may read every membership.
        may_read = requester.id in record.members or st.apps.reads_members(org_user.id)
        if not may_read and (user is None or user.id != requester.id):
            raise ApiError(
                403,
                f"You must be a member of {org_user.login} to see membership information "
                f"for {login}.",
                documentation_url=ORG_DOCS,
            )
        if user is None or user.id not in record.members:
            raise not_found(ORG_DOCS + "#get-organization-membership-for-a-user")
        return api_json(
            {
                "url": f"{st.api_url}/orgs/{org_user.login}/memberships/{user.login}",
                "state": "active",
                "role": "admin" if user.id in record.admins else "member",
                "organization_url": f"{st.api_url}/orgs/{org_user.login}",
                "organization": objects.organization(st, org_user),
                "user": objects.simple_user(st, user),
            }
        )
