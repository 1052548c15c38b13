"""Helpers of the fault suite: waiting on conditions, reading what GitHub (the emulator) saw,
a throwaway PostgreSQL server, and ``undersign worker`` as a real process.

Every wait has a deadline and polls a condition; nothing sleeps a fixed time to "let things
happen", so a slow machine makes the suite slower, never flaky.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import create_engine, text
from tests.conftest import BOT_LOGIN, CLAService

from undersign.db import Base
from undersign.migrations import load_models

REPO = "octo-org/widgets"
CONTEXT = "license/cla"
UNDERSIGN = str(Path(sys.executable).parent / "undersign")
PG_BIN = Path("/usr/lib/postgresql/15/bin")


def wait_until(predicate: Callable[[], object], timeout: float = 20.0, what: str = "it") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- what GitHub saw ------------------------------------------------------------------------


def open_pr(cla: CLAService, login: str, n_commits: int = 1, **kw: Any) -> dict[str, Any]:
    pr: dict[str, Any] = cla.state.add_pull_request(
        REPO, user_login=login, n_commits=n_commits, **kw
    )
    return pr


def head(cla: CLAService, number: int) -> str:
    return str(cla.state.pull_request(REPO, number)["head"]["sha"])


def event(cla: CLAService, number: int, action: str = "opened") -> dict[str, Any]:
    """The ``pull_request`` payload for the pull request as it is now."""
    return cla.state.pull_request_event(REPO, number, action)


def our_statuses(cla: CLAService, sha: str) -> list[dict[str, Any]]:
    """Every status undersign set on ``sha``, newest first (the emulator keeps them all)."""
    return [
        s
        for s in cla.state.statuses(REPO, sha)
        if str(s["context"]).lower() == CONTEXT and s["creator"]["login"] == BOT_LOGIN
    ]


def our_comments(cla: CLAService, number: int) -> list[dict[str, Any]]:
    return [c for c in cla.state.comments(REPO, number) if c["user"]["login"] == BOT_LOGIN]


def status_posts(cla: CLAService, sha: str | None = None) -> list[Any]:
    """Status POSTs the emulator answered (any outcome), oldest first."""
    path = f"/repos/{REPO}/statuses/{sha or ''}"
    return list(cla.state.api_calls("POST", path))


def fault_taken(cla: CLAService) -> bool:
    """True once every injected fault was used: a request hit it and, when it has a delay, is
    being held right now. (The emulator drops a fault when its last use starts.)"""
    state = cla.state
    with state.lock:
        return not state._faults


def assert_final_verdict(
    cla: CLAService, number: int, state: str, *, comments: int = 1, max_statuses: int = 1
) -> str:
    """The pull request's *current* head carries ``state``, every status undersign ever set on
    it says the same (nothing regressed), there is exactly ``comments`` comment, and every
    job row is done. Returns the head."""
    sha = head(cla, number)
    statuses = our_statuses(cla, sha)
    assert statuses, f"no status on the current head {sha[:7]}"
    assert [s["state"] for s in statuses] == [state] * len(statuses), statuses
    assert len(statuses) <= max_statuses, f"{len(statuses)} statuses on {sha[:7]}"
    assert len(our_comments(cla, number)) == comments
    rows = [(j.id, j.status, j.last_error) for j in cla.jobs()]
    assert rows and all(status == "done" for _, status, _ in rows), rows
    return sha


# --- a PostgreSQL server of our own ---------------------------------------------------------


class ThrowawayPostgres:
    """A PostgreSQL 15 cluster in a temporary folder, on a free port, that tests may stop and
    start at will (never the shared server on 5432). initdb refuses to run as root, so as root
    the server runs as the ``postgres`` system user."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="undersign-pg-"))
        self.data = self.dir / "data"
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._as_user: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.dir, "postgres", "postgres")
            self._as_user = ["setpriv", "--reuid=postgres", "--regid=postgres", "--clear-groups"]
        subprocess.run(
            [
                *self._as_user,
                str(PG_BIN / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-A",
                "trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        assert self.process is None, "already running"
        log = open(self.dir / "postgres.log", "ab")  # noqa: SIM115 - the server keeps it
        self.process = subprocess.Popen(
            [
                *self._as_user,
                str(PG_BIN / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.dir),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                "fsync=off",
                "-c",
                "full_page_writes=off",
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        wait_until(self._accepts, 30, "the throwaway PostgreSQL to accept connections")

    def _accepts(self) -> bool:
        assert self.process is not None
        if self.process.poll() is not None:
            raise AssertionError((self.dir / "postgres.log").read_text()[-2000:])
        result = subprocess.run(
            [str(PG_BIN / "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port), "-q"],
            check=False,
            timeout=10,
        )
        return result.returncode == 0

    def stop(self) -> None:
        """Fast shutdown (SIGINT): clients are disconnected, the port closes."""
        if self.process is None:
            return
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None

    def create_tables(self) -> None:
        load_models()
        engine = create_engine(self.url)
        with engine.begin() as connection:
            connection.execute(text("SELECT 1"))
        Base.metadata.create_all(engine)
        engine.dispose()

    def destroy(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


# --- ``undersign worker`` as an operator runs it ------------------------------------------------


class WorkerProcess:
    """``undersign worker`` in its own process, so a test can SIGKILL it mid-job."""

    def __init__(self, env: dict[str, str], log_path: Path) -> None:
        self.log_path = log_path
        with open(log_path, "ab") as log:
            self.process = subprocess.Popen(
                [UNDERSIGN, "worker", "--workers", "1"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def kill(self) -> None:
        """SIGKILL: no cleanup, no ``finally``, the job row stays ``running``."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM: Huey's immediate shutdown (the test has read what it needs)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def worker_env(cla: CLAService, tmp_path: Path, **extra: str) -> dict[str, str]:
    """The environment of a worker sharing the live app's database and queue file."""
    settings = cla.settings
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERSIGN_")}
    env.update(
        UNDERSIGN_ENV="test",
        UNDERSIGN_INSTANCE_PATH=settings.instance_path,
        UNDERSIGN_BASE_URL=settings.base_url,
        UNDERSIGN_DATABASE_URL=cla.database.url,
        UNDERSIGN_GITHUB_URL=settings.github_url,
        UNDERSIGN_GITHUB_API_URL=settings.github_api_url,
        UNDERSIGN_GITHUB_TOKEN=settings.github_token or "",
        UNDERSIGN_WEBHOOK_SECRET=settings.webhook_secret or "",
        UNDERSIGN_HTTP_TIMEOUT=str(settings.http_timeout),
        UNDERSIGN_JOB_LEASE=str(settings.job_lease),
        UNDERSIGN_JOB_RETRY_BASE_MS=str(settings.job_retry_base_ms),
        UNDERSIGN_JOB_MAX_ATTEMPTS=str(settings.job_max_attempts),
        UNDERSIGN_LOG_LEVEL="INFO",
        UNDERSIGN_RECONCILE_INTERVAL="0",
        **extra,
    )
    return env
