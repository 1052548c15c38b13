"""GitHub Apps in the emulator: registration, installations, JWTs, installation tokens,
check runs, expiring user tokens and the app-only webhooks (REFERENCE sections 1.8, 2.2, 3).

What GitHub checks, checked here the same way:

* The app JWT is RS256, signed with the app's key; ``iss`` is the app id (an int, or a
  numeric string) or its client id; ``iat`` must be an integer not in the future; ``exp``
  must be numeric, in the future and no more than 10 minutes ahead. Each failure answers
  401 with GitHub's observed message. A JWT only works on the app routes.
* Installation tokens (``ghs_``) last one hour, act as the app's bot account and only reach
  the installation's repositories (404 elsewhere, like a private repository) with the
  installation's permissions (403 "Resource not accessible by integration" otherwise).
  ``X-GitHub-Stateless-S2S-Token: enabled`` yields the long dotted ``ghs_APPID_JWT`` form.
* Check runs can only be written with ``ghs_``/``ghu_`` tokens (api/rest.py answers the 403).
  The HTTP side of all this (JWT checks, the installation hook, the routes) is api/apps.py.
* GitHub App user tokens (``ghu_``) expire after 8 hours when the app has expiring tokens on;
  the refresh grant rotates both tokens and kills the old pair.

State lives in :class:`AppRegistry`, reached as ``GitHubEmulator.apps``; every method takes
the emulator's lock.  No Flask here: which installation is acting during a request is asked of
``acting_installation``, which the server plugs in.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from undersign.emulator import objects
from undersign.emulator.models import Repo, Token, random_token

if TYPE_CHECKING:
    from undersign.emulator.state import GitHubEmulator

JSON = dict[str, Any]

#: "Installation tokens expire one hour from the time you create them."
INSTALLATION_TOKEN_TTL = 3600
#: GitHub App user tokens: ``expires_in`` is "always 28800", the refresh token ~6 months.
USER_TOKEN_TTL = 28800
REFRESH_TOKEN_TTL = 15811200
#: "exp" may be at most 10 minutes ahead.
MAX_JWT_LIFETIME = 600

JWT_UNDECODABLE = "A JSON web token could not be decoded"
JWT_EXP_TOO_FAR = "'Expiration time' claim ('exp') is too far in the future"
JWT_BAD_IAT = (
    "'Issued at' claim ('iat') must be an Integer representing the time that the assertion "
    "was issued"
)
JWT_BAD_EXP = (
    "'Expiration time' claim ('exp') must be a numeric value representing the future time at "
    "which the assertion expires"
)
NOT_ACCESSIBLE = "Resource not accessible by integration"
#: GitHub's 403 to a token request for a suspended installation.
INSTALLATION_SUSPENDED = "This installation has been suspended"
APPS_DOCS = "https://docs.github.com/rest/apps/apps"
CHECKS_DOCS = "https://docs.github.com/rest/checks/runs"

CHECK_STATUSES = ("queued", "in_progress", "completed")
CHECK_CONCLUSIONS = (
    "action_required",
    "cancelled",
    "failure",
    "neutral",
    "success",
    "skipped",
    "timed_out",
)
MAX_OUTPUT_TEXT = 65535
MAX_ANNOTATIONS = 50
MAX_ACTIONS = 3
ACTION_LIMITS = {"label": 20, "description": 40, "identifier": 20}

DEFAULT_PERMISSIONS = {
    "checks": "write",
    "contents": "read",
    "issues": "write",
    "members": "read",
    "metadata": "read",
    "pull_requests": "read",
    "statuses": "write",
}
DEFAULT_EVENTS = ("check_run", "issue_comment", "merge_group", "pull_request", "repository")
#: The manifest flow's temporary code: "exchanged ... within one hour", and only once.
MANIFEST_CODE_TTL = 3600


@dataclass
class AppRec:
    id: int
    slug: str
    name: str
    client_id: str
    client_secret: str
    public_key: RSAPublicKey
    permissions: dict[str, str]
    events: list[str]
    owner_id: int
    bot_user_id: int
    expiring_user_tokens: bool
    created_at: float


@dataclass
class ManifestCode:
    """A manifest the person confirmed, waiting for ``POST /app-manifests/{code}/conversions``."""

    code: str
    manifest: JSON
    owner_login: str
    created_at: float
    used: bool = False


@dataclass
class AppHook:
    """An app's own webhook (``hook_attributes``; ``GET /app/hook/config``)."""

    url: str
    secret: str | None
    active: bool
    content_type: str = "json"


