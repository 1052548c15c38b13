"""What every HTTP view of the emulator shares: the current state, GitHub-shaped errors, JSON
answers, the caller (set by the REST pipeline in ``g``), request bodies, pagination and the
repository route decorator.

Depends on Flask and on :mod:`state` / :mod:`models` only; every view module of the ``api``
package imports it, and it imports none of them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from flask import Blueprint, Response, current_app, g, request

from undersign.emulator.models import Repo, User
from undersign.emulator.state import GitHubEmulator

#: GitHub Enterprise Server's layout: REST lives under this prefix on the web host.
PREFIX = "/api/v3"
DOCS = "https://docs.github.com/rest"
MUTATING = frozenset({"POST", "PATCH", "PUT", "DELETE"})
JSON = dict[str, Any]


class ApiError(Exception):
    """An error answered in GitHub's JSON shape: ``{"message", "documentation_url", "status"}``."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        documentation_url: str = DOCS,
        errors: list[JSON] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body: JSON = {"message": message}
        if errors is not None:
            self.body["errors"] = errors
        self.body["documentation_url"] = documentation_url
        self.body["status"] = str(status)
        self.headers = headers or {}


def not_found(documentation_url: str = DOCS) -> ApiError:
    """GitHub's 404, also its answer for what the caller may not see."""
    return ApiError(404, "Not Found", documentation_url=documentation_url)


def validation_failed(resource: str, field: str, message: str, docs: str) -> ApiError:
    """GitHub's 422 "Validation Failed" with one ``custom`` error."""
    error = {"resource": resource, "code": "custom", "field": field, "message": message}
    return ApiError(422, "Validation Failed", errors=[error], documentation_url=docs)


def current_state() -> GitHubEmulator:
    """The :class:`GitHubEmulator` this app serves (``create_app`` puts it in the config)."""
    st: GitHubEmulator = current_app.config["EMULATOR_STATE"]
    return st


def is_api(path: str) -> bool:
    """Whether ``path`` is a REST path (under ``/api/v3``)."""
    return path == PREFIX or path.startswith(PREFIX + "/")


