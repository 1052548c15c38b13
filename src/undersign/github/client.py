"""The GitHub REST client undersign uses, built on githubkit.

githubkit brings authentication, the base URL (GitHub Enterprise Server and the emulator
included) and typed endpoints. This wrapper adds what a CLA bot needs on top: JSON in and
out, a timeout on every call, pagination that stops at the last page without an extra
request, GitHub's errors sorted into retry / wait / give up, and a count of every call so
tests and benchmarks can hold the bot to its call budget. Retries are not done here: the
job queue retries with backoff, so a webhook request never sleeps.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

# httpx imports httpcore inside HTTPTransport(), on the first client it makes: two threads
# making their first clients at once (a gthread worker's requests) could see a half-imported
# module ("partially initialized module 'httpcore'"). Imported here, once, before any thread.
import httpcore  # noqa: F401
import httpx
from githubkit import GitHub, TokenAuthStrategy
from githubkit.auth.base import BaseAuthStrategy
from githubkit.exception import (
    PrimaryRateLimitExceeded,
    RequestError,
    RequestFailed,
    RequestTimeout,
    SecondaryRateLimitExceeded,
)

from undersign.github.errors import (
    GitHubError,
    GitHubRequestError,
    GitHubUnavailable,
    NotFound,
    RateLimited,
)

USER_AGENT = "undersign (+https://github.com/undersign/undersign)"
PER_PAGE = 100
PULL_COMMITS_CAP = 250  # GitHub's list-commits-on-a-PR endpoint stops here
_NEXT_LINK = re.compile(r'<([^>]+)>;\s*rel="next"')
_NUMBERS = re.compile(r"/\d+(?=/|$)")

#: The ``httpx.Request.extensions`` key naming the primary limit a request counts against
#: (app mode: ``installation:N``); absent, the token's own.
LIMIT_SCOPE = "undersign.limit_scope"

Observer = Callable[[str, str, int], None]
#: Called with the HTTP method before every request: may sleep (pacing) or raise
#: ``RateLimited`` (a limit another process hit on the same token).
BeforeRequest = Callable[[str], None]
WRITE_METHODS = frozenset({"POST", "PATCH", "PUT", "DELETE"})


@dataclass(frozen=True)
class Account:
    """A GitHub account as ``GET /users/{login}`` describes it; ``type`` is GitHub's:
    ``User`` (a person), ``Organization`` or ``Bot``."""

    id: int
    login: str
    type: str

    @property
    def is_person(self) -> bool:
        """Only a person can sign, manage a company or be covered: not an org, not a bot."""
        return self.type == "User"


@dataclass
class RateLimitState:
    remaining: int | None = None
    reset_at: float | None = None


def route_of(path: str) -> str:
    """``/repos/a/b/pulls/7/commits`` -> ``/repos/{}/{}/pulls/{}/commits`` for counting."""
    parts = path.split("?")[0].split("/")
    if len(parts) > 3 and parts[1] == "repos":
        parts[2], parts[3] = "{owner}", "{repo}"
    return _NUMBERS.sub("/{n}", "/".join(parts))


class GitHubClient:
    """A bot's view of GitHub for one token."""

    def __init__(
        self,
        api_url: str,
        token: str,
        *,
        timeout: float = 10.0,
        observer: Observer | None = None,
        before_request: BeforeRequest | None = None,
        secondary_wait: float = 60.0,
        auth: BaseAuthStrategy | None = None,
    ) -> None:
        """``secondary_wait``: seconds to stop after a secondary limit without ``retry-after``
        (GitHub: "wait at least one minute"); only tests shorten it."""
        self.api_url = api_url.rstrip("/")
        self.secondary_wait = secondary_wait
        self.before_request = before_request
        self._api_path = httpx.URL(self.api_url + "/").path
        self.calls: Counter[tuple[str, str]] = Counter()
        #: The newest limit GitHub announced, whichever it was (the metrics' gauge).
        self.rate_limit = RateLimitState()
        #: Each primary limit by scope (``LIMIT_SCOPE``; "" for the token's own).
        self._limits: dict[str, RateLimitState] = {}
        self._observer = observer
        self._lock = threading.Lock()
        self._github = GitHub(
            # ``auth``: GitHub App mode picks an installation token per request (github/app.py).
            auth if auth is not None else TokenAuthStrategy(token),
            base_url=self.api_url + "/",
            user_agent=USER_AGENT,
            timeout=httpx.Timeout(timeout),
            # Retries belong to the job queue (with backoff and a visible failed state);
            # githubkit's own retry would sleep up to an hour inside a job.
            auto_retry=False,
            http_cache=False,
            event_hooks={"response": [self._on_response]},
        )

    # -- bookkeeping -------------------------------------------------------------------

    def _on_response(self, response: httpx.Response) -> None:
        path = response.request.url.path
        if path.startswith(self._api_path):
            path = "/" + path[len(self._api_path) :]
        method = response.request.method
        scope = str(response.request.extensions.get(LIMIT_SCOPE, ""))
        with self._lock:
            self.calls[(method, route_of(path))] += 1
            remaining = response.headers.get("x-ratelimit-remaining")
            reset = response.headers.get("x-ratelimit-reset")
            limit = self._limits.setdefault(scope, RateLimitState())
            for state in (self.rate_limit, limit):
                if remaining is not None and remaining.isdigit():
                    state.remaining = int(remaining)
                if reset is not None and reset.isdigit():
                    state.reset_at = float(reset)
        if self._observer:
            self._observer(method, route_of(path), response.status_code)

    @property
    def total_calls(self) -> int:
        return sum(self.calls.values())

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> httpx.Response:
        try:
            response = fn(*args, **kwargs)
        except PrimaryRateLimitExceeded as exc:
            raise RateLimited(
                "primary rate limit exhausted",
                exc.retry_after.total_seconds(),
                secondary=False,
                scope=_scope_of(exc),
            ) from None
        except SecondaryRateLimitExceeded as exc:
            raise RateLimited(
                "secondary rate limit", max(exc.retry_after.total_seconds(), 1.0), secondary=True
            ) from None
        except RequestFailed as exc:
            raise _sorted_failure(exc, self.secondary_wait, _scope_of(exc)) from None
        except RequestTimeout:
            raise GitHubUnavailable("GitHub did not answer in time") from None
        except RequestError as exc:
            if isinstance(exc.__cause__, GitHubError):  # raised while authenticating (app mode)
                raise exc.__cause__ from None
            raise GitHubUnavailable(f"GitHub unreachable: {type(exc.__cause__).__name__}") from None
        raw: httpx.Response = (
            response.raw_response if hasattr(response, "raw_response") else response
        )
        return raw

    def refuse_if_exhausted(self, scope: str = "") -> None:
        """``RateLimited`` when GitHub said the limit of ``scope`` has no call left until its
        reset: do not spend one to hear it again."""
        with self._lock:
            limit = self._limits.get(scope) or RateLimitState()
            remaining, reset_at = limit.remaining, limit.reset_at
        if remaining == 0 and reset_at is not None and reset_at > time.time():
            raise RateLimited(
                "primary rate limit exhausted",
                reset_at - time.time(),
                secondary=False,
                scope=scope or None,
            )

    def _request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        self.refuse_if_exhausted()
        if self.before_request is not None:
            self.before_request(method.upper())
        return self._call(self._github.request, method, path, **kwargs)

    def _paginate(self, path: str, params: dict[str, Any]) -> Iterator[list[dict[str, Any]]]:
        """Yield each page, following ``Link: rel=next`` (no trailing empty request)."""
        url: str | None = path
        query: dict[str, Any] | None = {**params, "per_page": PER_PAGE}
        while url:
            response = self._request("GET", url, params=query)
            yield _json_list(response)
            match = _NEXT_LINK.search(response.headers.get("link", ""))
            url, query = (match.group(1), None) if match else (None, None)

    # -- reads -------------------------------------------------------------------------

    def get_pull(self, owner: str, repo: str, number: int) -> dict[str, Any]:
        return json_object(self._request("GET", f"/repos/{owner}/{repo}/pulls/{number}"))

    def list_open_pulls(self, owner: str, repo: str) -> list[dict[str, Any]]:
        pulls: list[dict[str, Any]] = []
        for page in self._paginate(f"/repos/{owner}/{repo}/pulls", {"state": "open"}):
            pulls.extend(page)
        return pulls

    def list_account_repos(self, account: str) -> list[dict[str, Any]]:
        """Repositories of an organization (``/orgs/{org}/repos``, private ones the token
        sees included) or, for a user account, its public ones (``/users/{login}/repos``)."""
        try:
            pages = list(self._paginate(f"/orgs/{account}/repos", {"type": "all"}))
        except NotFound:
            pages = list(self._paginate(f"/users/{account}/repos", {"type": "owner"}))
        return [repo for page in pages for repo in page]

    def list_pull_commits(self, owner: str, repo: str, number: int) -> list[dict[str, Any]]:
        """At most 250 commits: GitHub's cap for this endpoint (see ``compare_commits``)."""
        commits: list[dict[str, Any]] = []
        for page in self._paginate(f"/repos/{owner}/{repo}/pulls/{number}/commits", {}):
            commits.extend(page)
        return commits

    def list_pull_commits_if_changed(
        self, owner: str, repo: str, number: int, etag: str | None
    ) -> tuple[list[dict[str, Any]] | None, str | None]:
        """Like ``list_pull_commits``, but ``(None, etag)`` when the first page still has
        ``etag`` (a 304 does not count against the rate limit). The ETag returned is only
        meaningful when the list fits one page; otherwise it is None."""
        path = f"/repos/{owner}/{repo}/pulls/{number}/commits"
        headers = {"If-None-Match": etag} if etag else None
        response = self._request("GET", path, params={"per_page": PER_PAGE}, headers=headers)
        if response.status_code == 304:
            return None, etag
        commits = _json_list(response)
        match = _NEXT_LINK.search(response.headers.get("link", ""))
        if match is None:
            return commits, response.headers.get("etag")
        url: str | None = match.group(1)
        while url:
            response = self._request("GET", url)
            commits.extend(_json_list(response))
            match = _NEXT_LINK.search(response.headers.get("link", ""))
            url = match.group(1) if match else None
        return commits, None

    def compare_commits(self, owner: str, repo: str, base: str, head: str) -> list[dict[str, Any]]:
        """Every commit in ``base...head``; paged, so not capped at 250 like the PR list."""
        commits: list[dict[str, Any]] = []
        path = f"/repos/{owner}/{repo}/compare/{base}...{head}"
        page = 1
        while True:
            response = self._request("GET", path, params={"per_page": PER_PAGE, "page": page})
            batch = json_object(response).get("commits") or []
            commits.extend(batch)
            if len(batch) < PER_PAGE or not _NEXT_LINK.search(response.headers.get("link", "")):
                return commits
            page += 1

    def list_issue_comments(self, owner: str, repo: str, number: int) -> list[dict[str, Any]]:
        comments: list[dict[str, Any]] = []
        for page in self._paginate(f"/repos/{owner}/{repo}/issues/{number}/comments", {}):
            comments.extend(page)
        return comments

    def authenticated_user(self) -> dict[str, Any]:
        """``GET /user``: who this token acts as."""
        return json_object(self._request("GET", "/user"))

    def get_user(self, login: str) -> dict[str, Any] | None:
        """``GET /users/{login}``: the account now holding ``login`` (``id``, ``login``), or
        None when GitHub answers 404 (deleted, or renamed and not taken again)."""
        try:
            return json_object(self._request("GET", f"/users/{quote(login, safe='')}"))
        except NotFound:
            return None

    def account(self, login: str) -> Account | None:
        """``GET /users/{login}`` with its ``type``: whoever holds ``login`` now (a person, an
        organisation, a bot), or None when GitHub has no such account."""
        user = self.get_user(login)
        if user is None or not isinstance(user.get("id"), int):
            return None
        return Account(int(user["id"]), str(user.get("login") or login), str(user.get("type")))

    def user_account(self, login: str) -> tuple[int, str] | None:
        """``GET /users/{login}`` read as a person: the (id, login) of the user account now
        holding ``login``; None when there is none, or it is no person (an organisation, a
        bot), so it can neither manage nor be covered as one."""
        account = self.account(login)
        if account is None or not account.is_person:
            return None
        return account.id, account.login

    def token_scopes(self) -> tuple[dict[str, Any], list[str] | None]:
        """``GET /user`` and the token's OAuth scopes (``X-OAuth-Scopes``); None when GitHub
        sends no such header (fine-grained tokens, App tokens: they have permissions)."""
        response = self._request("GET", "/user")
        header = response.headers.get("x-oauth-scopes")
        scopes = None if header is None else [s.strip() for s in header.split(",") if s.strip()]
        return json_object(response), scopes

    def get_repo(self, owner: str, repo: str) -> dict[str, Any]:
        """``GET /repos/{owner}/{repo}`` (with ``permissions``: what this token may do)."""
        return json_object(self._request("GET", f"/repos/{owner}/{repo}"))

    def first_pulls(self, owner: str, repo: str) -> list[dict[str, Any]]:
        """One page of one pull request: enough to know the token may read them."""
        response = self._request(
            "GET", f"/repos/{owner}/{repo}/pulls", params={"state": "all", "per_page": 1}
        )
        return _json_list(response)

    def list_repo_hooks(self, owner: str, repo: str) -> list[dict[str, Any]]:
        """The repository's webhooks (GitHub shows them to admins only: 404 otherwise)."""
        hooks: list[dict[str, Any]] = []
        for page in self._paginate(f"/repos/{owner}/{repo}/hooks", {}):
            hooks.extend(page)
        return hooks

    def last_hook_delivery(self, owner: str, repo: str, hook_id: int) -> dict[str, Any] | None:
        """The newest delivery of a repository webhook, or None when it never sent one."""
        response = self._request(
            "GET", f"/repos/{owner}/{repo}/hooks/{hook_id}/deliveries", params={"per_page": 1}
        )
        deliveries = _json_list(response)
        return deliveries[0] if deliveries else None

    def list_org_hooks(self, org: str) -> list[dict[str, Any]]:
        """The organisation's webhooks. GitHub shows them to owners only, and a classic token
        needs the ``admin:org_hook`` scope (``repo`` is not enough): 404 otherwise."""
        hooks: list[dict[str, Any]] = []
        for page in self._paginate(f"/orgs/{org}/hooks", {}):
            hooks.extend(page)
        return hooks

    def last_org_hook_delivery(self, org: str, hook_id: int) -> dict[str, Any] | None:
        """The newest delivery of an organisation webhook, or None when it never sent one."""
        response = self._request(
            "GET", f"/orgs/{org}/hooks/{hook_id}/deliveries", params={"per_page": 1}
        )
        deliveries = _json_list(response)
        return deliveries[0] if deliveries else None

    def collaborator_permission(self, owner: str, repo: str, login: str) -> str:
        """admin, write, read or none (maintain counts as write, triage as read)."""
        answer = self.collaborator_permission_record(owner, repo, login)
        return str(answer.get("permission") or "none")

    def collaborator_permission_record(self, owner: str, repo: str, login: str) -> dict[str, Any]:
        """The whole answer of ``GET /repos/{owner}/{repo}/collaborators/{login}/permission``
        (``permission``, ``role_name`` and the ``user`` it is about, with its id); ``{}`` when
        GitHub answers 404."""
        try:
            response = self._request(
                "GET", f"/repos/{owner}/{repo}/collaborators/{login}/permission"
            )
        except NotFound:
            return {}
        return json_object(response)

    def org_membership(self, org: str, login: str) -> dict[str, Any]:
        """``GET /orgs/{org}/memberships/{login}``: ``{"role": "admin" | "member", "state":
        "active" | "pending", ...}``; ``NotFound`` when they are no member. Unlike the
        members check it never redirects: a bot that may not see the answer gets a 403."""
        return json_object(self._request("GET", f"/orgs/{org}/memberships/{login}"))

    def is_org_member(self, org: str, login: str) -> bool:
        """204 means member. When the bot is no member itself GitHub redirects to the
        public-members check (followed here), so private members are then invisible."""
        try:
            response = self._request("GET", f"/orgs/{org}/members/{login}")
        except NotFound:
            return False
        return response.status_code == 204

    # -- writes ------------------------------------------------------------------------

    def create_status(
        self,
        owner: str,
        repo: str,
        sha: str,
        *,
        state: str,
        description: str,
        target_url: str | None,
        context: str,
    ) -> dict[str, Any]:
        body = {"state": state, "description": description, "context": context}
        if target_url:
            body["target_url"] = target_url
        return json_object(
            self._request("POST", f"/repos/{owner}/{repo}/statuses/{sha}", json=body)
        )

    def create_comment(self, owner: str, repo: str, number: int, body: str) -> dict[str, Any]:
        return json_object(
            self._request(
                "POST", f"/repos/{owner}/{repo}/issues/{number}/comments", json={"body": body}
            )
        )

    def update_comment(self, owner: str, repo: str, comment_id: int, body: str) -> dict[str, Any]:
        return json_object(
            self._request(
                "PATCH", f"/repos/{owner}/{repo}/issues/comments/{comment_id}", json={"body": body}
            )
        )

    def close(self) -> None:
        """Nothing to close: githubkit opens a connection per sync call."""
        self.calls.clear()


