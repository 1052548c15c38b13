"""The emulator's own control API (``/_emulator/...``, JSON) and inspect pages (HTML).

The control API mirrors the Python API so a demo running the emulator in another process can
script it.  It is not part of GitHub's surface, and requests to it are not recorded.  The
inspect page shows what undersign did to GitHub: statuses (red/green) and bot comments.
"""

from __future__ import annotations

import html
import json
from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, g, render_template, request

from undersign.emulator import objects
from undersign.emulator.http import current_state
from undersign.emulator.models import PullRec, RecordedRequest
from undersign.emulator.state import GitHubEmulator

bp = Blueprint("emulator_control", __name__, url_prefix="/_emulator")
pages = Blueprint("emulator_pages", __name__)
JSON = dict[str, Any]
_SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


def _json(obj: Any, status: int = 200) -> Response:
    return Response(json.dumps(obj), status=status, content_type="application/json")


def _body() -> JSON:
    data = request.get_json(silent=True)
    return data if isinstance(data, dict) else {}


@bp.errorhandler(KeyError)
def _missing(err: KeyError) -> Response:
    return _json({"error": str(err.args[0]) if err.args else "not found"}, 404)


@bp.errorhandler(ValueError)
@bp.errorhandler(TypeError)
def _invalid(err: Exception) -> Response:
    return _json({"error": str(err)}, 400)


def _redacted(headers: dict[str, str]) -> dict[str, str]:
    """Recorded headers for the HTTP view: credentials are cut to their scheme."""
    out = {}
    for key, value in headers.items():
        if key.lower() in _SECRET_HEADERS:
            value = value.split(" ", 1)[0] + " [redacted]"
        out[key] = value
    return out


def request_json(rec: RecordedRequest) -> JSON:
    return {
        "method": rec.method,
        "path": rec.path,
        "query": rec.query,
        "headers": _redacted(rec.headers),
        "body": rec.body.decode("utf-8", "replace"),
        "status": rec.status,
        "time": rec.time,
    }


# --- users, apps, tokens, settings -------------------------------------------------------------


@bp.post("/users")
def add_user() -> Response:
    b = _body()
    user = current_state().add_user(
        b["login"],
        name=b.get("name"),
        email=b.get("email"),
        type=b.get("type", "User"),
        user_id=b.get("id"),
        public_email=b.get("public_email", True),
    )
    return _json(user, 201)


@bp.post("/users/<login>/rename")
def rename_user(login: str) -> Response:
    st = current_state()
    st.rename_user(login, _body()["new_login"])
    return _json(st.user(_body()["new_login"]))


@bp.post("/tokens")
def issue_token() -> Response:
    b = _body()
    token = current_state().issue_token(
        b["login"], scopes=b.get("scopes"), prefix=b.get("prefix", "ghp_")
    )
    return _json({"token": token}, 201)


@bp.post("/tokens/revoke")
def revoke_token() -> Response:
    current_state().revoke_token(_body()["token"])
    return Response(status=204)


@bp.post("/oauth-clients")
def add_oauth_client() -> Response:
    b = _body()
    current_state().add_oauth_client(
        b["client_id"],
        b["client_secret"],
        b["callback_urls"],
        wildcard=b.get("wildcard", True),
        app_type=b.get("app_type", "oauth"),
        name=b.get("name"),
    )
    return Response(status=204)


@bp.post("/settings")
def settings() -> Response:
    """Set ``auto_approve_as``, ``auto_deny``, ``content_creation_limit_per_minute``."""
    st, b = current_state(), _body()
    with st.lock:
        if "auto_approve_as" in b:
            st.auto_approve_as = b["auto_approve_as"]
        if "auto_deny" in b:
            st.auto_deny = bool(b["auto_deny"])
        if "content_creation_limit_per_minute" in b:
            st.content_creation_limit_per_minute = b["content_creation_limit_per_minute"]
        return _json(
            {
                "auto_approve_as": st.auto_approve_as,
                "auto_deny": st.auto_deny,
                "content_creation_limit_per_minute": st.content_creation_limit_per_minute,
            }
        )


