"""GitHub App mode: the app's JWT, installation tokens shared by every process, and a client
that picks the right installation for each request.

Why not githubkit's ``AppAuthStrategy``/``AppInstallationAuthStrategy``: they cache the JWT
and the installation tokens per process (or in Redis, unencrypted), with no lock across
processes, so N workers would each fetch their own token. Here the JWT is minted with PyJWT
(RS256, ``iat`` 60 s in the past, ``exp`` 9 minutes ahead: GitHub refuses more than 10) and
the installation token lives in the database, encrypted with a key derived from
``UNDERSIGN_SECRET_KEY``; a short lease on its row lets one process at a time ask GitHub for
a new one while the others wait for it. Tokens are opaque: never parsed, never assumed to have
a length (GitHub's 2026 ``ghs_APPID_JWT`` tokens are ~520 characters with dots), never logged.

The installation for a request follows from its path: ``/repos/{owner}/{repo}/...`` is the
installation covering that repository (kept current by the ``installation`` webhooks, else
asked once with ``GET /repos/{o}/{r}/installation``), ``/orgs/{org}/...`` the org's. Pagination
links (``/repositories/{id}/...``) carry no name, so they use the installation of the request
before them on the same thread.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx
import jwt
from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from githubkit.auth.base import BaseAuthStrategy
from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError

from undersign.config import load_private_key
from undersign.db import Database, RowLease
from undersign.github.client import LIMIT_SCOPE, USER_AGENT, GitHubClient, json_object
from undersign.github.errors import (
    AppNotInstalled,
    GitHubError,
    GitHubNotConfigured,
    GitHubRequestError,
    GitHubUnavailable,
    InstallationGone,
    InstallationSuspended,
    NotFound,
)
from undersign.github.models import AppInstallation, AppInstallationRepo, AppInstallationToken

if TYPE_CHECKING:
    from githubkit import GitHubCore

    from undersign.config import Settings

log = logging.getLogger(__name__)

#: GitHub: ``iat`` 60 s in the past against clock drift, ``exp`` at most 10 minutes ahead.
JWT_BACKDATE = 60
JWT_LIFETIME = 540
#: Ask for a new installation token this long before the current one expires (1 hour).
TOKEN_REFRESH_MARGIN = 300
#: How long one process may hold the right to fetch a token; others wait at most this long.
LEASE_SECONDS = 30
#: How long a repository -> installation answer is trusted in memory.
ROUTE_TTL = 600
#: A suspended installation's token is not asked for again before this long has passed since
#: undersign last heard of it (the ``unsuspend`` webhook clears it at once; this is for one
#: that was missed).
SUSPENSION_RECHECK = 3600
#: How long this process trusts having read that an installation is active before reading
#: its row again: the bound on how long a ``suspend`` that another process handled goes
#: unnoticed here, and the price of noticing (one primary-key read per installation per
#: STANDING_TTL, not one per request). A suspension is read again at each request (which
#: then asks GitHub nothing), so an ``unsuspend`` is noticed at once.
STANDING_TTL = 10
Clock = Callable[[], float]
#: The right to ask GitHub for an installation's token, held by one process at a time.
TOKEN_LEASE = RowLease(AppInstallationToken.lease_until, AppInstallationToken.lease_owner)


def issuer_of(app_id: str) -> int | str:
    """GitHub takes the app id as an integer, or the client id (``Iv23...``) as a string."""
    return int(app_id) if app_id.isdigit() else app_id


def app_jwt(issuer: int | str, key: RSAPrivateKey, now: float) -> str:
    """An RS256 JWT as GitHub wants it. Built with PyJWS: ``jwt.encode`` refuses an integer
    ``iss``, which is what GitHub documents for app ids."""
    claims = {"iat": int(now) - JWT_BACKDATE, "exp": int(now) + JWT_LIFETIME, "iss": issuer}
    payload = json.dumps(claims, separators=(",", ":")).encode()
    return jwt.api_jws.PyJWS().encode(payload, key, algorithm="RS256", headers={"typ": "JWT"})


def secret_box(secret_key: str, purpose: bytes) -> Fernet:
    """Encryption at rest with a key derived from UNDERSIGN_SECRET_KEY, one key per
    ``purpose`` (installation tokens, the registered app's secrets)."""
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret_key.encode("utf-8")
    )
    return Fernet(base64.urlsafe_b64encode(derived))