@dataclass
class InstallationRec:
    id: int
    app_id: int
    account_id: int
    repository_selection: str  # all | selected
    repo_ids: set[int]
    permissions: dict[str, str]
    events: list[str]
    created_at: float
    suspended_at: float | None = None
    suspended_by: int | None = None  # the user who suspended it


@dataclass
class TokenInfo:
    """What a ``ghs_``/``ghu_`` token is beyond its :class:`Token` row."""

    expires_at: float | None
    installation_id: int | None = None
    app_id: int | None = None
    refresh_token: str | None = None


@dataclass
class RefreshRec:
    token: str
    access_token: str
    client_id: str
    user_id: int
    expires_at: float
    used: bool = False


@dataclass
class CheckRunRec:
    id: int
    repo_id: int
    app_id: int
    head_sha: str
    name: str
    status: str
    conclusion: str | None
    started_at: float
    completed_at: float | None
    details_url: str | None
    external_id: str
    output: JSON
    actions: list[JSON]
    check_suite_id: int
    created_at: float
    updated_at: float
    history: list[JSON] = field(default_factory=list)


class AppRegistry:
    """Every GitHub App, installation, app token and check run of one emulator."""

    def __init__(self, st: GitHubEmulator) -> None:
        self.st = st
        self._ids = {"app": 900_000, "installation": 40_000_000, "check_run": 20_000_000_000}
        self._suite_ids: dict[tuple[int, int, str], int] = {}
        self.apps: dict[int, AppRec] = {}
        self.installations: dict[int, InstallationRec] = {}
        self.tokens: dict[str, TokenInfo] = {}
        self.refresh_tokens: dict[str, RefreshRec] = {}
        self.check_runs: dict[int, CheckRunRec] = {}
        #: Manifest codes by code (the manifest flow), and each app's webhook by app id.
        self.manifest_codes: dict[str, ManifestCode] = {}
        self.hooks: dict[int, AppHook] = {}
        #: Installation-token requests answered, per installation (tests count them).
        self.token_requests: dict[int, int] = {}
        #: The installation whose token made the request being answered, if any: an
        #: installation token's bot has its rights only during its own requests.  The HTTP
        #: side (api/apps.py) plugs in its reader; without a server there is never one.
        self.acting_installation: Callable[[], InstallationRec | None] = lambda: None

    def next_id(self, kind: str) -> int:
        self._ids[kind] += 1
        return self._ids[kind]

    # --- programming API ---------------------------------------------------------------------

    def register_app(
        self,
        slug: str,
        public_key_pem: str | bytes,
        *,
        owner_login: str,
        app_id: int | None = None,
        client_id: str | None = None,
        client_secret: str | None = None,
        name: str | None = None,
        permissions: dict[str, str] | None = None,
        events: list[str] | None = None,
        callback_urls: list[str] | None = None,
        expiring_user_tokens: bool = True,
    ) -> JSON:
        """Register a GitHub App (and its ``slug[bot]`` account, and its OAuth side when
        ``callback_urls`` are given). Returns ``GET /app``'s JSON."""
        pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
        key = serialization.load_pem_public_key(pem)
        if not isinstance(key, RSAPublicKey):
            raise ValueError("a GitHub App key is an RSA key")
        st = self.st
        with st.lock:
            owner = st.require_user(owner_login)
            ident = app_id if app_id is not None else self.next_id("app")
            if ident in self.apps:
                raise ValueError(f"app id already taken: {ident}")
            bot = st.add_user(f"{slug}[bot]", type="Bot", name=name or slug)
            cid = client_id or "Iv23li" + secrets.token_hex(7)
            secret = client_secret or secrets.token_hex(20)
            rec = AppRec(
                id=ident,
                slug=slug,
                name=name or slug,
                client_id=cid,
                client_secret=secret,
                public_key=key,
                permissions=dict(permissions or DEFAULT_PERMISSIONS),
                events=list(events or DEFAULT_EVENTS),
                owner_id=owner.id,
                bot_user_id=int(bot["id"]),
                expiring_user_tokens=expiring_user_tokens,
                created_at=st.clock(),
            )
            self.apps[ident] = rec
            if callback_urls:
                st.add_oauth_client(
                    cid, secret, callback_urls, app_type="github_app", name=rec.name
                )
            return self.app_json(rec)

    def manifest_code(self, manifest: JSON, owner_login: str) -> str:
        """The person confirmed ``manifest`` for ``owner_login``: the code GitHub redirects
        back with (valid one hour, once)."""
        with self.st.lock:
            self.st.require_user(owner_login)
            code = secrets.token_hex(20)
            self.manifest_codes[code] = ManifestCode(
                code, dict(manifest), owner_login, self.st.clock()
            )
            return code

    def convert_manifest(self, code: str) -> JSON | None:
        """``POST /app-manifests/{code}/conversions``: register the app the manifest describes,
        with a new RSA key and webhook secret; None for an unknown, used or expired code."""
        st = self.st
        with st.lock:
            rec = self.manifest_codes.get(code)
            if rec is None or rec.used or st.clock() - rec.created_at > MANIFEST_CODE_TTL:
                return None
            rec.used = True
            manifest = rec.manifest
            name = str(manifest.get("name") or "").strip()
            slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "app"
            taken = {a.slug for a in self.apps.values()}
            taken |= {u.login.lower() for u in st.users.values()}
            base, n = slug, 1
            while slug in taken or f"{slug}[bot]" in taken:
                n += 1
                slug = f"{base}-{n}"
            requested = manifest.get("default_permissions")
            permissions = {"metadata": "read"}
            if isinstance(requested, dict):
                permissions.update({str(k): str(v) for k, v in requested.items()})
            events = [str(e) for e in manifest.get("default_events") or []]
            callbacks = [str(u) for u in manifest.get("callback_urls") or []]
        key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        public = key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,  # GitHub's .pem: BEGIN RSA PRIVATE KEY
            serialization.NoEncryption(),
        ).decode("ascii")
        body = self.register_app(
            slug,
            public,
            owner_login=rec.owner_login,
            name=name or slug,
            permissions=permissions,
            events=events,
            callback_urls=callbacks or None,
        )
        with st.lock:
            app = self.apps[int(body["id"])]
            hook = manifest.get("hook_attributes")
            webhook_secret = secrets.token_hex(20)
            if isinstance(hook, dict) and hook.get("url"):
                self.hooks[app.id] = AppHook(
                    str(hook["url"]), webhook_secret, bool(hook.get("active", True))
                )
            body.update(
                {
                    "description": str(manifest.get("description") or ""),
                    "external_url": str(manifest.get("url") or ""),
                    "client_id": app.client_id,
                    "client_secret": app.client_secret,
                    "webhook_secret": webhook_secret if app.id in self.hooks else None,
                    "pem": pem,
                }
            )
            return body

    def _app(self, ref: int | str) -> AppRec:
        for app in self.apps.values():
            if ref in (app.id, app.slug, app.client_id):
                return app
        raise KeyError(f"no such app: {ref}")

    def install(
        self,
        app: int | str,
        account_login: str,
        *,
        repositories: list[str] | None = None,
    ) -> JSON:
        """Install ``app`` on an account: every repository (``repositories=None``) or the
        ones listed (``selected``). Returns the REST installation object."""
        st = self.st
        with st.lock:
            rec = self._app(app)
            account = st.require_user(account_login)
            if any(
                i.app_id == rec.id and i.account_id == account.id
                for i in self.installations.values()
            ):
                raise ValueError(f"{rec.slug} is already installed on {account_login}")
            inst = InstallationRec(
                id=self.next_id("installation"),
                app_id=rec.id,
                account_id=account.id,
                repository_selection="all" if repositories is None else "selected",
                repo_ids={st.require_repo(r).id for r in repositories or ()},
                permissions=dict(rec.permissions),
                events=list(rec.events),
                created_at=st.clock(),
            )
            self.installations[inst.id] = inst
            return self.installation_json(inst)

    def add_repositories(self, installation_id: int, repositories: list[str]) -> None:
        with self.st.lock:
            inst = self._installation(installation_id)
            inst.repo_ids |= {self.st.require_repo(r).id for r in repositories}

    def remove_repositories(self, installation_id: int, repositories: list[str]) -> None:
        with self.st.lock:
            inst = self._installation(installation_id)
            if inst.repository_selection == "all":
                inst.repository_selection = "selected"
                inst.repo_ids = {r.id for r in self._account_repos(inst)}
            inst.repo_ids -= {self.st.require_repo(r).id for r in repositories}

    def suspend(self, installation_id: int, *, by_login: str | None = None) -> None:
        """Suspend an installation (by its account, or ``by_login``): GitHub refuses its
        token requests until it is unsuspended. Send the ``installation suspend`` webhook
        with :meth:`installation_event`."""
        with self.st.lock:
            inst = self._installation(installation_id)
            by = self.st.require_user(by_login) if by_login else self.st.users[inst.account_id]
            inst.suspended_at = self.st.clock()
            inst.suspended_by = by.id

    def unsuspend(self, installation_id: int) -> None:
        with self.st.lock:
            inst = self._installation(installation_id)
            inst.suspended_at = None
            inst.suspended_by = None

    def uninstall(self, installation_id: int) -> None:
        """Delete an installation; its tokens stop working at once."""
        with self.st.lock:
            self.installations.pop(installation_id)
            for token, info in self.tokens.items():
                if info.installation_id == installation_id and token in self.st.tokens:
                    self.st.tokens[token].revoked = True

    def _installation(self, installation_id: int) -> InstallationRec:
        inst = self.installations.get(installation_id)
        if inst is None:
            raise KeyError(f"no such installation: {installation_id}")
        return inst

    def _account_repos(self, inst: InstallationRec) -> list[Repo]:
        return sorted(
            (r for r in self.st.repos.values() if r.owner_id == inst.account_id),
            key=lambda r: r.id,
        )

    def installation_repos(self, inst: InstallationRec) -> list[Repo]:
        if inst.repository_selection == "all":
            return self._account_repos(inst)
        return [self.st.repos[i] for i in sorted(inst.repo_ids) if i in self.st.repos]

    def covers(self, inst: InstallationRec, repo: Repo) -> bool:
        if inst.repository_selection == "all":
            return repo.owner_id == inst.account_id
        return repo.id in inst.repo_ids

    def issue_installation_token(self, installation_id: int, *, stateless: bool = False) -> JSON:
        """What ``POST /app/installations/{id}/access_tokens`` answers (201 body)."""
        st = self.st
        with st.lock:
            inst = self._installation(installation_id)
            app = self.apps[inst.app_id]
            now = st.clock()
            expires = now + INSTALLATION_TOKEN_TTL
            if stateless:
                # The [NEW] 2026 format ``ghs_APPID_JWT``: ~520 characters, with dots.
                inner = jwt.encode(
                    {
                        "iss": str(app.id),
                        "installation": inst.id,
                        "exp": int(expires),
                        "nonce": secrets.token_urlsafe(200),
                    },
                    secrets.token_bytes(32),
                    algorithm="HS256",
                )
                token = f"ghs_{app.id}_{inner}"
            else:
                token = random_token("ghs_")
            st.tokens[token] = Token(token, app.bot_user_id, [], None, now)
            self.tokens[token] = TokenInfo(expires, installation_id=inst.id, app_id=app.id)
            self.token_requests[inst.id] = self.token_requests.get(inst.id, 0) + 1
            body: JSON = {
                "token": token,
                "expires_at": objects.iso(expires),
                "permissions": dict(inst.permissions),
                "repository_selection": inst.repository_selection,
            }
            if inst.repository_selection == "selected":
                body["repositories"] = [
                    objects.repository(st, r) for r in self.installation_repos(inst)
                ]
            return body

    # --- JSON shapes -------------------------------------------------------------------------

    def app_json(self, app: AppRec) -> JSON:
        st = self.st
        return {
            "id": app.id,
            "slug": app.slug,
            "node_id": objects.node_id("Integration", app.id),
            "client_id": app.client_id,
            "owner": objects.simple_user(st, st.users[app.owner_id]),
            "name": app.name,
            "description": "",
            "external_url": st.base_url,
            "html_url": f"{st.base_url}/apps/{app.slug}",
            "created_at": objects.iso(app.created_at),
            "updated_at": objects.iso(app.created_at),
            "permissions": dict(app.permissions),
            "events": list(app.events),
            "installations_count": sum(
                1 for i in self.installations.values() if i.app_id == app.id
            ),
        }

    def installation_json(self, inst: InstallationRec, *, webhook: bool = False) -> JSON:
        st = self.st
        account = st.users[inst.account_id]
        app = self.apps[inst.app_id]
        # Webhook payloads carry epoch seconds here, the REST API ISO strings (see fixtures).
        stamp: Any = int(inst.created_at) if webhook else objects.iso(inst.created_at)
        shown: JSON = {
            "id": inst.id,
            "account": objects.simple_user(st, account),
            "repository_selection": inst.repository_selection,
            "access_tokens_url": f"{st.api_url}/app/installations/{inst.id}/access_tokens",
            "repositories_url": f"{st.api_url}/installation/repositories",
            "html_url": f"{st.base_url}/settings/installations/{inst.id}",
            "app_id": app.id,
            "app_slug": app.slug,
            "target_id": account.id,
            "target_type": account.type,
            "permissions": dict(inst.permissions),
            "events": list(inst.events),
            "created_at": stamp,
            "updated_at": stamp,
            "single_file_name": None,
            # An ISO time in webhooks too (octokit's ``installation suspend`` schema).
            "suspended_at": objects.iso(inst.suspended_at) if inst.suspended_at else None,
            "suspended_by": (
                objects.simple_user(st, st.users[inst.suspended_by])
                if inst.suspended_by is not None
                else None
            ),
        }
        if not webhook:
            # The REST API's Installation lists the app's client id (an optional field, as of
            # 2026-03-10); no recorded webhook payload carries it.
            shown["client_id"] = app.client_id
        return shown

    def check_run_json(self, rec: CheckRunRec) -> JSON:
        st = self.st
        repo = st.repos[rec.repo_id]
        full = st.full_name(repo)
        app = self.apps[rec.app_id]
        pulls = [
            p
            for p in st.pulls.values()
            if p.repo_id == repo.id and p.state == "open" and p.head_sha == rec.head_sha
        ]
        output = rec.output
        return {
            "id": rec.id,
            "head_sha": rec.head_sha,
            "node_id": objects.node_id("CheckRun", rec.id),
            "external_id": rec.external_id,
            "url": f"{st.api_url}/repos/{full}/check-runs/{rec.id}",
            "html_url": f"{st.base_url}/{full}/runs/{rec.id}",
            "details_url": rec.details_url,
            "status": rec.status,
            "conclusion": rec.conclusion,
            "started_at": objects.iso(rec.started_at),
            "completed_at": objects.iso(rec.completed_at) if rec.completed_at else None,
            "output": {
                "title": output.get("title"),
                "summary": output.get("summary"),
                "text": output.get("text"),
                "annotations_count": len(output.get("annotations") or []),
                "annotations_url": f"{st.api_url}/repos/{full}/check-runs/{rec.id}/annotations",
            },
            "name": rec.name,
            "check_suite": {"id": rec.check_suite_id},
            "app": {
                k: v
                for k, v in self.app_json(app).items()
                if k not in ("client_id", "installations_count")
            },
            "pull_requests": [
                {
                    "url": f"{st.api_url}/repos/{full}/pulls/{p.number}",
                    "id": p.id,
                    "number": p.number,
                    "head": {"ref": p.head_ref, "sha": p.head_sha, "repo": _mini_repo(st, repo)},
                    "base": {"ref": p.base_ref, "sha": p.base_sha, "repo": _mini_repo(st, repo)},
                }
                for p in pulls
            ],
        }

    def list_check_runs(self, full_name: str, sha: str) -> list[JSON]:
        """Every check run on ``sha`` (newest first), for tests and the inspect page."""
        with self.st.lock:
            repo = self.st.require_repo(full_name)
            return [self.check_run_json(r) for r in self.runs_for(repo, sha)]

    def check_run_history(self, check_run_id: int) -> list[JSON]:
        """The create/update requests a check run went through (tests: updated in place)."""
        with self.st.lock:
            return list(self.check_runs[check_run_id].history)

    def check_suite_id(self, repo_id: int, app_id: int, sha: str) -> int:
        """The check suite a new run joins: one per (repository, app, head sha)."""
        key = (repo_id, app_id, sha)
        return self._suite_ids.setdefault(key, 7_000_000_000 + len(self._suite_ids))

    def runs_for(self, repo: Repo, sha: str) -> list[CheckRunRec]:
        return sorted(
            (r for r in self.check_runs.values() if r.repo_id == repo.id and r.head_sha == sha),
            key=lambda r: r.id,
            reverse=True,
        )

    # --- webhook payloads (octokit fixtures' shapes) -----------------------------------------

    def installation_event(
        self, installation_id: int, action: str, *, sender_login: str | None = None
    ) -> JSON:
        """``installation`` created / deleted / suspend / unsuspend / new_permissions_accepted."""
        if action not in ("created", "deleted", "suspend", "unsuspend", "new_permissions_accepted"):
            raise ValueError(f"unknown installation action: {action}")
        st = self.st
        with st.lock:
            inst = self._installation(installation_id)
            sender = st.require_user(sender_login) if sender_login else st.users[inst.account_id]
            return {
                "action": action,
                "installation": self.installation_json(inst, webhook=True),
                "repositories": [_mini_repo(st, r) for r in self.installation_repos(inst)],
                "sender": objects.simple_user(st, sender),
            }

    def installation_target_event(
        self, installation_id: int, changes: JSON, *, sender_login: str | None = None
    ) -> JSON:
        """``installation_target`` ``renamed``: the account an installation is on changed its
        login (pass what ``rename_user`` returned); only apps receive it."""
        st = self.st
        with st.lock:
            inst = self._installation(installation_id)
            account = st.users[inst.account_id]
            sender = st.require_user(sender_login) if sender_login else account
            return {
                "action": "renamed",
                "account": objects.simple_user(st, account),
                "changes": changes,
                "target_type": "Organization" if account.id in st.orgs else "User",
                "installation": {
                    "id": inst.id,
                    "node_id": objects.node_id("Installation", inst.id),
                },
                "sender": objects.simple_user(st, sender),
            }

    def installation_repositories_event(
        self,
        installation_id: int,
        action: str,
        repositories: list[str],
        *,
        sender_login: str | None = None,
    ) -> JSON:
        """``installation_repositories`` added / removed, for ``repositories``."""
        if action not in ("added", "removed"):
            raise ValueError("action must be 'added' or 'removed'")
        st = self.st
        with st.lock:
            inst = self._installation(installation_id)
            sender = st.require_user(sender_login) if sender_login else st.users[inst.account_id]
            listed = [_mini_repo(st, st.require_repo(r)) for r in repositories]
            return {
                "action": action,
                "installation": self.installation_json(inst, webhook=True),
                "repository_selection": inst.repository_selection,
                "repositories_added": listed if action == "added" else [],
                "repositories_removed": listed if action == "removed" else [],
                "requester": None,
                "sender": objects.simple_user(st, sender),
            }

    def check_run_event(
        self,
        check_run_id: int,
        action: str,
        *,
        sender_login: str,
        identifier: str | None = None,
        installation_id: int | None = None,
    ) -> JSON:
        """``check_run`` created / completed / rerequested / requested_action (with
        ``identifier``): the button a person pressed on the pull request."""
        if action not in ("created", "completed", "rerequested", "requested_action"):
            raise ValueError(f"unknown check_run action: {action}")
        st = self.st
        with st.lock:
            rec = self.check_runs[check_run_id]
            repo = st.repos[rec.repo_id]
            if action == "requested_action" and identifier not in {
                a["identifier"] for a in rec.actions
            }:
                raise ValueError(f"the check run offers no action {identifier!r}")
            if installation_id is None:
                installation_id = next(
                    i.id
                    for i in self.installations.values()
                    if i.app_id == rec.app_id and self.covers(i, repo)
                )
            payload: JSON = {"action": action, "check_run": self.check_run_json(rec)}
            if action == "requested_action":
                payload["requested_action"] = {"identifier": identifier}
            payload["repository"] = objects.repository(st, repo, webhook=True)
            if repo.owner_id in st.orgs:
                payload["organization"] = objects.organization(st, st.users[repo.owner_id])
            payload["sender"] = objects.simple_user(st, st.require_user(sender_login))
            payload["installation"] = {
                "id": installation_id,
                "node_id": objects.node_id("Installation", installation_id),
            }
            return payload

    def deliver(
        self, app: int | str, url: str, event: str, payload: JSON, *, secret: str | None
    ) -> tuple[int | None, str]:
        """Deliver like GitHub delivers to an app: ``X-GitHub-Hook-Installation-Target-Type:
        integration`` and the app id as target id."""
        with self.st.lock:
            rec = self._app(app)
        return self.st.deliver_webhook(
            url, event, payload, secret=secret, target_type="integration", target_id=rec.id
        )

    # --- hooks used by state.py, rest.py and oauth.py ----------------------------------------

    def token_expired(self, token: str) -> bool:
        info = self.tokens.get(token)
        return (
            info is not None and info.expires_at is not None and self.st.clock() >= info.expires_at
        )

    def token_installation(self, token: str) -> InstallationRec | None:
        info = self.tokens.get(token)
        if info is None or info.installation_id is None:
            return None
        return self.installations.get(info.installation_id)

    def bot_permission(self, repo: Repo, user_id: int | None) -> str | None:
        """The role an installation token's bot has on ``repo`` during this request."""
        inst = self.acting_installation()
        if inst is None or user_id != self.apps[inst.app_id].bot_user_id:
            return None
        return "write" if self.covers(inst, repo) else None

    def reads_members(self, org_user_id: int) -> bool:
        """An installation on this org with Members: read sees private memberships."""
        inst = self.acting_installation()
        return (
            inst is not None
            and inst.account_id == org_user_id
            and inst.permissions.get("members") in ("read", "write")
        )

    def user_token_response(self, client_id: str, token: str, user_id: int) -> JSON:
        """Extra fields of a ``ghu_`` exchange when the app has expiring tokens on."""
        app = next((a for a in self.apps.values() if a.client_id == client_id), None)
        if app is None or not app.expiring_user_tokens:
            return {}
        now = self.st.clock()
        refresh = random_token("ghr_", 76)
        self.tokens[token] = TokenInfo(now + USER_TOKEN_TTL, app_id=app.id, refresh_token=refresh)
        self.refresh_tokens[refresh] = RefreshRec(
            refresh, token, client_id, user_id, now + REFRESH_TOKEN_TTL
        )
        return {
            "expires_in": USER_TOKEN_TTL,
            "refresh_token": refresh,
            "refresh_token_expires_in": REFRESH_TOKEN_TTL,
        }

    def refresh(self, client_id: str, refresh_token: str) -> tuple[str, int, list[str]] | None:
        """Use a refresh token: the old pair dies. Returns (new access token's user id
        source: old token, user id, scopes) or None for ``bad_refresh_token``."""
        rec = self.refresh_tokens.get(refresh_token)
        st = self.st
        if rec is None or rec.used or rec.client_id != client_id or st.clock() >= rec.expires_at:
            return None
        rec.used = True
        old = st.tokens.get(rec.access_token)
        if old is not None:
            old.revoked = True  # "that refresh token and the old access token will no longer work"
        return rec.access_token, rec.user_id, list(old.scopes) if old else []


def _mini_repo(st: GitHubEmulator, repo: Repo) -> JSON:
    return {
        "id": repo.id,
        "node_id": objects.node_id("Repository", repo.id),
        "name": repo.name,
        "full_name": st.full_name(repo),
        "private": repo.private,
    }