# --- faults, limits, recorded requests ---------------------------------------------------------


@bp.post("/faults")
def add_fault() -> Response:
    b = _body()
    current_state().add_fault(
        b.get("method", "*"),
        b.get("path_pattern", ".*"),
        status=b.get("status", 502),
        body=b.get("body"),
        headers=b.get("headers"),
        times=b.get("times", 1),
        delay=b.get("delay", 0.0),
    )
    return Response(status=204)


@bp.delete("/faults")
def clear_faults() -> Response:
    current_state().clear_faults()
    return Response(status=204)


@bp.post("/rate-limits")
def set_rate_limit() -> Response:
    b = _body()
    current_state().set_rate_limit(b["token_or_login"], b["remaining"], b.get("reset_at"))
    return Response(status=204)


@bp.post("/secondary-limit")
def secondary_limit() -> Response:
    b = _body()
    current_state().secondary_limit(b.get("times", 1), b.get("retry_after", 60))
    return Response(status=204)


@bp.get("/requests")
def list_requests() -> Response:
    """All recorded requests; ``?rest=1``, ``method=``, ``path_prefix=`` narrow to REST calls."""
    st, args = current_state(), request.args
    if args.get("rest") or args.get("method") or args.get("path_prefix"):
        recs = st.api_calls(args.get("method"), args.get("path_prefix"))
    else:
        recs = st.requests
    return _json([request_json(r) for r in recs])


@bp.post("/reset-requests")
def reset_requests() -> Response:
    current_state().clear_requests()
    return Response(status=204)


# --- orgs, repos, pulls ------------------------------------------------------------------------


@bp.post("/orgs")
def add_org() -> Response:
    b = _body()
    org = current_state().add_org(
        b["login"],
        members=b.get("members", []),
        public_members=b.get("public_members", []),
        admins=b.get("admins", []),
    )
    return _json(org, 201)


@bp.get("/repos")
def list_repos() -> Response:
    st = current_state()
    with st.lock:
        return _json([objects.repository(st, r) for r in st.repos.values()])


@bp.post("/repos")
def add_repo() -> Response:
    b = _body()
    repo = current_state().add_repo(
        b["full_name"], private=b.get("private", False), description=b.get("description")
    )
    return _json(repo, 201)


@bp.post("/repos/<owner>/<name>/collaborators")
def add_collaborator() -> Response:
    b = _body()
    current_state().add_collaborator(_full(), b["login"], b.get("permission", "write"))
    return Response(status=204)


@bp.url_value_preprocessor
def _take_repo(endpoint: str | None, values: dict[str, Any] | None) -> None:
    """``/repos/<owner>/<name>/...`` control routes: keep "owner/name" in ``g``."""
    if values and "owner" in values:
        g.control_repo = f"{values.pop('owner')}/{values.pop('name')}"


def _full() -> str:
    return str(g.control_repo)


@bp.post("/repos/<owner>/<name>/commits")
def add_commit() -> Response:
    b = _body()
    sha = current_state().add_commit(
        _full(),
        author_login=b.get("author_login"),
        author=b.get("author"),
        committer_login=b.get("committer_login"),
        message=b.get("message", "Update README.md"),
        author_field=b.get("author_field", "user"),
    )
    return _json({"sha": sha}, 201)


@bp.get("/pulls")
def list_pulls() -> Response:
    """Every PR with its head's combined status and its comments (what the demo shows)."""
    st = current_state()
    with st.lock:
        return _json([_pull_summary(st, pr) for pr in _sorted_pulls(st)])


@bp.post("/repos/<owner>/<name>/pulls")
def add_pull() -> Response:
    b = _body()
    pr = current_state().add_pull_request(
        _full(),
        user_login=b["user_login"],
        commits=b.get("commits"),
        n_commits=b.get("n_commits"),
        author_login=b.get("author_login"),
        author=b.get("author"),
        base_ref=b.get("base_ref", "main"),
        head_ref=b.get("head_ref", "feature"),
        draft=b.get("draft", False),
        title=b.get("title"),
        body=b.get("body"),
    )
    return _json(pr, 201)


