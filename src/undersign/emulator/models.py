"""Plain records behind the emulator's state.

They hold what GitHub stores, keyed by numeric ids, so that renaming a user (which keeps the
id, as on GitHub) is reflected everywhere the user is rendered.  Rendering them into GitHub's
JSON shapes is :mod:`undersign.emulator.objects`' job.
"""

from __future__ import annotations

import re
import secrets
import string
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Literal

AuthorField = Literal["user", "null", "empty"]

_ALNUM = string.ascii_letters + string.digits


def random_token(prefix: str, length: int = 36) -> str:
    """A token like GitHub's: prefix + ``[A-Za-z0-9]``.  Callers must not assume its length."""
    return prefix + "".join(secrets.choice(_ALNUM) for _ in range(length))


#: Permission levels from weakest to strongest (GitHub's repository roles).
PERMISSION_LEVELS: tuple[str, ...] = ("read", "triage", "write", "maintain", "admin")


@dataclass
class User:
    id: int
    login: str
    name: str | None
    email: str | None
    public_email: bool
    type: str  # "User" | "Bot" | "Organization"
    created_at: float
    #: Addresses added on the account besides ``email``: {address as typed: verified}.
    extra_emails: dict[str, bool] = field(default_factory=dict)


@dataclass
class Org:
    user_id: int
    members: set[int] = field(default_factory=set)
    public_members: set[int] = field(default_factory=set)
    admins: set[int] = field(default_factory=set)


@dataclass
class OAuthClient:
    client_id: str
    client_secret: str
    callback_urls: list[str]
    wildcard: bool
    app_type: str
    name: str


@dataclass
class AuthCode:
    code: str
    client_id: str
    redirect_uri: str
    user_id: int
    scopes: list[str]
    code_challenge: str | None
    expires_at: float
    used: bool = False


@dataclass
class PendingAuthorization:
    """An authorize request waiting on the emulator's consent page (keyed by a nonce)."""

    client_id: str
    redirect_uri: str
    state: str | None
    scopes: list[str]
    code_challenge: str | None
    login_hint: str | None
    created_at: float


@dataclass
class Token:
    token: str
    user_id: int
    scopes: list[str]
    client_id: str | None
    created_at: float
    revoked: bool = False


@dataclass
class RateBucket:
    limit: int
    remaining: int
    reset_at: float
    user_id: int | None
    #: times of accepted content-creating requests (sliding 60 s window)
    writes: deque[float] = field(default_factory=deque)


@dataclass
class Fault:
    method: str
    pattern: re.Pattern[str]
    status: int | None
    body: Any
    headers: dict[str, str]
    times: int
    delay: float


@dataclass(frozen=True)
class RecordedRequest:
    """One request the emulator answered (OAuth, REST or pages; not the control API).

    ``headers`` keys are as Werkzeug spells them (``X-Github-Api-Version``); ``query`` is the
    raw query string; ``body`` the raw bytes.
    """

    method: str
    path: str
    query: str
    headers: dict[str, str]
    body: bytes
    status: int
    time: float

    @property
    def is_rest(self) -> bool:
        return self.path.startswith("/api/v3/") or self.path == "/api/v3"

    @property
    def rest_path(self) -> str:
        """The path without the GHES ``/api/v3`` prefix."""
        return self.path[len("/api/v3") :] if self.is_rest else self.path


@dataclass
class Repo:
    id: int
    owner_id: int
    name: str
    private: bool
    description: str | None
    default_branch: str
    created_at: float
    branches: dict[str, str] = field(default_factory=dict)
    collaborators: dict[int, str] = field(default_factory=dict)
    next_issue_number: int = 1
    # Archived: read-only on GitHub (no new pull requests); only the flag is emulated.
    archived: bool = False


@dataclass
class CommitRec:
    sha: str
    repo_id: int
    message: str
    author_name: str
    author_email: str
    author_date: float
    committer_name: str
    committer_email: str
    committer_date: float
    author_user_id: int | None
    committer_user_id: int | None
    author_field: AuthorField
    committer_field: AuthorField
    parents: list[str]
    seq: int


@dataclass
class PullRec:
    repo_id: int
    number: int
    id: int
    user_id: int
    title: str
    body: str | None
    head_repo_id: int
    head_ref: str
    head_sha: str
    base_ref: str
    base_sha: str
    state: str
    draft: bool
    created_at: float
    updated_at: float
    closed_at: float | None = None
    before_sha: str | None = None


@dataclass
class StatusRec:
    id: int
    repo_id: int
    sha: str
    state: str
    description: str | None
    target_url: str | None
    context: str
    creator_id: int
    created_at: float


@dataclass
class CommentRec:
    id: int
    repo_id: int
    issue_number: int
    user_id: int
    body: str
    created_at: float
    updated_at: float


@dataclass
class Delivery:
    """One webhook delivery attempt, as GitHub's "Recent Deliveries" tab shows it."""

    id: int
    guid: str
    url: str
    event: str
    hook_id: int
    request_headers: dict[str, str]
    body: bytes
    status_code: int | None
    error: str | None
    duration: float
    delivered_at: float
    redelivery: bool = False
    response_body: bytes = b""

    @property
    def ok(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


@dataclass
class HookRec:
    """A repository webhook (``POST /repos/{o}/{r}/hooks``) or, with ``org_id`` instead of
    ``repo_id``, an organisation's (``POST /orgs/{org}/hooks``), as its settings page shows it."""

    id: int
    repo_id: int | None
    url: str
    content_type: str  # "json" | "form" (GitHub's default for repository and org hooks)
    events: list[str]
    secret: str | None
    active: bool
    created_at: float
    org_id: int | None = None