def api_json(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A JSON answer as GitHub sends it (UTF-8, keys in insertion order)."""
    return Response(
        json.dumps(obj, ensure_ascii=False),
        status=status,
        headers=headers or {},
        content_type="application/json; charset=utf-8",
    )


def no_content() -> Response:
    return Response(status=204)


def require_auth(docs: str = DOCS) -> User:
    """The authenticated caller, or GitHub's 401."""
    if g.user is None:
        raise ApiError(401, "Requires authentication", documentation_url=docs)
    user: User = g.user
    return user


def has_scope(*wanted: str) -> bool:
    """Whether the caller's token carries one of these OAuth scopes."""
    if g.token is None:
        return False
    if g.token.token.startswith(("ghu_", "ghs_")):
        return True  # GitHub App tokens use permissions, not scopes
    return any(s in g.token.scopes for s in wanted)


def viewer_id() -> int | None:
    """The caller's user id (None when anonymous or a GitHub App's JWT)."""
    return g.user.id if g.user is not None else None


def json_body() -> JSON:
    """The request's JSON object, or GitHub's 400 "Problems parsing JSON"."""
    raw = request.get_data()
    if not raw:
        return {}
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiError(400, "Problems parsing JSON") from None
    if not isinstance(body, dict):
        raise ApiError(400, "Problems parsing JSON")
    return body


def int_arg(name: str, default: int) -> int:
    try:
        return int(request.args.get(name, default))
    except ValueError:
        return default


def paginate(items: list[Any]) -> tuple[list[Any], dict[str, str]]:
    """Slice ``items`` by ``per_page`` (default 30, max 100) and ``page``; build ``Link``.

    Like GitHub: the header only appears when there is more than one page, its order is
    prev, next, last, first, and repository URLs use ``/repositories/{id}/...``.
    """
    per_page = int_arg("per_page", 30)
    per_page = 30 if per_page < 1 else min(per_page, 100)
    page = max(1, int_arg("page", 1))
    last = max(1, math.ceil(len(items) / per_page))
    chunk = items[(page - 1) * per_page : page * per_page]
    if last == 1:
        return chunk, {}
    base = current_state().api_url + g.get("link_path", request.path[len(PREFIX) :])
    kept = [(k, v) for k, v in request.args.items(multi=True) if k != "page"]

    def link(n: int, rel: str) -> str:
        return f'<{base}?{urlencode([*kept, ("page", str(n))])}>; rel="{rel}"'

    links = []
    if page > 1:
        links.append(link(min(page - 1, last), "prev"))
    if page < last:
        links.append(link(page + 1, "next"))
        links.append(link(last, "last"))
    if page > 1:
        links.append(link(1, "first"))
    return chunk, {"Link": ", ".join(links)}


def repo_route(bp: Blueprint, rule: str, methods: tuple[str, ...] = ("GET",)) -> Callable[..., Any]:
    """Register a repository view on ``bp`` at ``/repos/{owner}/{repo}{rule}`` and
    ``/repositories/{id}{rule}``; the view receives the resolved :class:`Repo`."""

    def decorate(view: Callable[..., Response]) -> Callable[..., Response]:
        def by_name(owner: str, repo: str, **kwargs: Any) -> Response:
            st = current_state()
            with st.lock:
                found = st.find_repo(f"{owner}/{repo}")
                moved = st.moved_repo(f"{owner}/{repo}") if found is None else None
            if moved is not None:
                return _moved(moved, f"/repos/{owner}/{repo}")
            return _dispatch(view, found, f"/repos/{owner}/{repo}", kwargs)

        def by_id(repo_id: int, **kwargs: Any) -> Response:
            st = current_state()
            with st.lock:
                found = st.repos.get(repo_id)
            return _dispatch(view, found, f"/repositories/{repo_id}", kwargs)

        name = view.__name__
        bp.add_url_rule(
            "/repos/<owner>/<repo>" + rule, f"{name}_by_name", by_name, methods=list(methods)
        )
        bp.add_url_rule(
            "/repositories/<int:repo_id>" + rule, f"{name}_by_id", by_id, methods=list(methods)
        )
        return view

    return decorate


MOVED_DOCS = (
    "https://docs.github.com/rest/guides/best-practices-for-using-the-rest-api#follow-redirects"
)


def _moved(repo: Repo, prefix: str) -> Response:
    """A former name of a renamed or transferred repository: GitHub answers ``301`` to a GET
    and ``307`` to anything else, pointing at ``/repositories/{id}`` (octokit/fixtures
    ``rename-repository``). A repository the caller cannot see stays a plain 404."""
    st = current_state()
    with st.lock:
        visible = st.can_read(repo, viewer_id()) and not (repo.private and not has_scope("repo"))
    if not visible:
        raise not_found()
    suffix = request.path[len(PREFIX) + len(prefix) :]
    location = f"{st.api_url}/repositories/{repo.id}{suffix}"
    if request.query_string:
        location += "?" + request.query_string.decode("ascii", "replace")
    status = 301 if request.method in ("GET", "HEAD") else 307
    body = {"message": "Moved Permanently", "url": location, "documentation_url": MOVED_DOCS}
    return api_json(body, status, {"Location": location})


def _dispatch(
    view: Callable[..., Response], repo: Repo | None, prefix: str, kwargs: dict[str, Any]
) -> Response:
    st = current_state()
    with st.lock:
        visible = repo is not None and st.can_read(repo, viewer_id())
        if repo is not None and repo.private and not has_scope("repo"):
            visible = False
    if repo is None or not visible:
        raise not_found()  # private repositories are indistinguishable from missing ones
    suffix = request.path[len(PREFIX) + len(prefix) :]
    g.link_path = f"/repositories/{repo.id}{suffix}"
    return view(repo, **kwargs)