def _scope_of(exc: RequestFailed) -> str | None:
    """The primary limit the refused request counted against (``LIMIT_SCOPE``), if narrower
    than the token's."""
    return exc.request.extensions.get(LIMIT_SCOPE) or None


def _sorted_failure(
    exc: RequestFailed, secondary_wait: float = 60.0, scope: str | None = None
) -> GitHubError:
    response = exc.response
    status = response.status_code
    try:
        message = str(response.json().get("message", ""))
    except Exception:
        message = response.text[:200]
    if status >= 500:
        return GitHubUnavailable(f"GitHub answered {status}")
    if status in (403, 429):
        retry_after = response.headers.get("retry-after")
        if retry_after and retry_after.isdigit():
            return RateLimited(message, float(retry_after), secondary=True)
        if response.headers.get("x-ratelimit-remaining") == "0":
            reset = float(response.headers.get("x-ratelimit-reset", time.time() + 60))
            return RateLimited(message, max(reset - time.time(), 1.0), secondary=False, scope=scope)
        if "secondary rate" in message.lower():
            return RateLimited(message, secondary_wait, secondary=True)
    if status == 404:
        return NotFound(message or "Not Found")
    return GitHubRequestError(status, message)


def json_object(response: httpx.Response) -> dict[str, Any]:
    """A response's JSON object (``{}`` for an empty body); GitHubUnavailable otherwise.
    Public: the App client (github/app.py) reads its answers the same way."""
    if response.status_code == 204 or not response.content:
        return {}
    data = response.json()
    if not isinstance(data, dict):
        raise GitHubUnavailable("GitHub answered with an unexpected body")
    return data


def _json_list(response: httpx.Response) -> list[dict[str, Any]]:
    data = response.json()
    if not isinstance(data, list):
        raise GitHubUnavailable("GitHub answered with an unexpected body")
    return data
