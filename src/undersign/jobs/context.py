"""What a job needs, built without Flask: settings, the database, the GitHub client.

Workers (``undersign worker``, the embedded consumer) build one ``JobContext`` per process,
lazily, so importing the job modules never connects anywhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

from undersign.config import Settings
from undersign.db import Database
from undersign.github.client import GitHubClient
from undersign.jobs.pacing import WritePacer, token_key


@dataclass
class JobContext:
    settings: Settings
    database: Database
    _github: GitHubClient | None = None
    _pacer: WritePacer | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _local: threading.local = field(default_factory=threading.local)

    def set_heartbeat(self, beat: Callable[[], None] | None) -> None:
        """What this thread's job calls while it waits (pacing), to extend its lease."""
        self._local.beat = beat

    @classmethod
    def from_settings(cls, settings: Settings, database: Database | None = None) -> JobContext:
        return cls(settings=settings, database=database or Database(settings.database_url or ""))

    @property
    def token(self) -> str:
        if not self.settings.github_token:
            raise RuntimeError("UNDERSIGN_GITHUB_TOKEN is not set: the bot cannot talk to GitHub")
        return self.settings.github_token

    @property
    def token_key(self) -> str:
        return token_key(self.token)

    @property
    def pacer(self) -> WritePacer:
        with self._lock:
            if self._pacer is None:
                self._pacer = WritePacer(
                    self.database,
                    self.token_key,
                    per_minute=self.settings.github_writes_per_minute,
                    per_hour=self.settings.github_writes_per_hour,
                    on_wait=self._beat,
                )
            return self._pacer

    def _beat(self) -> None:
        beat = getattr(self._local, "beat", None)
        if beat is not None:
            beat()

    @property
    def github(self) -> GitHubClient:
        pacer = self.pacer
        with self._lock:
            if self._github is None:
                self._github = GitHubClient(
                    self.settings.github_api_url,
                    self.token,
                    timeout=float(self.settings.http_timeout),
                    before_request=pacer.before_request,
                )
            return self._github
