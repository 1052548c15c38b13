"""The GitHub App registered from the setup page (GitHub's App manifest flow), and where its
credentials live.

The setup page posts :func:`manifest` to GitHub; GitHub sends the browser back with a
temporary code, which :func:`convert` exchanges (``POST /app-manifests/{code}/conversions``,
no authentication, once, within an hour) for the app's id, client id and secret, webhook
secret and private key. :func:`store` keeps them in ``app_registrations``, the secrets
encrypted with a key derived from UNDERSIGN_SECRET_KEY (as installation tokens are), and
nothing here logs them.

They take effect without a restart: every runtime (``runtime.build_runtime``: each web
process, each queue worker) holds a :class:`RegistrationWatch`, which reads the registration
when the runtime is built and again, at most every few seconds, when code that needs the
GitHub credentials asks; an app registered (or registered again) since is put in the
settings then (:func:`apply`). An app configured in the environment
(``UNDERSIGN_GITHUB_APP_ID``) always wins: the watch never reads the table then.

Depends on config, db, github.app (the encryption), github.models.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.fernet import InvalidToken
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from undersign.config import Settings, load_private_key
from undersign.db import Database
from undersign.github.app import secret_box
from undersign.github.client import USER_AGENT
from undersign.github.errors import GitHubUnavailable
from undersign.github.models import AppRegistration

log = logging.getLogger(__name__)

PURPOSE = b"undersign app registration"
#: The one row of ``app_registrations``.
ROW_ID = 1
#: How often, at most, a process looks again for an app registered while it runs (seconds):
#: the longest a registration waits to reach every process that needs it.
RECHECK_INTERVAL = 5.0

#: What undersign needs of an installation, and nothing more (docs/github-app.md explains
#: each). ``members: read`` serves the org-membership exemption.
REQUIRED_PERMISSIONS: dict[str, str] = {
    "checks": "write",
    "contents": "read",
    "issues": "write",
    "members": "read",
    "metadata": "read",
    "pull_requests": "read",
    "statuses": "write",
}
REQUIRED_EVENTS: tuple[str, ...] = (
    "check_run",
    "issue_comment",
    "merge_group",
    "pull_request",
    # renamed / transferred: a linked repository keeps its agreement (enforcement.moves).
    "repository",
)
#: GitHub's temporary codes are short and URL-safe; anything else never reaches a URL.
_CODE = re.compile(r"[A-Za-z0-9_-]{1,100}")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9 ._-]{0,33}")
_ORG = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})")


class RegistrationError(Exception):
    """The registration cannot go on; the message says why and what to do."""


@dataclass(frozen=True)
class RegisteredApp:
    """A registered app's credentials, decrypted (never logged, never in a URL)."""

    app_id: int
    slug: str
    client_id: str
    owner_login: str
    html_url: str
    client_secret: str
    webhook_secret: str | None
    private_key: str

    def install_url(self, github_url: str) -> str:
        """Where a person installs the app on an organisation or account."""
        return f"{github_url.rstrip('/')}/apps/{self.slug}/installations/new"

    def __repr__(self) -> str:  # the dataclass repr would print the secrets
        return f"RegisteredApp(app_id={self.app_id}, slug={self.slug!r})"


def check_name(name: str) -> str:
    """A GitHub App name as GitHub takes it (at most 34 characters)."""
    name = name.strip()
    if not _NAME.fullmatch(name):
        raise RegistrationError(
            "The app name must be 1 to 34 letters, digits, spaces, dots, dashes or "
            "underscores, starting with a letter or digit."
        )
    return name


def check_org(org: str) -> str | None:
    """An organisation login, or None (the signed-in person's own account)."""
    org = org.strip()
    if not org:
        return None
    if not _ORG.fullmatch(org):
        raise RegistrationError("That is not a GitHub organisation name.")
    return org


def manifest(settings: Settings, name: str) -> dict[str, Any]:
    """The manifest the setup page posts: this instance's URLs, the permissions and events
    undersign needs, nothing more."""
    base = settings.base_url.rstrip("/")
    return {
        "name": name,
        "url": base,
        "description": "Contributor License Agreements, checked on every pull request.",
        "public": False,
        "hook_attributes": {"url": f"{base}/webhooks/github", "active": True},
        "redirect_url": f"{base}/setup/callback",
        "callback_urls": [settings.callback_url],
        "request_oauth_on_install": False,
        "setup_on_update": False,
        "default_permissions": dict(REQUIRED_PERMISSIONS),
        "default_events": list(REQUIRED_EVENTS),
    }