@bp.post("/repos/<owner>/<name>/pulls/<int:number>/push")
def push(number: int) -> Response:
    b = _body()
    pr = current_state().push_commits(
        _full(),
        number,
        b.get("shas"),
        n_commits=b.get("n_commits"),
        author_login=b.get("author_login"),
    )
    return _json(pr)


@bp.post("/repos/<owner>/<name>/rename")
def rename_repo() -> Response:
    """Rename a repository; answers the ``repository`` ``renamed`` payload GitHub sends
    (deliver it with ``POST /webhooks``)."""
    st = current_state()
    owner, new_name = _full().partition("/")[0], _body()["new_name"]
    changes = st.rename_repo(_full(), new_name)
    return _json(st.repository_event(f"{owner}/{new_name}", "renamed", changes))


@bp.post("/repos/<owner>/<name>/transfer")
def transfer_repo() -> Response:
    """Transfer a repository to ``new_owner``; answers the ``repository`` ``transferred``
    payload GitHub sends."""
    st = current_state()
    name, new_owner = _full().partition("/")[2], _body()["new_owner"]
    changes = st.transfer_repo(_full(), new_owner)
    return _json(st.repository_event(f"{new_owner}/{name}", "transferred", changes))


@bp.post("/repos/<owner>/<name>/pulls/<int:number>/state")
def pr_state(number: int) -> Response:
    return _json(current_state().set_pr_state(_full(), number, _body()["state"]))


@bp.get("/repos/<owner>/<name>/commits/<sha>/statuses")
def statuses(sha: str) -> Response:
    st = current_state()
    full = _full()
    return _json({"statuses": st.statuses(full, sha), "combined": st.combined_status(full, sha)})


@bp.get("/repos/<owner>/<name>/issues/<int:number>/comments")
def comments(number: int) -> Response:
    return _json(current_state().comments(_full(), number))


@bp.post("/repos/<owner>/<name>/issues/<int:number>/comments")
def add_comment(number: int) -> Response:
    b = _body()
    return _json(current_state().add_comment(_full(), number, b["body"], b["login"]), 201)


# --- webhooks ----------------------------------------------------------------------------------


@bp.post("/webhooks")
def deliver() -> Response:
    """Deliver a webhook.  Give ``payload``, or let the emulator build one: ``event``
    ``pull_request`` with ``repo``/``number``/``action``, or ``issue_comment`` with
    ``repo``/``number``/``body``/``login`` (which also posts the comment)."""
    st, b = current_state(), _body()
    event = b["event"]
    payload = b.get("payload")
    if payload is None and event == "pull_request":
        payload = st.pull_request_event(
            b["repo"], b["number"], b.get("action", "opened"), sender_login=b.get("sender")
        )
    elif payload is None and event == "issue_comment":
        payload = st.issue_comment_event(b["repo"], b["number"], b["body"], b["login"])
    if payload is None:
        raise ValueError("give a payload, or an event the emulator can build")
    status, guid = st.deliver_webhook(
        b["url"],
        event,
        payload,
        secret=b.get("secret"),
        content_type=b.get("content_type", "json"),
    )
    return _json({"status": status, "delivery_id": guid})


@bp.post("/webhooks/redeliver")
def redeliver() -> Response:
    guid = _body()["delivery_id"]
    return _json({"status": current_state().redeliver(guid), "delivery_id": guid})


@bp.get("/deliveries")
def deliveries() -> Response:
    return _json(
        [
            {
                "id": d.id,
                "guid": d.guid,
                "url": d.url,
                "event": d.event,
                "status_code": d.status_code,
                "error": d.error,
                "redelivery": d.redelivery,
                "duration": d.duration,
                "delivered_at": d.delivered_at,
            }
            for d in current_state().deliveries
        ]
    )


# --- HTML: inspect page, PR pages, avatars -----------------------------------------------------


def safe_href(url: str | None) -> str | None:
    """Only http(s) URLs become links (a status target_url could be ``javascript:``)."""
    if not url:
        return None
    return url if urlsplit(url).scheme in ("http", "https") else None


