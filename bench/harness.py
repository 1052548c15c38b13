"""What every benchmark stands on: a GitHub emulator in this process, a database and a queue in
a temporary folder, and ``undersign serve`` / ``undersign worker`` as real subprocesses.

Everything binds to 127.0.0.1; every wait has a deadline; ``Stack.close`` stops what it
started (by process id) and removes what it created (the folder, the PostgreSQL schema).
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import create_engine, func, select, text

from undersign.config import Settings, load_settings
from undersign.db import Database
from undersign.emulator import EmulatorServer, GitHubEmulator

REPO_ROOT = Path(__file__).resolve().parent.parent
UNDERSIGN = str(Path(sys.executable).parent / "undersign")
WEBHOOK_SECRET = "bench-webhook-secret-0123456789"
SECRET_KEY = "bench-secret-key-not-for-production-0123456789abcdef"
BOT_LOGIN = "undersign-bot"
ORG = "bench-org"
SLUG = "individual-cla"
HOOK_ID = "480000001"
REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_env(name: str) -> dict[str, str]:
    """The queue on the shared Redis, under a name of this run's own (``Stack.close`` flushes
    it): the PostgreSQL + Redis deployment of ``docs/deploy.md``."""
    return {
        "UNDERSIGN_QUEUE_URL": REDIS_URL,
        "UNDERSIGN_QUEUE_NAME": f"bench-{name}-{uuid.uuid4().hex[:12]}",
    }


class BenchError(RuntimeError):
    """A benchmark could not run as planned (a process died, a deadline passed)."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(
    predicate: Callable[[], bool], timeout: float, what: str, poll: float = 0.02
) -> float:
    """Poll until ``predicate()``; returns the seconds waited; raises ``BenchError`` after
    ``timeout``."""
    started = time.monotonic()
    deadline = started + timeout
    while True:
        if predicate():
            return time.monotonic() - started
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(poll)


# --- processes ---------------------------------------------------------------------------------