def _fernet(secret_key: str) -> Fernet:
    return secret_box(secret_key, b"undersign installation tokens")


def _parse_expiry(value: object, fallback: float) -> float:
    if isinstance(value, str):
        try:
            return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
        except ValueError:
            pass
    return fallback


def _at(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def says_suspended(status: int, message: str) -> bool:
    """GitHub's refusal of a suspended installation: 403 "This installation has been
    suspended", to its token request or to a token fetched before the suspension."""
    return status == 403 and "suspended" in message.lower()


def any_installation_will_do(path: str) -> bool:
    """Exactly ``/users/{login}``: a public read, which any installation's token may make (the
    path names no account the app is installed on). Not a longer path under it (a user's
    repositories, its installation): what those show depends on the installation asked."""
    parts = path.split("/")
    return len(parts) == 3 and parts[0] == "" and parts[1] == "users" and parts[2] != ""


@dataclass
class _Cached:
    token: str
    expires_at: float


@dataclass(frozen=True)
class Suspension:
    """An installation recorded as suspended: on which account, since when."""

    installation_id: int
    account: str
    since: dt.datetime


@dataclass(frozen=True)
class _Standing:
    """What this process last read of an installation's row: its suspension (None while it
    is active), when undersign last heard of it (wall-clock time) and when this process read
    it (the app's clock)."""

    suspension: Suspension | None
    heard_at: float
    read_at: float

    def refuses(self) -> bool:
        """Suspended, and heard of recently enough not to ask GitHub for a token again."""
        return self.suspension is not None and time.time() - self.heard_at < SUSPENSION_RECHECK

    def trusted(self, now: float) -> bool:
        """Active as read less than STANDING_TTL ago: no need to read the row again."""
        return self.suspension is None and now - self.read_at < STANDING_TTL


class GitHubApp:
    """One GitHub App seen from one process: JWT calls and the shared token cache."""

    def __init__(
        self,
        api_url: str,
        app_id: str,
        private_key: str,
        database: Database,
        secret_key: str,
        *,
        timeout: float = 10.0,
        clock: Clock = time.time,
    ) -> None:
        self.api_url = api_url.rstrip("/")
        self.api_path = httpx.URL(self.api_url + "/").path
        self.issuer = issuer_of(app_id)
        self.database = database
        self.clock = clock
        self._key = load_private_key(private_key)
        self._fernet = _fernet(secret_key)
        self._timeout = timeout
        self._lock = threading.Lock()
        self._tokens: dict[int, _Cached] = {}
        self._routes: dict[str, tuple[int, float]] = {}
        self._standings: dict[int, _Standing] = {}
        self._local = threading.local()
        self._app: dict[str, Any] | None = None
        #: Installation tokens this process asked GitHub for, per installation.
        self.token_requests: Counter[int] = Counter()

    @classmethod
    def from_settings(
        cls, settings: Settings, database: Database, *, clock: Clock = time.time
    ) -> GitHubApp:
        if not (settings.github_app_id and settings.github_app_private_key):
            raise GitHubNotConfigured(
                "GitHub App mode needs UNDERSIGN_GITHUB_APP_ID and _PRIVATE_KEY"
            )
        return cls(
            settings.github_api_url,
            settings.github_app_id,
            settings.github_app_private_key,
            database,
            settings.secret_key or "",
            timeout=float(settings.http_timeout),
            clock=clock,
        )

    # -- calls as the app (JWT) -----------------------------------------------------------

    def jwt(self) -> str:
        return app_jwt(self.issuer, self._key, self.clock())

    def _app_request(
        self, method: str, path: str, headers: dict[str, str] | None = None
    ) -> httpx.Response:
        request_headers = {
            "Authorization": f"Bearer {self.jwt()}",
            "Accept": "application/vnd.github+json",
            "User-Agent": USER_AGENT,
            **(headers or {}),
        }
        try:
            with httpx.Client(timeout=self._timeout, follow_redirects=False) as client:
                response = client.request(method, self.api_url + path, headers=request_headers)
        except httpx.TimeoutException:
            raise GitHubUnavailable("GitHub did not answer in time") from None
        except httpx.HTTPError as exc:
            raise GitHubUnavailable(f"GitHub unreachable: {type(exc).__name__}") from None
        if response.status_code >= 500:
            raise GitHubUnavailable(f"GitHub answered {response.status_code}")
        if response.status_code == 404:
            raise NotFound(f"{path}: Not Found")
        if response.status_code >= 400:
            try:
                message = str(response.json().get("message", ""))
            except ValueError:
                message = response.text[:200]
            raise GitHubRequestError(response.status_code, message)
        return response

    def app_info(self) -> dict[str, Any]:
        """``GET /app`` (asked once per process)."""
        with self._lock:
            if self._app is not None:
                return self._app
        info = json_object(self._app_request("GET", "/app"))
        with self._lock:
            self._app = info
        return info

    def installations(self) -> list[dict[str, Any]]:
        """``GET /app/installations`` (first 100: more than ``undersign doctor`` lists). What
        they say about suspension is noted on the installations undersign has recorded."""
        response = self._app_request("GET", "/app/installations?per_page=100")
        data = response.json()
        listed = [i for i in data if isinstance(i, dict)] if isinstance(data, list) else []
        note_suspensions(self.database, listed)
        return listed

    def hook_config(self) -> dict[str, Any]:
        """``GET /app/hook/config``: the app's webhook URL, content type, whether it has a
        secret (GitHub shows ``********``, never the secret)."""
        return json_object(self._app_request("GET", "/app/hook/config"))

    def last_hook_delivery(self) -> dict[str, Any] | None:
        """The newest delivery of the app's webhook, or None."""
        data = self._app_request("GET", "/app/hook/deliveries?per_page=1").json()
        return data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None

    def bot_login(self) -> str:
        """The account an installation token acts as: ``<slug>[bot]``."""
        return f"{self.app_info().get('slug')}[bot]"

    # -- which installation -----------------------------------------------------------------

    def installation_for_repo(self, full_name: str) -> int:
        name = full_name.lower()
        now = self.clock()
        with self._lock:
            route = self._routes.get(name)
        if route is not None and route[1] > now:
            return route[0]
        owner = name.split("/", 1)[0]
        with self.database.session() as session:
            found = session.scalar(
                select(AppInstallationRepo.installation_id).where(
                    AppInstallationRepo.full_name == name
                )
            )
            if found is None:
                found = session.scalar(
                    select(AppInstallation.id).where(
                        AppInstallation.account_login == owner,
                        AppInstallation.repository_selection == "all",
                    )
                )
        if found is None:
            # Installed before undersign listened, or a lost delivery: ask GitHub once.
            data = json_object(self._app_request("GET", f"/repos/{name}/installation"))
            found = int(data["id"])
            record_installation(self.database, data, [(None, name)])
        with self._lock:
            self._routes[name] = (int(found), now + ROUTE_TTL)
        return int(found)

    def installation_for_account(self, login: str) -> int:
        name = login.lower()

        with self.database.session() as session:
            found = session.scalar(
                select(AppInstallation.id).where(AppInstallation.account_login == name)
            )
        if found is not None:
            return int(found)
        try:
            data = json_object(self._app_request("GET", f"/orgs/{name}/installation"))
        except NotFound:
            data = json_object(self._app_request("GET", f"/users/{name}/installation"))
        record_installation(self.database, data, [])
        return int(data["id"])

    def installation_for_path(self, path: str) -> int:
        """The installation a REST path (without the API prefix) acts through."""
        parts = path.split("/")
        installation: int | None = None
        if len(parts) >= 4 and parts[1] == "repos":
            installation = self.installation_for_repo(f"{parts[2]}/{parts[3]}")
        elif len(parts) >= 3 and parts[1] == "orgs":
            installation = self.installation_for_account(parts[2])
        else:
            installation = getattr(self._local, "last", None)
        if installation is None and any_installation_will_do(path):
            installation = self.any_installation(path)
        if installation is None:
            raise GitHubRequestError(400, f"no installation to call {path} with")
        self._local.last = installation
        return installation

    def any_installation(self, path: str, *, besides: frozenset[int] = frozenset()) -> int:
        """An installation to make a public read with (``GET /users/{login}``: any
        installation's token may read any account), when nothing says which one: one
        undersign knows of, else the first GitHub lists (asked once, then remembered); never a
        suspended one, whose token GitHub refuses. ``besides``: installations found removed or
        suspended on this request, not to be tried again."""
        with self.database.session() as session:
            found = session.scalar(
                select(AppInstallation.id)
                .where(AppInstallation.id.not_in(besides), AppInstallation.suspended_at.is_(None))
                .order_by(AppInstallation.updated_at.desc())
                .limit(1)
            )
        if found is not None:
            return int(found)
        installations = [i for i in self.installations() if int(i["id"]) not in besides]
        listed = [i for i in installations if not i.get("suspended_at")]
        if not listed:
            if installations:  # installed, but every installation is suspended
                raise InstallationSuspended(int(installations[0]["id"]))
            raise AppNotInstalled(path)
        record_installation(self.database, listed[0], [])
        return int(listed[0]["id"])

    def token_for_path(self, path: str) -> tuple[int, str]:
        """The installation a REST path acts through, and its token.

        An installation whose token request GitHub answers 404, and ``GET
        /app/installations/{id}`` too, was removed since undersign recorded it (a missed
        ``installation deleted`` webhook): it is forgotten, so no request asks for its token
        again (one GitHub still shows is kept: ``_confirm_gone``). A public read then goes on
        with another installation, and with none left says the app is installed nowhere
        (``AppNotInstalled``) rather than failing as if GitHub were down; any other path
        raises ``InstallationGone`` (a NotFound: what it covered cannot be seen now). A
        suspended installation (``InstallationSuspended``) is kept, marked, and likewise
        passed over by a public read."""
        installation = self.installation_for_path(path)
        removed: set[int] = set()
        while True:
            try:
                return installation, self.installation_token(installation)
            except (InstallationGone, InstallationSuspended) as exc:
                if isinstance(exc, InstallationGone):
                    self.forget_removed_installation(installation)
                if not any_installation_will_do(path):
                    raise
                removed.add(installation)
                installation = self.any_installation(path, besides=frozenset(removed))
                self._local.last = installation

    def forget_removed_installation(self, installation_id: int) -> None:
        """What the ``installation deleted`` webhook would have done, and this process's
        memory of it: its token, the repositories routed to it, the thread's last one."""
        log.warning("installation %s was removed on GitHub; forgotten", installation_id)
        forget_installation(self.database, installation_id)
        with self._lock:
            self._tokens.pop(installation_id, None)
            self._standings.pop(installation_id, None)
            for name in [n for n, (i, _) in self._routes.items() if i == installation_id]:
                del self._routes[name]
        if getattr(self._local, "last", None) == installation_id:
            self._local.last = None

    def forget_suspended_installation(self, installation_id: int) -> None:
        """GitHub refused a request with the installation's token as suspended: marked so
        (until its ``unsuspend`` webhook), its token dropped, and no longer the thread's."""
        mark_suspended(self.database, installation_id, _at(self.clock()))
        self.forget_token(installation_id)  # and its standing: read again, as marked
        if getattr(self._local, "last", None) == installation_id:
            self._local.last = None

    # -- installation tokens ------------------------------------------------------------------

    def forget_token(self, installation_id: int) -> None:
        """GitHub refused the token (revoked, app reinstalled, suspended): never use it
        again; what this process knew of the installation is read again too."""
        with self._lock:
            self._tokens.pop(installation_id, None)
        self.installation_changed(installation_id)
        with self.database.session() as session:
            session.execute(
                update(AppInstallationToken)
                .where(AppInstallationToken.installation_id == installation_id)
                .values(token_encrypted=None, expires_at=None)
            )

    def installation_changed(self, installation_id: int) -> None:
        """What is recorded of the installation changed (a webhook, GitHub's answer): this
        process reads it again at its next request instead of up to STANDING_TTL later."""
        with self._lock:
            self._standings.pop(installation_id, None)

    def installation_token(self, installation_id: int) -> str:
        """A token for the installation with at least TOKEN_REFRESH_MARGIN left: from memory,
        else from the database, else from GitHub (one process at a time: the lease on the
        installation's token row). A suspended installation raises ``InstallationSuspended``
        without asking GitHub, though this process still holds a token: an active one's row is
        read again every STANDING_TTL seconds, a suspended one's at each request, so a
        ``suspend`` another process recorded is noticed here that soon, an ``unsuspend`` at
        once."""
        now = self.clock()
        with self._lock:  # one acquisition for both: this is every request's path
            cached = self._tokens.get(installation_id)
            standing = self._standings.get(installation_id)
        if standing is None or not standing.trusted(now):
            standing = self._read_standing(installation_id)
        if standing.refuses():
            with self._lock:
                self._tokens.pop(installation_id, None)
            raise InstallationSuspended(installation_id)
        if cached is not None and cached.expires_at - TOKEN_REFRESH_MARGIN > now:
            return cached.token
        deadline = time.monotonic() + LEASE_SECONDS
        while True:
            stored = self._stored(installation_id)
            if stored is not None:
                return stored
            self._ensure_token_row(installation_id)
            with TOKEN_LEASE.holding(
                self.database,
                AppInstallationToken.installation_id == installation_id,
                ttl=dt.timedelta(seconds=LEASE_SECONDS),
                now=_at(self.clock()),
            ) as held:
                if held:
                    return self._stored(installation_id) or self._fetch(installation_id)
            if time.monotonic() > deadline:
                raise GitHubUnavailable("another process is still fetching the app token")
            time.sleep(0.05)

    def _stored(self, installation_id: int) -> str | None:
        with self.database.session() as session:
            row = session.get(AppInstallationToken, installation_id)
            if row is None or row.token_encrypted is None or row.expires_at is None:
                return None
            expires_at = row.expires_at.timestamp()
            encrypted = row.token_encrypted
        if expires_at - TOKEN_REFRESH_MARGIN <= self.clock():
            return None
        try:
            token = self._fernet.decrypt(encrypted.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            return None  # UNDERSIGN_SECRET_KEY changed: fetch a new one
        with self._lock:
            self._tokens[installation_id] = _Cached(token, expires_at)
        return token

    def _ensure_token_row(self, installation_id: int) -> None:
        """The row the token lease is taken on, created in its own transaction."""
        try:
            with self.database.session() as session:
                if session.get(AppInstallationToken, installation_id) is None:
                    session.add(AppInstallationToken(installation_id=installation_id))
        except IntegrityError:
            pass  # another process created the row at the same moment

    def _standing(self, installation_id: int) -> _Standing:
        """What the database says of the installation: active as read at most STANDING_TTL
        seconds ago, or read now."""
        with self._lock:
            standing = self._standings.get(installation_id)
        if standing is not None and standing.trusted(self.clock()):
            return standing
        return self._read_standing(installation_id)

    def _read_standing(self, installation_id: int) -> _Standing:
        """What the database says of the installation now (one primary-key read), kept."""
        now = self.clock()
        with self.database.session() as session:
            row = session.get(AppInstallation, installation_id)
            suspension = None
            heard_at = 0.0
            if row is not None:
                heard_at = row.updated_at.timestamp()  # wall-clock time
                if row.suspended_at is not None:
                    suspension = Suspension(installation_id, row.account_login, row.suspended_at)
        standing = _Standing(suspension, heard_at, now)
        with self._lock:
            self._standings[installation_id] = standing
        return standing

    def suspension(self, installation_id: int) -> Suspension | None:
        """The installation's suspension as recorded, however long ago undersign heard of
        it; None while it is active (as read at most STANDING_TTL seconds ago). GitHub is not
        asked."""
        return self._standing(installation_id).suspension

    def _confirm_gone(self, installation_id: int) -> None:
        """GitHub answered 404 to the installation's token request: returns if it also
        answers 404 to ``GET /app/installations/{id}`` (JWT), so the installation is gone.
        Right after an installation is created GitHub can answer a token request 404 for a
        moment: an installation it still shows (or does not deny) is kept, what GitHub says
        of it recorded, and this attempt fails as one to retry (``GitHubUnavailable``), or as
        suspended."""
        try:
            shown = json_object(self._app_request("GET", f"/app/installations/{installation_id}"))
        except NotFound:
            return
        except GitHubRequestError as exc:  # not a 404: nothing says it is gone
            raise GitHubUnavailable(
                f"GitHub answered 404 to a token request for installation {installation_id} "
                f"and could not confirm it is gone ({exc}): try again"
            ) from None
        record_installation(self.database, {**shown, "id": installation_id}, [])
        self.installation_changed(installation_id)
        if shown.get("suspended_at"):
            raise InstallationSuspended(installation_id)
        log.warning("installation %s: token request answered 404, yet shown", installation_id)
        raise GitHubUnavailable(
            f"GitHub answered 404 to a token request for installation {installation_id}, "
            "which it still shows (just installed?): try again"
        )

    def _fetch(self, installation_id: int) -> str:
        if self._read_standing(installation_id).refuses():
            raise InstallationSuspended(installation_id)
        asked_at = self.clock()
        try:
            response = self._app_request(
                "POST", f"/app/installations/{installation_id}/access_tokens"
            )
        except NotFound:
            self._confirm_gone(installation_id)
            raise InstallationGone(installation_id) from None
        except GitHubRequestError as exc:
            if not says_suspended(exc.status, str(exc)):
                raise
            log.warning("installation %s is suspended on GitHub: no token", installation_id)
            mark_suspended(self.database, installation_id, _at(asked_at))
            self.installation_changed(installation_id)
            raise InstallationSuspended(installation_id) from None
        self.token_requests[installation_id] += 1
        data = json_object(response)
        token = data.get("token")
        if not isinstance(token, str) or not token:
            raise GitHubUnavailable("GitHub answered an installation token request without one")
        # "Installation tokens expire one hour from the time you create them."
        expires_at = _parse_expiry(data.get("expires_at"), asked_at + 3600)
        encrypted = self._fernet.encrypt(token.encode("utf-8")).decode("ascii")
        with self.database.session() as session:
            session.execute(
                update(AppInstallationToken)
                .where(AppInstallationToken.installation_id == installation_id)
                .values(
                    token_encrypted=encrypted,
                    expires_at=_at(expires_at),
                    updated_at=_at(self.clock()),
                )
            )
            # A token was given: unsuspended since (its webhook missed), if it ever was.
            session.execute(
                update(AppInstallation)
                .where(
                    AppInstallation.id == installation_id,
                    AppInstallation.suspended_at.is_not(None),
                )
                .values(suspended_at=None)
            )
        with self._lock:
            self._tokens[installation_id] = _Cached(token, expires_at)
            # Not suspended (any more): GitHub just gave a token.
            self._standings[installation_id] = _Standing(None, time.time(), self.clock())
        log.info("installation %s: new token until %s", installation_id, _at(expires_at))
        return token


# --- the installed repositories, kept by webhooks -------------------------------------------


def _suspended_at(value: object, now: dt.datetime) -> dt.datetime | None:
    """An installation object's ``suspended_at``: ISO 8601 in the REST API, sometimes epoch
    seconds in webhooks (a datetime from a ``suspend`` delivery); anything else set counts as
    suspended now."""
    if value is None or value is False or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if isinstance(value, str):
        try:
            parsed = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return now
        return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)
    return now


def record_installation(
    database: Database,
    installation: dict[str, Any],
    repositories: list[tuple[int | None, str]],
    *,
    replace: bool = False,
) -> None:
    """Remember an installation and (some of) the repositories it covers; whether it is
    suspended when the object says (a ``suspended_at`` key, null when it is not)."""
    installation_id = int(installation["id"])
    account = installation.get("account") if isinstance(installation.get("account"), dict) else {}
    login = str((account or {}).get("login") or "").lower()
    selection = str(installation.get("repository_selection") or "selected")
    try:
        with database.session() as session:
            row = session.get(AppInstallation, installation_id)
            if row is None:
                row = AppInstallation(id=installation_id, account_login=login)
                session.add(row)
            if login:
                row.account_login = login
            row.account_id = (account or {}).get("id") or row.account_id
            row.repository_selection = selection
            row.updated_at = dt.datetime.now(dt.UTC)
            if "suspended_at" in installation:
                row.suspended_at = _suspended_at(installation["suspended_at"], row.updated_at)
            session.flush()
            if replace:
                session.execute(
                    delete(AppInstallationRepo).where(
                        AppInstallationRepo.installation_id == installation_id
                    )
                )
            known = set(
                session.scalars(
                    select(AppInstallationRepo.full_name).where(
                        AppInstallationRepo.installation_id == installation_id
                    )
                )
            )
            for repo_id, full_name in repositories:
                name = full_name.lower()
                if name not in known:
                    known.add(name)
                    session.add(
                        AppInstallationRepo(
                            installation_id=installation_id, repo_id=repo_id, full_name=name
                        )
                    )
    except IntegrityError:
        log.info("installation %s was recorded concurrently", installation_id)


def mark_suspended(database: Database, installation_id: int, at: dt.datetime) -> None:
    """GitHub refused the installation's token as suspended: its token requests wait for
    the ``unsuspend`` webhook (or SUSPENSION_RECHECK)."""
    with database.session() as session:
        row = session.get(AppInstallation, installation_id)
        if row is not None:
            row.suspended_at = row.suspended_at or at
            row.updated_at = dt.datetime.now(dt.UTC)


def note_suspensions(database: Database, installations: list[dict[str, Any]]) -> None:
    """What GitHub's list of installations says about suspension, for the ones recorded
    (the others are recorded when a request first needs them)."""
    now = dt.datetime.now(dt.UTC)
    states = {
        int(i["id"]): _suspended_at(i.get("suspended_at"), now)
        for i in installations
        if isinstance(i.get("id"), int) and "suspended_at" in i
    }
    if not states:
        return
    with database.session() as session:
        for row in session.scalars(select(AppInstallation).where(AppInstallation.id.in_(states))):
            suspended_at = states[row.id]
            if (row.suspended_at is None) != (suspended_at is None):
                row.suspended_at = suspended_at
                row.updated_at = now


def remove_repositories(database: Database, installation_id: int, names: list[str]) -> None:
    with database.session() as session:
        session.execute(
            delete(AppInstallationRepo).where(
                AppInstallationRepo.installation_id == installation_id,
                AppInstallationRepo.full_name.in_([n.lower() for n in names]),
            )
        )


def forget_repository_name(database: Database, full_name: str) -> None:
    """A repository no longer goes by ``full_name`` (renamed or transferred): no installation
    is taken to cover that name any more; the new name is found as any unknown one is."""
    with database.session() as session:
        session.execute(
            delete(AppInstallationRepo).where(AppInstallationRepo.full_name == full_name.lower())
        )


def rename_account(database: Database, previous: str, current: str) -> None:
    """An account an installation is on changed its login: its installation and the
    repositories recorded under the former ``login/`` go by the new one."""
    old, new = previous.lower(), current.lower()
    with database.session() as session:
        session.execute(
            update(AppInstallation)
            .where(AppInstallation.account_login == old)
            .values(account_login=new)
        )
        known = set(
            session.execute(
                select(AppInstallationRepo.installation_id, AppInstallationRepo.full_name).where(
                    AppInstallationRepo.full_name.startswith(f"{new}/")
                )
            ).all()
        )
        rows = session.scalars(
            select(AppInstallationRepo).where(AppInstallationRepo.full_name.startswith(f"{old}/"))
        ).all()
        for row in rows:
            name = f"{new}/{row.full_name.partition('/')[2]}"
            if (row.installation_id, name) in known:  # heard of under the new name already
                session.delete(row)
            else:
                row.full_name = name


def forget_installation(database: Database, installation_id: int) -> None:
    """The app was uninstalled: its repositories, and its token, are gone."""
    with database.session() as session:
        for model, column in (
            (AppInstallationRepo, AppInstallationRepo.installation_id),
            (AppInstallationToken, AppInstallationToken.installation_id),
            (AppInstallation, AppInstallation.id),
        ):
            session.execute(delete(model).where(column == installation_id))


def installed_repositories(database: Database) -> list[str]:
    """Every repository an installation is known to cover (lowercased ``owner/name``)."""
    with database.session() as session:
        return sorted(set(session.scalars(select(AppInstallationRepo.full_name))))


# --- the client ---------------------------------------------------------------------------


def refused_as_suspended(response: httpx.Response) -> bool:
    """A request refused because the installation is suspended (``says_suspended``); the
    body is read for a 403 only."""
    if response.status_code != 403:
        return False
    response.read()
    try:
        message = response.json().get("message", "")
    except (ValueError, AttributeError):
        return False
    return isinstance(message, str) and says_suspended(response.status_code, message)


class InstallationAuth(httpx.Auth):
    """Sets each request's installation token; a 401 drops the token and retries once. A
    403 "suspended" (a token fetched before the installation was suspended) marks the
    installation: a public read retries once with another one, anything else raises
    ``InstallationSuspended``."""

    def __init__(
        self, app: GitHubApp, before_installation: Callable[[str], None] | None = None
    ) -> None:
        self.app = app
        self.before_installation = before_installation

    def _authorize(self, request: httpx.Request, installation: int, token: str) -> None:
        """The installation's token on ``request``, and the primary limit it counts against
        (GitHub counts each installation's apart): ``before_installation`` may refuse it."""
        scope = f"installation:{installation}"
        request.extensions[LIMIT_SCOPE] = scope
        if self.before_installation is not None:
            self.before_installation(scope)
        request.headers["Authorization"] = f"token {token}"

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        path = request.url.path
        if path.startswith(self.app.api_path):
            path = "/" + path[len(self.app.api_path) :]
        installation, token = self.app.token_for_path(path)
        self._authorize(request, installation, token)
        response = yield request
        if refused_as_suspended(response):
            log.warning("installation %s is suspended on GitHub: token refused", installation)
            self.app.forget_suspended_installation(installation)
            if not any_installation_will_do(path):
                raise InstallationSuspended(installation)
            self._authorize(request, *self.app.token_for_path(path))
            yield request
        elif response.status_code == 401:
            self.app.forget_token(installation)
            self._authorize(request, *self.app.token_for_path(path))
            yield request


@dataclass
class InstallationAuthStrategy(BaseAuthStrategy):
    """githubkit's hook for :class:`InstallationAuth`."""

    app: GitHubApp
    before_installation: Callable[[str], None] | None = None

    def get_auth_flow(self, github: GitHubCore) -> httpx.Auth:
        return InstallationAuth(self.app, self.before_installation)


class AppGitHubClient(GitHubClient):
    """The bot's client in app mode: installation tokens, and the Checks API on top.

    Each installation has its own primary limit on GitHub: one that ran out holds back only
    the requests made with its token (``refuse_if_exhausted`` by installation, and
    ``check_scope``: the shared gate of that installation, ``WritePacer.check_gate``)."""

    def __init__(
        self,
        app: GitHubApp,
        *,
        check_scope: Callable[[str], None] | None = None,
        **kwargs: Any,
    ) -> None:
        self.check_scope = check_scope
        strategy = InstallationAuthStrategy(app, self._before_installation)
        super().__init__(app.api_url, "", auth=strategy, **kwargs)
        self.app = app

    def _before_installation(self, scope: str) -> None:
        self.refuse_if_exhausted(scope)
        if self.check_scope is not None:
            self.check_scope(scope)

    def create_check_run(self, owner: str, repo: str, body: dict[str, Any]) -> dict[str, Any]:
        return json_object(self._request("POST", f"/repos/{owner}/{repo}/check-runs", json=body))

    def update_check_run(
        self, owner: str, repo: str, check_run_id: int, body: dict[str, Any]
    ) -> dict[str, Any]:
        return json_object(
            self._request("PATCH", f"/repos/{owner}/{repo}/check-runs/{check_run_id}", json=body)
        )


__all__ = [
    "AppGitHubClient",
    "GitHubApp",
    "GitHubError",
    "app_jwt",
    "forget_installation",
    "forget_repository_name",
    "installed_repositories",
    "load_private_key",
    "mark_suspended",
    "record_installation",
    "remove_repositories",
    "rename_account",
]