def new_app_url(settings: Settings, org: str | None) -> str:
    """Where the manifest is posted: the person's own settings, or an organisation's."""
    github = settings.github_url.rstrip("/")
    if org:
        return f"{github}/organizations/{org}/settings/apps/new"
    return f"{github}/settings/apps/new"


def convert(settings: Settings, code: str) -> dict[str, Any]:
    """Exchange the temporary code for the app's credentials (GitHub's 201 body)."""
    if not _CODE.fullmatch(code):
        raise RegistrationError("GitHub sent back no usable code. Start the registration again.")
    url = f"{settings.github_api_url.rstrip('/')}/app-manifests/{code}/conversions"
    headers = {"Accept": "application/vnd.github+json", "User-Agent": USER_AGENT}
    try:
        with httpx.Client(timeout=float(settings.http_timeout), follow_redirects=False) as http:
            response = http.post(url, headers=headers)
    except httpx.HTTPError as exc:
        raise GitHubUnavailable(f"GitHub unreachable: {type(exc).__name__}") from None
    if response.status_code >= 500:
        raise GitHubUnavailable(f"GitHub answered {response.status_code}")
    if response.status_code == 404:
        raise RegistrationError(
            "GitHub does not know this code: it was used already or is more than an hour "
            "old. Start the registration again."
        )
    if response.status_code != 201:
        raise RegistrationError(f"GitHub refused the registration ({response.status_code}).")
    try:
        data = response.json()
    except ValueError:
        raise GitHubUnavailable("GitHub's answer was not JSON") from None
    if not isinstance(data, dict):
        raise GitHubUnavailable("GitHub's answer was not a JSON object")
    for key in ("slug", "client_id", "client_secret", "pem"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise GitHubUnavailable(f"GitHub's answer has no {key}")
    if not isinstance(data.get("id"), int):
        raise GitHubUnavailable("GitHub's answer has no app id")
    try:
        load_private_key(data["pem"])
    except ValueError as exc:
        raise GitHubUnavailable(f"GitHub's private key does not load: {exc}") from None
    return data


def store(
    database: Database, secret_key: str, data: dict[str, Any], registered_by: int | None
) -> RegisteredApp:
    """Keep the conversion's answer (replacing an earlier registration), secrets encrypted."""
    box = secret_box(secret_key, PURPOSE)

    def seal(value: str) -> str:
        return box.encrypt(value.encode("utf-8")).decode("ascii")

    owner = data.get("owner") if isinstance(data.get("owner"), dict) else {}
    webhook_secret = data.get("webhook_secret") or None
    app = RegisteredApp(
        app_id=int(data["id"]),
        slug=str(data["slug"]),
        client_id=str(data["client_id"]),
        owner_login=str((owner or {}).get("login") or ""),
        html_url=str(data.get("html_url") or ""),
        client_secret=str(data["client_secret"]),
        webhook_secret=str(webhook_secret) if webhook_secret else None,
        private_key=str(data["pem"]),
    )
    with database.session() as session:
        row = session.get(AppRegistration, ROW_ID)
        if row is None:
            row = AppRegistration(id=ROW_ID)
            session.add(row)
        row.app_id = app.app_id
        row.slug = app.slug
        row.client_id = app.client_id
        row.owner_login = app.owner_login
        row.html_url = app.html_url
        row.client_secret_encrypted = seal(app.client_secret)
        row.webhook_secret_encrypted = seal(app.webhook_secret) if app.webhook_secret else None
        row.private_key_encrypted = seal(app.private_key)
        row.registered_by = registered_by
    log.info("GitHub App %s (id %s) registered from the setup page", app.slug, app.app_id)
    return app


def exists(database: Database) -> bool:
    """Whether an app was registered here (whether or not its secrets still decrypt)."""
    return registered_app_id(database) is not None


def registered_app_id(database: Database) -> int | None:
    """The registered app's id, or None: one small read, nothing decrypted."""
    with database.session() as session:
        return session.scalar(select(AppRegistration.app_id).where(AppRegistration.id == ROW_ID))


def load(database: Database, secret_key: str) -> RegisteredApp | None:
    """The registered app, or None; RegistrationError when UNDERSIGN_SECRET_KEY changed since
    (the secrets no longer decrypt)."""
    with database.session() as session:
        row = session.scalar(select(AppRegistration).where(AppRegistration.id == ROW_ID))
        if row is None:
            return None
        session.expunge(row)
    box = secret_box(secret_key, PURPOSE)

    def unseal(value: str) -> str:
        return box.decrypt(value.encode("ascii")).decode("utf-8")

    try:
        return RegisteredApp(
            app_id=row.app_id,
            slug=row.slug,
            client_id=row.client_id,
            owner_login=row.owner_login,
            html_url=row.html_url,
            client_secret=unseal(row.client_secret_encrypted),
            webhook_secret=(
                unseal(row.webhook_secret_encrypted) if row.webhook_secret_encrypted else None
            ),
            private_key=unseal(row.private_key_encrypted),
        )
    except (InvalidToken, ValueError):
        raise RegistrationError(
            "the registered GitHub App's secrets do not decrypt: UNDERSIGN_SECRET_KEY changed "
            "since it was registered; register it again from /setup/"
        ) from None


def forget(database: Database) -> None:
    """Drop the registration (the demo's emulator forgets its apps on every start)."""
    with database.session() as session:
        row = session.get(AppRegistration, ROW_ID)
        if row is not None:
            session.delete(row)


def apply(settings: Settings, app: RegisteredApp) -> Settings:
    """``settings`` acting as ``app``: App mode, the app's sign-in client, its webhook secret
    (the configured one stays accepted as the previous secret)."""
    if not app.webhook_secret:
        hook_secrets = {"webhook_secret": settings.webhook_secret}
    else:
        # The configured secret is what repository hooks made in token mode still sign with.
        kept = settings.webhook_secret or settings.webhook_secret_previous
        hook_secrets = {"webhook_secret": app.webhook_secret, "webhook_secret_previous": kept}
    return settings.replace(
        github_app_id=str(app.app_id),
        github_app_private_key=app.private_key,
        github_client_id=app.client_id,
        github_client_secret=app.client_secret,
        **hook_secrets,
    )


def with_registered_app(settings: Settings, database: Database) -> Settings:
    """The settings a runtime starts with: the registered app's credentials when the
    environment configures no app itself. A database without the table yet (before
    ``undersign db upgrade``) or a changed secret key leave the settings as they are."""
    return RegistrationWatch(settings, database).settings


class RegistrationWatch:
    """The settings one process runs with, following the app registered from the setup page
    while the process runs, so that registering takes effect without a restart.

    It reads the registration once when made, then again only when :meth:`check` is called
    (by code about to use the GitHub credentials: a sign-in, a job, a webhook whose signature
    did not match) and ``interval`` seconds have passed since the last read: a process costs
    the database at most one small read per interval, and nothing on the paths that do not
    ask (a webhook whose signature matches). An app registered, registered again (a new app
    id) or forgotten since the last read replaces :attr:`settings`, built from the
    environment's (``configured``) with :func:`apply`, so the environment's precedence stays
    what it is at start-up: an app it names (``UNDERSIGN_GITHUB_APP_ID``) always wins, and
    the watch then never reads. Safe to share between threads: one of them reads at a time.
    """

    def __init__(
        self,
        configured: Settings,
        database: Database,
        *,
        interval: float = RECHECK_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.configured = configured
        self.database = database
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        #: The registered app the settings act as (None: the environment's credentials).
        self._app_id: int | None = None
        #: A registration whose secrets did not decrypt (logged once, not read again).
        self._unreadable: int | None = None
        self._due = 0.0
        self.settings = configured
        self.check(now=True)

    @property
    def follows_registration(self) -> bool:
        """Whether a registration can change the settings (the environment names no app)."""
        return not self.configured.app_mode

    def check(self, *, now: bool = False) -> bool:
        """Read the registration again if ``interval`` has passed (at once with ``now``);
        True when :attr:`settings` changed."""
        if not self.follows_registration or (not now and self._clock() < self._due):
            return False
        with self._lock:
            if not now and self._clock() < self._due:
                return False  # another thread read it while this one waited
            self._due = self._clock() + self.interval
            return self._read()

    def _read(self) -> bool:
        try:
            app_id = registered_app_id(self.database)
            if app_id == self._app_id or (app_id is not None and app_id == self._unreadable):
                return False
            app = load(self.database, self.configured.secret_key or "")
        except SQLAlchemyError:
            # Not migrated yet (serve refuses to start then anyway), or the database is down:
            # the settings stay as they are until a later read.
            log.debug("the registered GitHub App could not be read", exc_info=True)
            return False
        except RegistrationError as exc:
            log.warning("%s", exc)
            self._unreadable = app_id
            return False
        self._unreadable = None
        if app is None:
            if self._app_id is None:
                return False
            log.info("no GitHub App is registered any more: acting as the environment says")
            self._app_id, self.settings = None, self.configured
            return True
        log.info(
            "acting as the GitHub App %s (id %s) registered from the setup page",
            app.slug,
            app.app_id,
        )
        self._app_id, self.settings = app.app_id, apply(self.configured, app)
        return True
