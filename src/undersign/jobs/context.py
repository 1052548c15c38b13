"""What a job needs, built without Flask: settings, the database, the GitHub client, and
the handlers the queue runs (``JobHandlers``, filled by the layers above).

The runtime's queue builds one ``JobContext`` per process, lazily, so importing the job
modules never connects anywhere. Depends on config, db, github (client, app, pacing),
observability.metrics.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from undersign.config import Settings
from undersign.db import Database
from undersign.github.app import AppGitHubClient, GitHubApp
from undersign.github.client import GitHubClient
from undersign.github.errors import GitHubNotConfigured
from undersign.github.pacing import WritePacer, token_key
from undersign.jobs.handlers import JobHandlers
from undersign.observability.metrics import GitHubObserver


@dataclass
class JobContext:
    settings: Settings
    database: Database
    _github: GitHubClient | None = None
    _pacer: WritePacer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)
    _app: GitHubApp | None = None
    #: The clock app JWTs and token expiry are judged by (tests move it).
    app_clock: Callable[[], float] = time.time
    #: What the queue runs for each job kind (empty: a context for direct calls only).
    handlers: JobHandlers = field(default_factory=JobHandlers)

    def set_heartbeat(self, beat: Callable[[], None] | None) -> None:
        """What this thread's job calls while it waits (pacing), to extend its lease."""
        self._local.beat = beat

    def heartbeat(self) -> Callable[[], None] | None:
        """This thread's current heartbeat, so a caller can add to it and put it back."""
        beat: Callable[[], None] | None = getattr(self._local, "beat", None)
        return beat

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        database: Database | None = None,
        handlers: JobHandlers | None = None,
    ) -> JobContext:
        return cls(
            settings=settings,
            database=database or Database(settings.database_url or ""),
            handlers=handlers or JobHandlers(),
        )

    @property
    def token(self) -> str:
        if not self.settings.github_token:
            raise GitHubNotConfigured(
                "UNDERSIGN_GITHUB_TOKEN is not set: the bot cannot talk to GitHub"
            )
        return self.settings.github_token

    @property
    def token_key(self) -> str:
        if self.settings.app_mode:  # one pacing gate for the app, across its installations
            return token_key(f"github-app:{self.settings.github_app_id}")
        return token_key(self.token)

    @property
    def app(self) -> GitHubApp:
        """GitHub App mode: the app (JWT calls, installation tokens shared via the database)."""
        with self._lock:
            if self._app is None:
                self._app = GitHubApp.from_settings(
                    self.settings, self.database, clock=self.app_clock
                )
            return self._app

    @property
    def pacer(self) -> WritePacer:
        with self._lock:
            return self._made_pacer()

    def _made_pacer(self) -> WritePacer:
        """The pacer, made on first use (the caller holds the lock)."""
        if self._pacer is None:
            self._pacer = WritePacer(
                self.database,
                self.token_key,
                per_minute=self.settings.github_writes_per_minute,
                per_hour=self.settings.github_writes_per_hour,
                on_wait=self._beat,
            )
        return self._pacer

    def adopt(self, settings: Settings) -> None:
        """Run with ``settings`` from now on (the credentials of an app registered from the
        setup page since): the GitHub client, the app and the pacer are made again from them
        on next use. A job already holding the old client finishes with it."""
        with self._lock:
            self.settings = settings
            self._github = self._app = self._pacer = None

    def _beat(self) -> None:
        beat = getattr(self._local, "beat", None)
        if beat is not None:
            beat()

    @property
    def github(self) -> GitHubClient:
        with self._lock:
            if self._github is None:
                pacer = self._made_pacer()
                observer = GitHubObserver(self.database, self.token_key)
                if self.settings.app_mode:
                    if self._app is None:
                        self._app = GitHubApp.from_settings(
                            self.settings, self.database, clock=self.app_clock
                        )
                    self._github = AppGitHubClient(
                        self._app,
                        check_scope=pacer.check_gate,
                        timeout=float(self.settings.http_timeout),
                        before_request=pacer.before_request,
                        observer=observer,
                        secondary_wait=float(self.settings.github_secondary_wait),
                    )
                else:
                    self._github = GitHubClient(
                        self.settings.github_api_url,
                        self.token,
                        timeout=float(self.settings.http_timeout),
                        before_request=pacer.before_request,
                        observer=observer,
                        secondary_wait=float(self.settings.github_secondary_wait),
                    )
                observer.rate_limit = self._github.rate_limit
            return self._github