@dataclass
class Proc:
    """A subprocess in its own session, its output in a log file."""

    name: str
    popen: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(cls, name: str, cmd: Sequence[str], env: dict[str, str], log_dir: Path) -> Proc:
        log_path = log_dir / f"{name}.log"
        with log_path.open("ab") as log:
            popen = subprocess.Popen(
                list(cmd),
                env=env,
                cwd=str(REPO_ROOT),
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return cls(name, popen, log_path)

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def check(self) -> None:
        if not self.alive():
            raise BenchError(f"{self.name} exited with {self.popen.returncode}:\n{self.log_tail()}")

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM (gunicorn and Huey shut down gracefully), then SIGKILL of the process group
        this object started, if it is still there after ``timeout``."""
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(5)
        # Children (gunicorn workers) left behind by a killed master: same group, ours.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.popen.pid, signal.SIGKILL)


def wait_http(url: str, proc: Proc, timeout: float = 30.0) -> None:
    def up() -> bool:
        proc.check()
        try:
            return httpx.get(url, timeout=1.0).status_code < 500
        except httpx.HTTPError:
            return False

    wait_until(up, timeout, f"{proc.name} to answer on {url}", poll=0.1)


def wait_log(proc: Proc, pattern: str, timeout: float = 30.0) -> None:
    regex = re.compile(pattern)

    def seen() -> bool:
        proc.check()
        try:
            return bool(regex.search(proc.log_path.read_text(errors="replace")))
        except OSError:
            return False

    wait_until(seen, timeout, f"{proc.name} to log {pattern!r}", poll=0.1)


_BULK_SQLITE = """
WITH RECURSIVE seq(i) AS (SELECT :first UNION ALL SELECT i + 1 FROM seq WHERE i < :first + :n - 1)
INSERT INTO signatures
    (version_id, github_id, login, name, email, field_values, text_sha256, signed_at)
SELECT :v, i, 'person' || i, 'Person ' || i, 'person' || i || '@example.com', '{}', :sha,
    strftime('%Y-%m-%d %H:%M:%f', 'now')
FROM seq
"""
_BULK_POSTGRESQL = """
INSERT INTO signatures
    (version_id, github_id, login, name, email, field_values, text_sha256, signed_at)
SELECT :v, i, 'person' || i, 'Person ' || i, 'person' || i || '@example.com', '{}'::json, :sha,
    now()
FROM generate_series(CAST(:first AS bigint), :first + :n - 1) AS i
"""


# --- the stack -------------------------------------------------------------------------------


@dataclass
class Stack:
    """One undersign installation: emulator, database, queue, and its processes."""

    root: Path
    emulator: EmulatorServer
    db_url: str
    env: dict[str, str]
    port: int
    database: Database
    bot_token: str
    procs: dict[str, Proc] = field(default_factory=dict)
    _pg_admin_url: str | None = None
    _pg_schema: str | None = None
    _owns_root: bool = True

    # Building.

    @classmethod
    def create(
        cls,
        name: str = "stack",
        *,
        db: str = "sqlite",
        extra_env: dict[str, str] | None = None,
        root: Path | None = None,
    ) -> Stack:
        owns_root = root is None
        root = Path(tempfile.mkdtemp(prefix=f"undersign-bench-{name}-")) if root is None else root
        root.mkdir(parents=True, exist_ok=True)
        emulator = EmulatorServer(GitHubEmulator(), host="127.0.0.1", port=0).start()
        state = emulator.state
        state.add_user(BOT_LOGIN, name="undersign", email="bot@undersign.invalid")
        state.add_org(ORG)
        bot_token = state.issue_token(BOT_LOGIN)
        pg_admin, schema = None, None
        if db == "sqlite":
            db_url = f"sqlite:///{root / 'undersign.sqlite3'}"
        else:
            pg_admin, schema = db, f"bench_{uuid.uuid4().hex[:12]}"
            admin = create_engine(db)
            with admin.begin() as connection:
                connection.execute(text(f'CREATE SCHEMA "{schema}"'))
            admin.dispose()
            separator = "&" if "?" in db else "?"
            db_url = f"{db}{separator}options=-csearch_path%3D{schema}"
        port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERSIGN_")}
        env.update(
            UNDERSIGN_ENV="production",
            UNDERSIGN_BASE_URL=f"http://127.0.0.1:{port}",
            UNDERSIGN_SECRET_KEY=SECRET_KEY,
            UNDERSIGN_INSTANCE_PATH=str(root / "instance"),
            UNDERSIGN_DATABASE_URL=db_url,
            UNDERSIGN_GITHUB_URL=emulator.url,
            UNDERSIGN_GITHUB_API_URL=emulator.api_url,
            UNDERSIGN_GITHUB_CLIENT_ID="Ov23liBench0001",
            UNDERSIGN_GITHUB_CLIENT_SECRET="bench-client-secret-0123456789",
            UNDERSIGN_GITHUB_TOKEN=bot_token,
            UNDERSIGN_WEBHOOK_SECRET=WEBHOOK_SECRET,
            UNDERSIGN_METRICS_TOKEN="bench-metrics-token-0123456789",
            UNDERSIGN_LOG_LEVEL="WARNING",
        )
        env.update(extra_env or {})
        stack = cls(
            root=root,
            emulator=emulator,
            db_url=db_url,
            env=env,
            port=port,
            database=Database(db_url),
            bot_token=bot_token,
            _pg_admin_url=pg_admin,
            _pg_schema=schema,
            _owns_root=owns_root,
        )
        try:
            stack.build_schema()
        except BaseException:
            stack.close()
            raise
        return stack

    def build_schema(self) -> None:
        """``undersign db upgrade``, as an operator runs it. ``BENCH_SCHEMA=models`` builds the
        tables from the models instead and stamps the head revision: only for a working tree
        whose models are ahead of its migration (the migration is regenerated before a commit).
        """
        if os.environ.get("BENCH_SCHEMA") != "models":
            self.run_cli("db", "upgrade")
            return
        from alembic import command

        from undersign.db import Base
        from undersign.migrations import alembic_config, load_models

        load_models()
        Base.metadata.create_all(self.database.engine)
        command.stamp(alembic_config(self.db_url), "head")

    @property
    def state(self) -> GitHubEmulator:
        return self.emulator.state

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def hook_url(self) -> str:
        return f"{self.url}/webhooks/github"

    def settings(self) -> Settings:
        return load_settings(self.env)

    def run_cli(self, *args: str, timeout: float = 120.0) -> str:
        result = subprocess.run(
            [UNDERSIGN, *args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise BenchError(f"undersign {' '.join(args)} failed:\n{result.stderr[-2000:]}")
        return result.stdout

    # Seeding (the database directly, through undersign's services).

    def seed_agreement(self, repos: Iterable[str]) -> None:
        """The agreement, covering the bench organisation; the repositories on the emulator
        with the bot as a writer."""
        from undersign.agreements.service import AgreementService

        for repo in repos:
            self.state.add_repo(repo)
            self.state.add_collaborator(repo, BOT_LOGIN, "write")
        with self.database.session() as session:
            agreements = AgreementService(session)
            agreements.add_or_update(SLUG, "Individual CLA", "You agree to license it.")
            agreements.link_org(ORG, SLUG)

    def add_people(self, logins: Iterable[str]) -> None:
        for login in logins:
            self.state.add_user(login, name=login.title(), email=f"{login}@example.com")

    def sign(self, login: str, *, notify: bool = True) -> None:
        """``login`` signs, with the hook the signing view uses (re-evaluations queued)."""
        from undersign.agreements.service import AgreementService, SignatureService
        from undersign.runtime import build_runtime

        user = self.state.user(login)
        runtime = build_runtime(self.settings(), self.database)
        with self.database.session() as session:
            version = AgreementService(session).current_version(SLUG)
            hook = runtime.signature_hook(session) if notify else None
            SignatureService(session, on_change=hook).sign(
                SLUG,
                github_id=int(user["id"]),
                login=login,
                name=login.title(),
                email=f"{login}@example.com",
                version_sha256=version.text_sha256,
                agreed=True,
            )
        runtime.close()

    def bulk_signatures(self, count: int, first_id: int = 900_000_000) -> float:
        """Add ``count`` signatures of made-up people in one statement; returns seconds.

        SQLite: INSERT ... SELECT from a recursive CTE; PostgreSQL: from generate_series.
        Both run inside the database, so a million rows take seconds, not minutes.
        """
        from undersign.agreements.service import AgreementService

        with self.database.session() as session:
            version = AgreementService(session).current_version(SLUG)
            version_id, digest = version.id, version.text_sha256
        started = time.monotonic()
        params = {"v": version_id, "sha": digest, "first": first_id, "n": count}
        sql = _BULK_SQLITE if self.database.engine.dialect.name == "sqlite" else _BULK_POSTGRESQL
        with self.database.engine.begin() as connection:
            connection.execute(text(sql), params)
            if self.database.engine.dialect.name == "sqlite":
                connection.exec_driver_sql("ANALYZE")
            else:
                connection.exec_driver_sql("ANALYZE signatures")
        return time.monotonic() - started

    def signature_count(self) -> int:
        from undersign.agreements.models import Signature

        with self.database.session() as session:
            return int(session.scalar(select(func.count()).select_from(Signature)) or 0)

    # Processes.

    def start_serve(
        self, *, embedded_worker: bool = False, workers: int = 2, threads: int = 4
    ) -> Proc:
        flag = "--embedded-worker" if embedded_worker else "--no-embedded-worker"
        cmd = [
            UNDERSIGN,
            "serve",
            "--port",
            str(self.port),
            "--workers",
            str(workers),
            "--threads",
            str(threads),
            flag,
        ]
        proc = Proc.start("serve", cmd, self.env, self.root)
        self.procs["serve"] = proc
        wait_http(f"{self.url}/healthz", proc, timeout=60)
        return proc

    def start_worker(self, workers: int = 2, env: dict[str, str] | None = None) -> Proc:
        cmd = [UNDERSIGN, "worker", "--workers", str(workers)]
        proc = Proc.start("worker", cmd, {**self.env, **(env or {})}, self.root)
        self.procs["worker"] = proc
        # No port to poll: give it a moment to import and start, and make sure it did.
        time.sleep(0.5)
        proc.check()
        return proc

    def stop(self, name: str) -> None:
        proc = self.procs.pop(name, None)
        if proc is not None:
            proc.stop()

    def web_worker_pids(self) -> list[int]:
        """The gunicorn worker processes of ``undersign serve`` (children of its master)."""
        import psutil

        serve = self.procs.get("serve")
        if serve is None:
            return []
        return [child.pid for child in psutil.Process(serve.pid).children(recursive=False)]

    # Webhooks and the queue.

    def deliver(
        self, event: str, payload: dict[str, Any], *, delivery_id: str | None = None
    ) -> tuple[int | None, str]:
        """A signed delivery sent by the emulator, exactly as GitHub sends it."""
        return self.state.deliver_webhook(
            self.hook_url,
            event,
            payload,
            secret=WEBHOOK_SECRET,
            hook_id=int(HOOK_ID),
            delivery_id=delivery_id,
        )

    def job_counts(self) -> dict[str, int]:
        from undersign.jobs.models import Job

        with self.database.session() as session:
            rows = session.execute(select(Job.status, func.count()).group_by(Job.status))
            return {str(status): int(count) for status, count in rows}

    def job_status(self, delivery_id: str) -> str | None:
        from undersign.jobs.models import Job

        with self.database.session() as session:
            return session.scalar(select(Job.status).where(Job.delivery_id == delivery_id))

    def idle(self) -> bool:
        counts = self.job_counts()
        return counts.get("queued", 0) + counts.get("running", 0) == 0

    def wait_idle(self, timeout: float) -> float:
        def done() -> bool:
            for proc in self.procs.values():
                proc.check()
            return self.idle()

        return wait_until(done, timeout, "the job queue to drain", poll=0.05)

    # Emulator views.

    def our_status(self, repo: str, sha: str) -> dict[str, Any] | None:
        """The newest ``license/cla`` status on ``sha``."""
        for status in self.state.statuses(repo, sha):
            if str(status["context"]).lower() == "license/cla":
                return status
        return None

    def head(self, repo: str, number: int) -> str:
        return str(self.state.pull_request(repo, number)["head"]["sha"])

    # Cleaning up.

    def close(self) -> None:
        for name in list(self.procs):
            with contextlib.suppress(Exception):
                self.stop(name)
        if self.env.get("UNDERSIGN_QUEUE_URL", "").startswith("redis"):
            with contextlib.suppress(Exception):  # no keys of this run left on the shared Redis
                from undersign.jobs.queue import JobQueue

                queue = JobQueue(self.settings(), self.database)
                queue.huey.flush()
                queue.close()
        with contextlib.suppress(Exception):
            self.database.dispose()
        with contextlib.suppress(Exception):
            self.emulator.stop()
        if self._pg_admin_url and self._pg_schema:
            with contextlib.suppress(Exception):
                admin = create_engine(self._pg_admin_url)
                with admin.begin() as connection:
                    connection.execute(text(f'DROP SCHEMA "{self._pg_schema}" CASCADE'))
                admin.dispose()
        if self._owns_root and not os.environ.get("BENCH_KEEP"):
            shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> Stack:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- reporting -------------------------------------------------------------------------------


def table(title: str, headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table (readable in a terminal, pasteable into the README)."""
    cells = [[str(h) for h in headers], *[[_cell(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]

    def line(row: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(row, widths, strict=True)) + " |"

    out = [f"\n### {title}\n", line(cells[0])]
    out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    out.extend(line(row) for row in cells[1:])
    return "\n".join(out)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) >= 100:
            return f"{value:.0f}"
        if abs(value) >= 10:
            return f"{value:.1f}"
        return f"{value:.2f}"
    return str(value)


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); 0.0 for no values."""
    if not values:
        return 0.0
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of a live process (Linux ``VmHWM``), else psutil's current RSS."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    import psutil

    return float(psutil.Process(pid).memory_info().rss) / (1024 * 1024)