def _sorted_pulls(st: GitHubEmulator) -> list[PullRec]:
    return sorted(st.pulls.values(), key=lambda p: (p.repo_id, p.number))


def _pull_summary(st: GitHubEmulator, pr: PullRec) -> JSON:
    repo = st.repos[pr.repo_id]
    combined = st.combined_status_of(repo, pr.head_sha)
    return {
        "repo": st.full_name(repo),
        "number": pr.number,
        "title": pr.title,
        "state": pr.state,
        "draft": pr.draft,
        "user": st.users[pr.user_id].login,
        "head_sha": pr.head_sha,
        "html_url": f"{st.base_url}/{st.full_name(repo)}/pull/{pr.number}",
        "combined_state": combined["state"],
        "statuses": [{**s, "href": safe_href(s.get("target_url"))} for s in combined["statuses"]],
        # Check runs beside statuses (GitHub Apps only; latest per app and name).
        "check_runs": [
            {**run, "href": safe_href(run.get("details_url"))}
            for run in _latest_check_runs(st, repo, pr.head_sha)
        ],
        "comments": [
            {
                "user": st.users[c.user_id].login,
                "user_type": st.users[c.user_id].type,
                "body": c.body,
                "updated_at": objects.iso(c.updated_at),
            }
            for c in sorted(st.comment_records.values(), key=lambda c: c.id)
            if c.repo_id == repo.id and c.issue_number == pr.number
        ],
    }


def _latest_check_runs(st: GitHubEmulator, repo: Any, sha: str) -> list[JSON]:
    seen: set[tuple[int, str]] = set()
    latest = []
    for rec in st.apps.runs_for(repo, sha):
        if (rec.app_id, rec.name) not in seen:
            seen.add((rec.app_id, rec.name))
            latest.append(st.apps.check_run_json(rec))
    return latest


@bp.get("/")
def inspect() -> str:
    st = current_state()
    with st.lock:
        repos = [
            {
                "full_name": st.full_name(r),
                "private": r.private,
                "id": r.id,
                "pulls": [_pull_summary(st, p) for p in _sorted_pulls(st) if p.repo_id == r.id],
            }
            for r in st.repos.values()
        ]
        users = [(u.login, u.id, u.type) for u in sorted(st.users.values(), key=lambda u: u.id)]
        recent = list(reversed(st.deliveries[-20:]))
        n_requests = len(st.requests)
    return render_template(
        "emulator/inspect.html",
        repos=repos,
        users=users,
        deliveries=recent,
        n_requests=n_requests,
        api_url=st.api_url,
    )


@pages.get("/<owner>/<name>/pull/<int:number>")
def pull_page(owner: str, name: str, number: int) -> tuple[str, int] | str:
    """A bare stand-in for a PR page, so links undersign prints lead somewhere."""
    st = current_state()
    with st.lock:
        repo = st.find_repo(f"{owner}/{name}")
        pr = st.pulls.get((repo.id, number)) if repo else None
        if pr is None:
            return render_template("emulator/not_found.html"), 404
        summary = _pull_summary(st, pr)
    return render_template("emulator/pull.html", pr=summary)


_AVATAR_COLOURS = ("#0969da", "#1a7f37", "#8250df", "#bf3989", "#cf222e", "#9a6700")


@pages.get("/avatars/u/<int:user_id>")
def avatar(user_id: int) -> Response:
    st = current_state()
    with st.lock:
        user = st.users.get(user_id)
        letter = user.login[:1].upper() if user else "?"
    colour = _AVATAR_COLOURS[user_id % len(_AVATAR_COLOURS)]
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" width="64" height="64" viewBox="0 0 64 64">'
        f'<rect width="64" height="64" fill="{colour}"/>'
        '<text x="32" y="42" font-size="30" text-anchor="middle" fill="#fff" '
        f'font-family="sans-serif">{html.escape(letter)}</text></svg>'
    )
    return Response(svg, content_type="image/svg+xml", headers={"Cache-Control": "max-age=300"})
