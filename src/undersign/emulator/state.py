"""All of the emulator's GitHub state, and the Python API tests and the demo drive it with.

One :class:`GitHubEmulator` holds users, OAuth apps, tokens, orgs, repositories, commits, pull
requests, statuses, comments, injected faults, rate limits, recorded requests and webhook
deliveries.  Every access goes through one re-entrant lock because the HTTP server answers on
many threads.  Time comes from ``state.clock`` so tests can move it forward (code expiry, rate
limit resets) without sleeping.

The tables (``users``, ``repos``, ``pulls``, ...) and the queries over them (``find_repo``,
``permission``, ``resolve_ref``, ...) are public: the HTTP views (the ``api`` package) and the
payload builders (``objects``, ``webhooks``) read and change them under ``lock``.  Tests and
the demo use the higher-level methods (``add_repo``, ``add_pull_request``, ...).  No Flask
here: this module depends on ``models``, ``objects``, ``apps`` (the App registry) and
``webhooks`` (sending deliveries) only.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from undersign.emulator import objects, webhooks
from undersign.emulator.apps import AppRegistry
from undersign.emulator.models import (
    PERMISSION_LEVELS,
    AuthCode,
    AuthorField,
    CommentRec,
    CommitRec,
    Delivery,
    Fault,
    HookRec,
    OAuthClient,
    Org,
    PendingAuthorization,
    PullRec,
    RateBucket,
    RecordedRequest,
    Repo,
    StatusRec,
    Token,
    User,
    random_token,
)
from undersign.emulator.webhooks import ContentType

JSON = dict[str, Any]

DEFAULT_API_VERSION = "2022-11-28"
SUPPORTED_API_VERSIONS = ("2022-11-28", "2026-03-10")
#: Primary limits (docs rate-limits-for-the-rest-api): 5,000/h per user, 60/h per IP.
USER_RATE_LIMIT = 5000
ANONYMOUS_RATE_LIMIT = 60
#: "The temporary code will expire after 10 minutes."
CODE_TTL_SECONDS = 600
#: Scopes granted to tokens made with ``issue_token`` unless told otherwise (a bot's PAT).
DEFAULT_TOKEN_SCOPES = ("repo", "read:org", "user")


class GitHubEmulator:
    """The in-memory GitHub.  Safe to use from several threads (one lock guards everything)."""

    def __init__(self, *, clock: Callable[[], float] | None = None) -> None:
        self.lock = threading.RLock()
        self.clock: Callable[[], float] = clock or time.time
        #: Set by :class:`EmulatorServer` when it starts; used in every URL the objects carry.
        self.base_url = "http://127.0.0.1"
        #: When set, ``/login/oauth/authorize`` approves at once as this login (tests).
        self.auto_approve_as: str | None = None
        #: When set, ``/login/oauth/authorize`` redirects back with ``error=access_denied``.
        self.auto_deny = False
        #: GitHub's "80 content-creating requests per minute" secondary limit, when set.
        self.content_creation_limit_per_minute: int | None = None
        #: Whether an exchange that fails after client authentication (wrong redirect_uri or PKCE
        #: verifier) still burns the code.  GitHub does not document this (REFERENCE 1.5).
        self.burn_code_on_failed_exchange = True
        #: ``GitHub-Hookshot/<7 hex>``: one version per emulator, like one GitHub deployment.
        self.hookshot_version = secrets.token_hex(4)[:7]

        # The tables, keyed as GitHub keys them (numeric ids; logins are looked up through
        # ``user_by_login``).  They are public so the emulator's HTTP views and payload builders
        # can read and change them; whoever does must hold ``lock``.
        self._ids: dict[str, int] = {
            "user": 1000,
            "repo": 500_000_000,
            "pull": 1_800_000_000,
            "status": 30_000_000_000,
            "comment": 2_400_000_000,
            "hook": 480_000_000,
            "repo_hook": 470_000_000,  # add_hook, add_org_hook: never a default hook id
            "delivery": 0,
            "commit": 0,
        }
        self.users: dict[int, User] = {}
        self.orgs: dict[int, Org] = {}
        self.oauth_clients: dict[str, OAuthClient] = {}
        self.auth_codes: dict[str, AuthCode] = {}
        self.pending_authorizations: dict[str, PendingAuthorization] = {}
        self.grants: dict[tuple[int, str], set[str]] = {}
        self.tokens: dict[str, Token] = {}
        self._buckets: dict[str, RateBucket] = {}
        self.repos: dict[int, Repo] = {}
        #: Former ``owner/name`` (lowercased) of renamed or transferred repositories -> repo id:
        #: GitHub redirects them to ``/repositories/{id}`` while no repository takes the name.
        self.repo_redirects: dict[str, int] = {}
        #: Deleted forks, kept only so the pull requests they opened can still be shown.
        self.deleted_repos: dict[int, Repo] = {}
        self.commits: dict[str, CommitRec] = {}
        self.pulls: dict[tuple[int, int], PullRec] = {}
        self.status_records: list[StatusRec] = []
        self.comment_records: dict[int, CommentRec] = {}
        self._faults: list[Fault] = []
        self._secondary: list[int | None] = []  # one retry-after per pending refusal
        self._requests: list[RecordedRequest] = []
        self._deliveries: list[Delivery] = []
        #: Repository webhooks by id (``add_hook``); deliveries name them by ``hook_id``.
        self.hooks: dict[int, HookRec] = {}
        self._apps: AppRegistry | None = None

    @property
    def apps(self) -> AppRegistry:
        """GitHub Apps, installations, app tokens and check runs (see apps.py)."""
        with self.lock:
            if self._apps is None:
                self._apps = AppRegistry(self)
            return self._apps

    # --- small helpers ------------------------------------------------------------------------

    @property
    def api_url(self) -> str:
        return self.base_url + "/api/v3"

    def next_id(self, kind: str) -> int:
        """The next id of a kind (``"user"``, ``"repo"``, ...): GitHub's ids only grow."""
        self._ids[kind] += 1
        return self._ids[kind]

    def user_by_login(self, login: str) -> User | None:
        wanted = login.lower()  # GitHub logins are case-insensitive
        return next((u for u in self.users.values() if u.login.lower() == wanted), None)

    def require_user(self, login: str) -> User:
        """The account with this login, or KeyError (the Python API's "no such user")."""
        user = self.user_by_login(login)
        if user is None:
            raise KeyError(f"no such user: {login}")
        return user

    def user_by_email(self, email: str) -> User | None:
        """GitHub links a commit to the account owning its (verified) e-mail address."""
        wanted = email.lower()
        for user in self.users.values():
            if (user.email and user.email.lower() == wanted) or (
                objects.noreply_email(user).lower() == wanted
            ):
                return user
            if any(a.lower() == wanted and ok for a, ok in user.extra_emails.items()):
                return user
        return None

    def add_email(self, login: str, address: str, *, verified: bool = True) -> None:
        """Add (or re-add, changing ``verified``) an address on ``login``'s account, as the
        person does in Settings -> Emails. GitHub keeps an address on one account only: it
        must be removed from another first (``remove_email``)."""
        with self.lock:
            user = self.require_user(login)
            wanted = address.lower()
            for other in self.users.values():
                taken = (other.email or "").lower() == wanted or any(
                    a.lower() == wanted for a in other.extra_emails
                )
                if other is not user and taken:
                    raise ValueError(f"email already in use on another account: {address}")
            user.extra_emails = {
                a: ok for a, ok in user.extra_emails.items() if a.lower() != wanted
            }
            user.extra_emails[address] = verified

    def remove_email(self, login: str, address: str) -> None:
        """Take an address added with ``add_email`` off the account."""
        with self.lock:
            user = self.require_user(login)
            wanted = address.lower()
            user.extra_emails = {
                a: ok for a, ok in user.extra_emails.items() if a.lower() != wanted
            }

    def full_name(self, repo: Repo) -> str:
        """``owner/name`` as it reads now (a renamed owner renames every repository)."""
        return f"{self.users[repo.owner_id].login}/{repo.name}"

    def find_repo(self, full_name: str) -> Repo | None:
        """A repository by ``owner/name``, case-insensitively as GitHub matches it."""
        owner_login, _, name = full_name.partition("/")
        owner = self.user_by_login(owner_login)
        if owner is None:
            return None
        wanted = name.lower()
        found = (r for r in self.repos.values() if r.owner_id == owner.id)
        return next((r for r in found if r.name.lower() == wanted), None)

    def moved_repo(self, full_name: str) -> Repo | None:
        """The repository a former ``owner/name`` now redirects to (renamed, transferred, or
        its owner renamed), while no repository holds that name again."""
        if self.find_repo(full_name) is not None:
            return None
        repo_id = self.repo_redirects.get(full_name.lower())
        return self.repos.get(repo_id) if repo_id is not None else None

    def rename_repo(self, full_name: str, new_name: str) -> JSON:
        """Rename a repository (Settings -> General); returns the ``changes`` object of the
        ``repository`` ``renamed`` delivery GitHub sends for it."""
        with self.lock:
            repo = self.require_repo(full_name)
            owner = self.users[repo.owner_id].login
            taken = self.find_repo(f"{owner}/{new_name}")
            if taken not in (None, repo):
                raise ValueError(f"name already taken: {owner}/{new_name}")
            old = repo.name
            self.repo_redirects[f"{owner}/{old}".lower()] = repo.id
            repo.name = new_name
            return {"repository": {"name": {"from": old}}}

    def transfer_repo(self, full_name: str, new_owner: str) -> JSON:
        """Transfer a repository to another account; returns the ``changes`` object of the
        ``repository`` ``transferred`` delivery (``owner.from.user`` or ``.organization``)."""
        with self.lock:
            repo = self.require_repo(full_name)
            target = self.require_user(new_owner)
            if self.find_repo(f"{target.login}/{repo.name}") is not None:
                raise ValueError(f"name already taken: {target.login}/{repo.name}")
            previous = self.users[repo.owner_id]
            self.repo_redirects[self.full_name(repo).lower()] = repo.id
            repo.owner_id = target.id
            kind = "organization" if previous.id in self.orgs else "user"
            account = (
                objects.organization(self, previous)
                if kind == "organization"
                else objects.simple_user(self, previous)
            )
            return {"owner": {"from": {kind: account}}}

    def delete_fork(self, full_name: str) -> None:
        """Delete a fork that opened pull requests elsewhere: they stay, and GitHub gives
        them ``head.repo: null`` ("unknown repository"; github/rest-api-description#161,
        #1811). Their head commits stay reachable from the base repository."""
        with self.lock:
            repo = self.require_repo(full_name)
            if any(pr.repo_id == repo.id for pr in self.pulls.values()):
                raise ValueError(f"{full_name} has pull requests of its own: not a fork to delete")
            del self.repos[repo.id]
            self.deleted_repos[repo.id] = repo

    def head_repo(self, pr: PullRec) -> Repo | None:
        """The repository a pull request comes from; None once that fork was deleted."""
        return self.repos.get(pr.head_repo_id)

    def require_repo(self, full_name: str) -> Repo:
        repo = self.find_repo(full_name)
        if repo is None:
            raise KeyError(f"no such repository: {full_name}")
        return repo

    def require_pull(self, full_name: str, number: int) -> PullRec:
        repo = self.require_repo(full_name)
        pr = self.pulls.get((repo.id, number))
        if pr is None:
            raise KeyError(f"no pull request #{number} in {full_name}")
        return pr

    def permission(self, repo: Repo, user_id: int | None) -> str | None:
        """The user's effective role on the repo, or None for no access beyond public reads."""
        if user_id is None:
            return None
        if user_id == repo.owner_id:
            return "admin"
        if self._apps is not None:  # an installation token's bot, during a request
            granted = self._apps.bot_permission(repo, user_id)
            if granted is not None:
                return granted
        best = repo.collaborators.get(user_id)
        org = self.orgs.get(repo.owner_id)
        if org is not None:
            if user_id in org.admins:
                return "admin"
            if user_id in org.members and best is None:
                best = "read"  # the default organisation base permission
        return best

    def can_read(self, repo: Repo, user_id: int | None) -> bool:
        """Public repositories are readable by anyone, private ones by whoever has a role."""
        return not repo.private or self.permission(repo, user_id) is not None

    def can_push(self, repo: Repo, user_id: int | None) -> bool:
        """Write access or better (what statuses and comment edits need)."""
        perm = self.permission(repo, user_id)
        return perm is not None and PERMISSION_LEVELS.index(perm) >= PERMISSION_LEVELS.index(
            "write"
        )

    # --- users, apps, tokens ------------------------------------------------------------------

    def add_user(
        self,
        login: str,
        *,
        name: str | None = None,
        email: str | None = None,
        type: str = "User",
        user_id: int | None = None,
        public_email: bool = True,
    ) -> JSON:
        """Create an account.  Bots (``type="Bot"``) have logins ending in ``[bot]``, except
        the accounts GitHub runs itself, such as ``Copilot`` (the coding agent)."""
        if type == "Bot" and not login.endswith("[bot]") and login not in _GITHUB_BOTS:
            raise ValueError("GitHub bot logins end with '[bot]'")
        with self.lock:
            if self.user_by_login(login) is not None:
                raise ValueError(f"login already taken: {login}")
            if user_id is None:
                user_id = self.next_id("user")
            elif user_id in self.users:
                raise ValueError(f"user id already taken: {user_id}")
            user = User(user_id, login, name, email, public_email, type, self.clock())
            self.users[user_id] = user
            return objects.public_user(self, user)

    def user(self, login: str) -> JSON:
        with self.lock:
            return objects.public_user(self, self.require_user(login))

    def rename_user(self, old_login: str, new_login: str) -> JSON:
        """Change a login (a person's or an organisation's); the numeric id stays (that is
        why undersign keys users by id). Returns the ``changes`` object of the
        ``organization`` / ``installation_target`` ``renamed`` deliveries."""
        with self.lock:
            user = self.require_user(old_login)
            if self.user_by_login(new_login) not in (None, user):
                raise ValueError(f"login already taken: {new_login}")
            for repo in self.repos.values():  # their old URLs redirect, as a rename's do
                if repo.owner_id == user.id:
                    self.repo_redirects[f"{user.login}/{repo.name}".lower()] = repo.id
            previous, user.login = user.login, new_login
            return {"login": {"from": previous}}

    def organization_event(
        self, org: str, action: str, changes: JSON, *, sender_login: str | None = None
    ) -> JSON:
        """An ``organization`` payload (``renamed``: pass what ``rename_user`` returned), as
        an organisation's webhooks receive it."""
        if action != "renamed":
            raise ValueError(f"unsupported organization action: {action}")
        with self.lock:
            account = self.require_user(org)
            if account.id not in self.orgs:
                raise ValueError(f"{org} is not an organisation")
            sender = self.require_user(sender_login) if sender_login else account
            return {
                "action": action,
                "changes": changes,
                "organization": objects.organization(self, account),
                "sender": objects.simple_user(self, sender),
            }

    def add_oauth_client(
        self,
        client_id: str,
        client_secret: str,
        callback_urls: str | Sequence[str],
        *,
        wildcard: bool = True,
        app_type: str = "oauth",
        name: str | None = None,
    ) -> None:
        """Register an OAuth app (or a GitHub App's user-authorization side).

        ``wildcard`` is GitHub's per-callback "wildcard matching" setting (REFERENCE 1.2): on,
        subdomains/subdirectories of a callback are accepted; off, only exact matches.
        """
        urls = [callback_urls] if isinstance(callback_urls, str) else list(callback_urls)
        if not 1 <= len(urls) <= 10:
            raise ValueError("GitHub allows 1 to 10 callback URLs")
        if app_type not in ("oauth", "github_app"):
            raise ValueError("app_type must be 'oauth' or 'github_app'")
        with self.lock:
            self.oauth_clients[client_id] = OAuthClient(
                client_id, client_secret, urls, wildcard, app_type, name or client_id
            )

    def issue_token(
        self,
        login: str,
        *,
        scopes: Iterable[str] | None = None,
        prefix: str = "ghp_",
        client_id: str | None = None,
    ) -> str:
        """A valid token for ``login`` (a classic PAT by default).  Never assume its length."""
        with self.lock:
            user = self.require_user(login)
            tok = random_token(prefix)
            granted = list(DEFAULT_TOKEN_SCOPES if scopes is None else scopes)
            self.tokens[tok] = Token(tok, user.id, granted, client_id, self.clock())
            return tok

    def revoke_token(self, token: str) -> None:
        with self.lock:
            if token in self.tokens:
                self.tokens[token].revoked = True

    def token_user(self, token: str) -> tuple[Token, User] | None:
        """The live token and its account, or None (unknown, revoked or expired)."""
        tok = self.tokens.get(token)
        if tok is None or tok.revoked or tok.user_id not in self.users:
            return None
        if self._apps is not None and self._apps.token_expired(token):
            return None  # ghs_ after one hour, expiring ghu_ after eight
        return tok, self.users[tok.user_id]

    # --- orgs, repos, commits -----------------------------------------------------------------

    def add_org(
        self,
        login: str,
        *,
        members: Iterable[str] = (),
        public_members: Iterable[str] = (),
        admins: Iterable[str] = (),
    ) -> JSON:
        """An organisation.  ``public_members`` and ``admins`` are members too."""
        with self.lock:
            self.add_user(login, type="Organization")
            org_user = self.require_user(login)
            org = Org(org_user.id)
            for group, logins in (("m", members), ("p", public_members), ("a", admins)):
                for member in logins:
                    uid = self.require_user(member).id
                    org.members.add(uid)
                    if group == "p":
                        org.public_members.add(uid)
                    elif group == "a":
                        org.admins.add(uid)
            self.orgs[org_user.id] = org
            return objects.organization(self, org_user)

    def add_org_member(
        self, org: str, login: str, *, public: bool = False, admin: bool = False
    ) -> None:
        with self.lock:
            record = self.orgs[self.require_user(org).id]
            uid = self.require_user(login).id
            record.members.add(uid)
            if public:
                record.public_members.add(uid)
            if admin:
                record.admins.add(uid)

    def add_repo(
        self,
        full_name: str,
        *,
        private: bool = False,
        default_branch: str = "main",
        description: str | None = None,
    ) -> JSON:
        """A repository with one initial commit on its default branch."""
        owner_login, sep, name = full_name.partition("/")
        if not sep or not name:
            raise ValueError("repository names look like 'owner/name'")
        with self.lock:
            owner = self.require_user(owner_login)
            if self.find_repo(full_name) is not None:
                raise ValueError(f"repository exists: {full_name}")
            repo = Repo(
                self.next_id("repo"),
                owner.id,
                name,
                private,
                description,
                default_branch,
                self.clock(),
            )
            self.repos[repo.id] = repo
            author = (
                {"name": owner.name or owner.login, "email": owner.email}
                if owner.type == "User" and owner.email
                else {"name": "GitHub", "email": "noreply@github.com"}
            )
            sha = self.add_commit(full_name, author=author, message="Initial commit")
            repo.branches[default_branch] = sha
            return objects.repository(self, repo)

    def repo(self, full_name: str) -> JSON:
        with self.lock:
            return objects.repository(self, self.require_repo(full_name))

    def add_collaborator(self, full_name: str, login: str, permission: str = "write") -> None:
        if permission not in PERMISSION_LEVELS:
            raise ValueError(f"permission must be one of {PERMISSION_LEVELS}")
        with self.lock:
            repo = self.require_repo(full_name)
            repo.collaborators[self.require_user(login).id] = permission

    def add_commit(
        self,
        full_name: str,
        *,
        author_login: str | None = None,
        author: dict[str, str] | None = None,
        committer_login: str | None = None,
        committer: dict[str, str] | None = None,
        message: str = "Update README.md",
        author_field: AuthorField = "user",
        committer_field: AuthorField | None = None,
        parents: Sequence[str] | None = None,
    ) -> str:
        """A commit; returns its sha.

        ``author`` is the git identity (``{"name", "email"}``), defaulting to the account's.
        ``author_field`` controls the REST top-level ``author``: ``"user"`` (the linked
        SimpleUser: ``author_login``, else the account owning the e-mail, else null), ``"null"``
        or ``"empty"`` (``{}``) — GitHub returns all three (REFERENCE 2.2).  Parents left empty
        are filled in when the commit is put on a pull request.
        """
        if author_field not in ("user", "null", "empty"):
            raise ValueError("author_field must be 'user', 'null' or 'empty'")
        with self.lock:
            repo = self.require_repo(full_name)
            author_user = self.require_user(author_login) if author_login else None
            committer_user = self.require_user(committer_login) if committer_login else None
            ident = author or _identity(author_user)
            if ident is None:
                raise ValueError("give author_login or author={'name': ..., 'email': ...}")
            cident = committer or _identity(committer_user) or ident
            if committer_user is None and committer is None:
                committer_user = author_user
            seq = self.next_id("commit")
            now = self.clock()
            digest = hashlib.sha1(  # a git-looking id, not a security feature
                f"{repo.id}:{seq}:{message}:{ident['email']}".encode(), usedforsecurity=False
            ).hexdigest()
            self.commits[digest] = CommitRec(
                sha=digest,
                repo_id=repo.id,
                message=message,
                author_name=ident["name"],
                author_email=ident["email"],
                author_date=now,
                committer_name=cident["name"],
                committer_email=cident["email"],
                committer_date=now,
                author_user_id=author_user.id if author_user else None,
                committer_user_id=committer_user.id if committer_user else None,
                author_field=author_field,
                committer_field=committer_field or author_field,
                parents=list(parents or []),
                seq=seq,
            )
            return digest

    def commit(self, full_name: str, sha: str) -> JSON:
        with self.lock:
            return objects.commit(self, self.commits[sha], self.require_repo(full_name))

    def _ancestors(self, sha: str) -> set[str]:
        seen: set[str] = set()
        todo = [sha]
        while todo:
            current = todo.pop()
            if current in seen or current not in self.commits:
                continue
            seen.add(current)
            todo.extend(self.commits[current].parents)
        return seen

    def compare(self, base: str, head: str) -> tuple[list[CommitRec], int, str | None]:
        """(commits in head not in base, oldest first; behind_by; merge base sha)."""
        head_anc, base_anc = self._ancestors(head), self._ancestors(base)
        ahead = sorted((self.commits[s] for s in head_anc - base_anc), key=lambda c: c.seq)
        common = head_anc & base_anc
        merge_base = max(common, key=lambda s: self.commits[s].seq) if common else None
        return ahead, len(base_anc - head_anc), merge_base

    def pull_commit_shas(self, pr: PullRec) -> list[str]:
        return [c.sha for c in self.compare(pr.base_sha, pr.head_sha)[0]]

    def resolve_ref(self, repo: Repo, ref: str) -> str | None:
        """A sha, a (7+ char) sha prefix or a branch name -> full sha."""
        if ref in repo.branches:
            return repo.branches[ref]
        if ref in self.commits:
            return ref
        if len(ref) >= 7 and re.fullmatch(r"[0-9a-f]+", ref):
            hits = [s for s in self.commits if s.startswith(ref)]
            if len(hits) == 1:
                return hits[0]
        for pr in self.pulls.values():  # head branches of fork PRs live in the fork
            if pr.repo_id == repo.id and ref == f"refs/pull/{pr.number}/head":
                return pr.head_sha
        return None

    def _chain(self, shas: Sequence[str], parent: str) -> str:
        """Give parentless commits a linear history on top of ``parent``; returns the tip."""
        for sha in shas:
            rec = self.commits.get(sha)
            if rec is None:
                raise KeyError(f"no such commit: {sha}")
            if not rec.parents:
                rec.parents = [parent]
            parent = sha
        return parent

    # --- pull requests ------------------------------------------------------------------------

    def add_pull_request(
        self,
        full_name: str,
        *,
        user_login: str,
        commits: Sequence[str] | None = None,
        n_commits: int | None = None,
        author_login: str | None = None,
        author: dict[str, str] | None = None,
        author_field: AuthorField = "user",
        base_ref: str = "main",
        head_ref: str = "feature",
        head_repo: str | None = None,
        draft: bool = False,
        title: str | None = None,
        body: str | None = None,
    ) -> JSON:
        """Open a pull request.

        Pass existing ``commits`` (shas, oldest first) or ``n_commits`` to make that many, authored
        by ``author_login``/``author`` (default: the PR's author).  ``head_repo`` names a fork.
        """
        if (commits is None) == (n_commits is None):
            raise ValueError("give exactly one of commits= or n_commits=")
        with self.lock:
            repo = self.require_repo(full_name)
            opener = self.require_user(user_login)
            head = self.require_repo(head_repo) if head_repo else repo
            if base_ref not in repo.branches:
                repo.branches[base_ref] = repo.branches[repo.default_branch]
            base_sha = repo.branches[base_ref]
            if commits is None:
                commits = self._make_commits(
                    full_name,
                    n_commits or 0,
                    author_login=author_login or (None if author else user_login),
                    author=author,
                    author_field=author_field,
                )
            if not commits:
                raise ValueError("a pull request needs at least one commit")
            head_sha = self._chain(commits, base_sha)
            head.branches[head_ref] = head_sha
            now = self.clock()
            number = repo.next_issue_number
            repo.next_issue_number += 1
            pr = PullRec(
                repo_id=repo.id,
                number=number,
                id=self.next_id("pull"),
                user_id=opener.id,
                title=title or f"Changes from {head_ref}",
                body=body,
                head_repo_id=head.id,
                head_ref=head_ref,
                head_sha=head_sha,
                base_ref=base_ref,
                base_sha=base_sha,
                state="open",
                draft=draft,
                created_at=now,
                updated_at=now,
            )
            self.pulls[(repo.id, number)] = pr
            return objects.pull_request(self, pr)

    def _make_commits(
        self,
        full_name: str,
        n: int,
        *,
        author_login: str | None,
        author: dict[str, str] | None,
        author_field: AuthorField = "user",
    ) -> list[str]:
        return [
            self.add_commit(
                full_name,
                author_login=author_login,
                author=author,
                author_field=author_field,
                message=f"Change {i + 1}",
            )
            for i in range(n)
        ]

    def pull_request(self, full_name: str, number: int) -> JSON:
        with self.lock:
            return objects.pull_request(self, self.require_pull(full_name, number))

    def open_pull_requests(self) -> list[dict[str, Any]]:
        """Every open PR as ``{"repo": "owner/name", "number": n}``, oldest first."""
        with self.lock:
            pulls = sorted(self.pulls.values(), key=lambda pr: pr.created_at)
            return [
                {"repo": self.full_name(self.repos[pr.repo_id]), "number": pr.number}
                for pr in pulls
                if pr.state == "open"
            ]

    def pull_commits(self, full_name: str, number: int) -> list[str]:
        """All commit shas of a PR, oldest first (no 250 cap: this is the emulator's view)."""
        with self.lock:
            return self.pull_commit_shas(self.require_pull(full_name, number))

    def push_commits(
        self,
        full_name: str,
        number: int,
        shas: Sequence[str] | None = None,
        *,
        n_commits: int | None = None,
        author_login: str | None = None,
    ) -> JSON:
        """Push to the PR's head branch (what a ``synchronize`` event reports)."""
        with self.lock:
            pr = self.require_pull(full_name, number)
            if shas is None:
                login = author_login or self.users[pr.user_id].login
                shas = self._make_commits(
                    full_name, n_commits or 1, author_login=login, author=None
                )
            pr.before_sha = pr.head_sha
            pr.head_sha = self._chain(shas, pr.head_sha)
            self.repos[pr.head_repo_id].branches[pr.head_ref] = pr.head_sha
            pr.updated_at = self.clock()
            return objects.pull_request(self, pr)

    def branch_sha(self, full_name: str, ref: str) -> str:
        with self.lock:
            return self.require_repo(full_name).branches[ref]

    def set_branch(self, full_name: str, ref: str, sha: str) -> None:
        """Point branch ``ref`` of a repository at ``sha`` (creating it)."""
        with self.lock:
            if sha not in self.commits:
                raise KeyError(f"no such commit: {sha}")
            self.require_repo(full_name).branches[ref] = sha

    def retarget_pull_request(self, full_name: str, number: int, base_ref: str) -> JSON:
        """Change a PR's base branch (the "Edit" button); returns the ``changes`` object of
        the ``pull_request.edited`` delivery GitHub sends for it."""
        with self.lock:
            pr = self.require_pull(full_name, number)
            repo = self.require_repo(full_name)
            if base_ref not in repo.branches:
                raise KeyError(f"no such branch: {base_ref}")
            changes = {"base": {"ref": {"from": pr.base_ref}, "sha": {"from": pr.base_sha}}}
            pr.base_ref, pr.base_sha = base_ref, repo.branches[base_ref]
            pr.updated_at = self.clock()
            return changes

    def set_pr_state(self, full_name: str, number: int, state: str) -> JSON:
        if state not in ("open", "closed"):
            raise ValueError("state must be 'open' or 'closed'")
        with self.lock:
            pr = self.require_pull(full_name, number)
            pr.state = state
            pr.updated_at = self.clock()
            pr.closed_at = pr.updated_at if state == "closed" else None
            return objects.pull_request(self, pr)

    # --- statuses and comments ----------------------------------------------------------------

    def add_status(
        self,
        full_name: str,
        sha: str,
        *,
        state: str,
        creator_login: str,
        description: str | None = None,
        target_url: str | None = None,
        context: str = "default",
    ) -> JSON:
        """Record a commit status without the REST validation (seeding tests)."""
        with self.lock:
            repo = self.require_repo(full_name)
            rec = self.record_status(
                repo,
                sha,
                state,
                description,
                target_url,
                context,
                self.require_user(creator_login).id,
            )
            return objects.status(self, rec)

    def record_status(
        self,
        repo: Repo,
        sha: str,
        state: str,
        description: str | None,
        target_url: str | None,
        context: str,
        creator_id: int,
    ) -> StatusRec:
        """Store a status as given (the REST view validated it; ``add_status`` seeds tests)."""
        rec = StatusRec(
            self.next_id("status"),
            repo.id,
            sha,
            state,
            description,
            target_url,
            context,
            creator_id,
            self.clock(),
        )
        self.status_records.append(rec)
        return rec

    def status_history(self, repo: Repo, sha: str) -> list[StatusRec]:
        """Newest first, as ``GET /commits/{ref}/statuses`` lists them."""
        return sorted(
            (s for s in self.status_records if s.repo_id == repo.id and s.sha == sha),
            key=lambda s: s.id,
            reverse=True,
        )

    def _latest_per_context(self, repo: Repo, sha: str) -> list[StatusRec]:
        latest: dict[str, StatusRec] = {}
        for rec in self.status_history(repo, sha):
            latest.setdefault(rec.context.lower(), rec)  # contexts are case-insensitive
        return list(latest.values())

    def statuses(self, full_name: str, sha: str) -> list[JSON]:
        """All statuses of a commit, newest first."""
        with self.lock:
            repo = self.require_repo(full_name)
            return [objects.status(self, s) for s in self.status_history(repo, sha)]

    def combined_status(self, full_name: str, sha: str) -> JSON:
        with self.lock:
            repo = self.require_repo(full_name)
            return self.combined_status_of(repo, sha)

    def combined_status_of(self, repo: Repo, sha: str) -> JSON:
        """The ``GET /commits/{ref}/status`` body: the latest status per context, combined."""
        latest = self._latest_per_context(repo, sha)
        full = self.full_name(repo)
        return {
            "state": objects.combine_states([s.state for s in latest]),
            # The combined view's statuses carry no ``creator`` (REFERENCE 2.2).
            "statuses": [objects.status(self, s, with_creator=False) for s in latest],
            "sha": sha,
            "total_count": len(latest),
            "repository": objects.repository(self, repo),
            "commit_url": f"{self.api_url}/repos/{full}/commits/{sha}",
            "url": f"{self.api_url}/repos/{full}/commits/{sha}/status",
        }

    def add_comment(self, full_name: str, number: int, body: str, login: str) -> JSON:
        """``login`` writes a comment on PR ``number`` (no REST validation)."""
        with self.lock:
            pr = self.require_pull(full_name, number)
            rec = self.record_comment(pr.repo_id, number, body, self.require_user(login).id)
            return objects.comment(self, rec)

    def record_comment(self, repo_id: int, number: int, body: str, user_id: int) -> CommentRec:
        """Store a comment as given (the REST view validated it; ``add_comment`` seeds tests)."""
        now = self.clock()
        rec = CommentRec(self.next_id("comment"), repo_id, number, user_id, body, now, now)
        self.comment_records[rec.id] = rec
        return rec

    def comments(self, full_name: str, issue_number: int) -> list[JSON]:
        """The conversation comments of a PR, oldest first."""
        with self.lock:
            repo = self.require_repo(full_name)
            return [
                objects.comment(self, c)
                for c in sorted(self.comment_records.values(), key=lambda c: c.id)
                if c.repo_id == repo.id and c.issue_number == issue_number
            ]

    # --- faults and rate limits ---------------------------------------------------------------

    def add_fault(
        self,
        method: str = "*",
        path_pattern: str = ".*",
        *,
        status: int | None = 502,
        body: Any = None,
        headers: dict[str, str] | None = None,
        times: int = 1,
        delay: float = 0.0,
    ) -> None:
        """Make the next ``times`` matching requests fail.

        ``path_pattern`` is searched (``re.search``) in the full path, e.g. ``r"/statuses/"``.
        ``delay`` seconds pass before answering (a client timeout); ``status=None`` answers
        normally after the delay.  ``body`` may be a dict/list (JSON), str or bytes.
        """
        with self.lock:
            self._faults.append(
                Fault(
                    method.upper(),
                    re.compile(path_pattern),
                    status,
                    body,
                    dict(headers or {}),
                    times,
                    delay,
                )
            )

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def take_fault(self, method: str, path: str) -> Fault | None:
        """The injected fault this request meets, if any (each use counts against ``times``)."""
        with self.lock:
            for fault in self._faults:
                if fault.method in ("*", method) and fault.pattern.search(path):
                    fault.times -= 1
                    if fault.times <= 0:
                        self._faults.remove(fault)
                    return fault
        return None

    def rate_bucket(self, key: str, user_id: int | None) -> RateBucket:
        """The primary rate limit bucket of ``user:<id>``, ``app:<id>`` or ``ip:<addr>``, reset
        when its hour is over.  The caller holds ``lock``."""
        now = self.clock()
        bucket = self._buckets.get(key)
        limit = USER_RATE_LIMIT if user_id is not None else ANONYMOUS_RATE_LIMIT
        if bucket is None:
            bucket = RateBucket(limit, limit, now + 3600, user_id)
            self._buckets[key] = bucket
        elif now >= bucket.reset_at:
            bucket.remaining, bucket.reset_at = bucket.limit, now + 3600
        return bucket

    def set_rate_limit(
        self, token_or_login: str, remaining: int, reset_at: float | None = None
    ) -> None:
        """Set the primary limit left for a user (GitHub counts per user, so all their tokens)."""
        with self.lock:
            found = self.token_user(token_or_login)
            user = found[1] if found else self.require_user(token_or_login)
            self._set_bucket(f"user:{user.id}", user.id, remaining, reset_at)

    def set_installation_rate_limit(
        self, installation_id: int, remaining: int, reset_at: float | None = None
    ) -> None:
        """Set the primary limit left for an installation: each has its own, whichever
        token of it is used (an app's other installations are not touched)."""
        with self.lock:
            inst = self.apps.installations[installation_id]
            bot = self.apps.apps[inst.app_id].bot_user_id
            self._set_bucket(f"installation:{installation_id}", bot, remaining, reset_at)

    def _set_bucket(
        self, key: str, user_id: int | None, remaining: int, reset_at: float | None
    ) -> None:
        bucket = self.rate_bucket(key, user_id)
        bucket.remaining = remaining
        if reset_at is not None:
            # GitHub announces and applies the reset in whole epoch seconds: announcing
            # int(reset_at) while refusing until a later fraction would refuse a client
            # that waited exactly as told.
            bucket.reset_at = float(int(reset_at))

    def secondary_limit(self, times: int = 1, retry_after: int | None = 60) -> None:
        """Refuse the next ``times`` content-creating requests with a secondary rate limit."""
        with self.lock:
            self._secondary.extend([retry_after] * times)

    def take_secondary_refusal(self) -> tuple[bool, int | None]:
        """(whether this content-creating request is refused, its ``Retry-After``)."""
        with self.lock:
            if not self._secondary:
                return False, None
            return True, self._secondary.pop(0)

    # --- recorded requests --------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self.lock:
            return list(self._requests)

    def clear_requests(self) -> None:
        with self.lock:
            self._requests.clear()

    def record_request(self, rec: RecordedRequest) -> None:
        with self.lock:
            self._requests.append(rec)

    def api_calls(
        self, method: str | None = None, path_prefix: str | None = None
    ) -> list[RecordedRequest]:
        """REST requests only; ``path_prefix`` matches with or without the ``/api/v3`` prefix."""
        out = []
        for rec in self.requests:
            if not rec.is_rest or (method and rec.method != method.upper()):
                continue
            if path_prefix and not (
                rec.rest_path.startswith(path_prefix) or rec.path.startswith(path_prefix)
            ):
                continue
            out.append(rec)
        return out

    # --- webhooks (see webhooks.py) -----------------------------------------------------------

    def deliver_webhook(
        self,
        url: str,
        event: str,
        payload: JSON | bytes,
        *,
        secret: str | None,
        hook_id: int | None = None,
        delivery_id: str | None = None,
        content_type: ContentType = "json",
        target_type: str | None = None,
        target_id: int | None = None,
        timeout: float = 10.0,
    ) -> tuple[int | None, str]:
        """POST a signed webhook like GitHub; returns (HTTP status or None on failure, GUID)."""
        return webhooks.deliver(
            self,
            url,
            event,
            payload,
            secret=secret,
            hook_id=hook_id,
            delivery_id=delivery_id,
            content_type=content_type,
            target_type=target_type,
            target_id=target_id,
            timeout=timeout,
        )

    def redeliver(self, delivery_id: str, *, timeout: float = 10.0) -> int | None:
        """Send a past delivery again: same ``X-GitHub-Delivery`` GUID, same body."""
        return webhooks.redeliver(self, delivery_id, timeout=timeout)

    @property
    def deliveries(self) -> list[Delivery]:
        with self.lock:
            return list(self._deliveries)

    def record_delivery(self, delivery: Delivery) -> None:
        with self.lock:
            self._deliveries.append(delivery)

    def find_delivery(self, guid: str) -> Delivery | None:
        """The latest delivery attempt with this ``X-GitHub-Delivery`` GUID."""
        with self.lock:
            return next((d for d in reversed(self._deliveries) if d.guid == guid), None)

    def add_hook(
        self,
        full_name: str,
        url: str,
        *,
        events: Sequence[str] = ("push",),
        content_type: ContentType = "form",
        secret: str | None = None,
        active: bool = True,
    ) -> int:
        """A repository webhook as ``POST /repos/{o}/{r}/hooks`` makes it (GitHub's defaults:
        the ``push`` event, ``form`` content type, no secret); returns its id."""
        with self.lock:
            repo = self.require_repo(full_name)
            return self._new_hook(repo.id, None, url, events, content_type, secret, active)

    def add_org_hook(
        self,
        org: str,
        url: str,
        *,
        events: Sequence[str] = ("push",),
        content_type: ContentType = "form",
        secret: str | None = None,
        active: bool = True,
    ) -> int:
        """An organisation webhook as ``POST /orgs/{org}/hooks`` makes it (the same defaults
        as a repository's); it hears the events of every repository of the organisation.
        Returns its id, from the same sequence as repository hooks' (GitHub's hook ids are
        one sequence)."""
        with self.lock:
            org_user = self.require_user(org)
            if org_user.id not in self.orgs:
                raise ValueError(f"{org} is not an organisation")
            return self._new_hook(None, org_user.id, url, events, content_type, secret, active)

    def _new_hook(
        self,
        repo_id: int | None,
        org_id: int | None,
        url: str,
        events: Sequence[str],
        content_type: ContentType,
        secret: str | None,
        active: bool,
    ) -> int:
        hook = HookRec(
            id=self.next_id("repo_hook"),
            repo_id=repo_id,
            org_id=org_id,
            url=url,
            content_type=content_type,
            events=list(events),
            secret=secret,
            active=active,
            created_at=self.clock(),
        )
        self.hooks[hook.id] = hook
        return hook.id

    def deliver_to_hook(
        self, hook_id: int, event: str, payload: JSON, *, timeout: float = 10.0
    ) -> tuple[int | None, str]:
        """Send ``payload`` through a repository or organisation webhook: its URL, content
        type and secret (an org hook's deliveries name the organisation as their target)."""
        with self.lock:
            hook = self.hooks[hook_id]
            url, secret, content_type = hook.url, hook.secret, hook.content_type
            target = ("organization", hook.org_id) if hook.org_id is not None else (None, None)
        kind: ContentType = "json" if content_type == "json" else "form"
        return self.deliver_webhook(
            url,
            event,
            payload,
            secret=secret,
            hook_id=hook_id,
            content_type=kind,
            target_type=target[0],
            target_id=target[1],
            timeout=timeout,
        )

    def hook_deliveries(self, hook_id: int) -> list[Delivery]:
        """A hook's deliveries, newest first (its "Recent Deliveries" tab)."""
        with self.lock:
            return [d for d in reversed(self._deliveries) if d.hook_id == hook_id]

    def default_hook_id(self) -> int:
        """The ``X-GitHub-Hook-ID`` of a delivery sent without one: the next hook id, never
        taken, so every such delivery reports the same hook."""
        with self.lock:
            return self._ids["hook"] + 1

    def pull_request_event(
        self,
        full_name: str,
        number: int,
        action: str = "opened",
        *,
        sender_login: str | None = None,
        installation_id: int | None = None,
        changes: JSON | None = None,
    ) -> JSON:
        """A ``pull_request`` payload for the PR as it is now (``changes``: an ``edited``
        delivery's, e.g. what ``retarget_pull_request`` returned)."""
        with self.lock:
            return webhooks.pull_request_payload(
                self,
                full_name,
                number,
                action,
                sender_login=sender_login,
                installation_id=installation_id,
                changes=changes,
            )

    def repository_event(
        self,
        full_name: str,
        action: str,
        changes: JSON,
        *,
        sender_login: str | None = None,
        installation_id: int | None = None,
    ) -> JSON:
        """A ``repository`` payload (``renamed``/``transferred``: pass what ``rename_repo`` or
        ``transfer_repo`` returned); ``repository`` shows the repository as it is now."""
        with self.lock:
            return webhooks.repository_payload(
                self,
                full_name,
                action,
                changes,
                sender_login=sender_login,
                installation_id=installation_id,
            )

    def issue_comment_event(
        self,
        full_name: str,
        number: int,
        body: str,
        commenter_login: str,
        *,
        installation_id: int | None = None,
    ) -> JSON:
        """``commenter_login`` comments on PR ``number``: stores the comment, returns the
        ``issue_comment``/``created`` payload GitHub would send (``issue.pull_request`` set)."""
        with self.lock:
            return webhooks.issue_comment_payload(
                self,
                full_name,
                number,
                body,
                commenter_login,
                installation_id=installation_id,
            )


#: Bot accounts GitHub runs itself, whose logins carry no ``[bot]`` suffix.
_GITHUB_BOTS = frozenset({"Copilot"})


def _identity(user: User | None) -> dict[str, str] | None:
    if user is None:
        return None
    return {"name": user.name or user.login, "email": user.email or objects.noreply_email(user)}
