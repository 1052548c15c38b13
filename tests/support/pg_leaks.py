"""A guard that fails a test file which leaves PostgreSQL connections open.

The PostgreSQL pass shares one server whose ``max_connections`` is finite: a test that forgets
to dispose an engine or close a runtime passes, and the run fails much later, somewhere
unrelated, when the server refuses new connections. ``tests/conftest.py`` registers this
guard on PostgreSQL runs only (``--db postgresql+psycopg://...``); SQLite runs never load it.

After the last test of each file (its module fixtures torn down), the guard lists the server's
backends that belong to this test process and were not there before the file's first test. A
backend belongs to this process when either

- its ``application_name`` is this process's own: the guard sets ``PGAPPNAME``, which libpq
  reads for every connection that names none (subprocesses a test starts inherit it, and what
  they leave open is a leak too); or
- its client address and port are those of a TCP socket this process holds to the server,
  which still finds a connection that names another ``application_name``.

Depends on psycopg, psutil and pytest only."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Generator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psutil
import psycopg
import pytest
from sqlalchemy import make_url

#: Connections a file may leave open. Zero: after a file's teardown no fixture of the suite
#: holds one (database fixtures are function- or module-scoped, and the guard's own
#: connection is not counted), so any connection still open was leaked by that file.
ALLOWED_PER_FILE = 0

#: How long a file's connections may take to go after a garbage collection: a backend exits
#: a moment after its client closes the socket (or after a subprocess is killed).
SETTLE_SECONDS = 1.0

_OURS = """
SELECT pid, application_name, host(client_addr), client_port, state, backend_start,
       left(regexp_replace(query, '\\s+', ' ', 'g'), 120)
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
  AND (application_name = %(name)s OR client_port = ANY(%(ports)s::int[]))
"""


@dataclass(frozen=True)
class Backend:
    """One server backend (a connection) as pg_stat_activity shows it."""

    pid: int
    application_name: str
    state: str | None
    since: datetime | None
    last_query: str

    def describe(self) -> str:
        since = f", open since {self.since:%H:%M:%S}" if self.since else ""
        return (
            f"backend {self.pid} (application_name={self.application_name!r}, "
            f"state={self.state}{since}): {self.last_query or '(no query)'}"
        )


class PostgresConnectionLeakGuard:
    """A pytest plugin: fails the last test of a file that leaves connections open."""

    def __init__(self, server_url: str) -> None:
        url = make_url(server_url)
        self.server_port = url.port or 5432
        # libpq's own URL form: no SQLAlchemy driver name, no per-test options (search_path).
        self.conninfo = url.set(drivername="postgresql", query={}).render_as_string(
            hide_password=False
        )
        worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
        self.application_name = f"undersign-tests-{worker}-{os.getpid()}"
        self._previous_appname = os.environ.get("PGAPPNAME")
        self._connection: psycopg.Connection[Any] | None = None
        self._before: set[int] | None = None

    # -- pytest hooks ----------------------------------------------------------------------

    def pytest_configure(self, config: pytest.Config) -> None:
        os.environ["PGAPPNAME"] = self.application_name

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        if self._connection is not None:
            self._connection.close()
        if self._previous_appname is None:
            os.environ.pop("PGAPPNAME", None)
        else:
            os.environ["PGAPPNAME"] = self._previous_appname

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if self._before is None:  # the first test of a file
            self._before = set(self.open_backends())

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_teardown(
        self, item: pytest.Item, nextitem: pytest.Item | None
    ) -> Generator[None, None, None]:
        try:
            yield  # the test's fixtures, and its file's after its last test, torn down
        except BaseException:
            self._before = None  # the next file starts from what is open now
            raise
        if nextitem is not None and nextitem.path == item.path:
            return None
        before, self._before = self._before or set(), None
        leaked = self.leaked_since(before)
        if len(leaked) > ALLOWED_PER_FILE:
            raise pytest.fail.Exception(self.message(item, leaked), pytrace=False)
        return None

    # -- what the guard sees ---------------------------------------------------------------

    def open_backends(self) -> dict[int, Backend]:
        """This process's connections to the server (its own aside), by backend pid."""
        sockets = self._sockets_to_server()
        ports = sorted(port for _, port in sockets)
        for attempt in (1, 2):
            try:
                connection = self._connect()
                rows = connection.execute(
                    _OURS, {"name": self.application_name, "ports": ports}
                ).fetchall()
                break
            except psycopg.OperationalError:
                # A test may have restarted the server or ended every backend: connect again.
                self._connection = None
                if attempt == 2:
                    raise
        found: dict[int, Backend] = {}
        for pid, name, address, port, state, since, query in rows:
            if name != self.application_name and (address, port) not in sockets:
                continue  # the same port number, but another machine's client
            found[pid] = Backend(pid, name or "", state, since, query or "")
        return found

    def leaked_since(self, before: set[int]) -> list[Backend]:
        """Connections opened since ``before`` that stay open once garbage is collected."""
        leaked = [b for pid, b in self.open_backends().items() if pid not in before]
        if len(leaked) <= ALLOWED_PER_FILE:
            return leaked  # the usual case costs one query, no collection
        gc.collect()
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            leaked = [b for pid, b in self.open_backends().items() if pid not in before]
            if len(leaked) <= ALLOWED_PER_FILE or time.monotonic() > deadline:
                return leaked
            time.sleep(0.05)

    def message(self, item: pytest.Item, leaked: list[Backend]) -> str:
        count = len(leaked)
        plural = "connection" if count == 1 else "connections"
        path = item.nodeid.split("::")[0]
        lines = [
            f"{path} left {count} PostgreSQL {plural} open after its last test and fixtures "
            f"finished (garbage collected; {ALLOWED_PER_FILE} allowed): dispose every "
            "Database or engine it makes and close every runtime (tests/support/pg_leaks.py).",
            *(f"  {backend.describe()}" for backend in leaked),
        ]
        return "\n".join(lines)

    def _connect(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(
                self.conninfo, autocommit=True, application_name=f"{self.application_name}-guard"
            )
        return self._connection

    def _sockets_to_server(self) -> set[tuple[str, int]]:
        """The local (address, port) of each TCP socket this process holds to the server's
        port: the server sees them as a backend's client address and port."""
        return {
            (sock.laddr.ip.removeprefix("::ffff:"), sock.laddr.port)
            for sock in psutil.Process().net_connections(kind="tcp")
            if sock.raddr and sock.raddr.port == self.server_port
        }


def register_leak_guard(config: pytest.Config, server_url: str) -> None:
    """Fail each test file that leaves connections to ``server_url`` open (PostgreSQL runs)."""
    config.pluginmanager.register(
        PostgresConnectionLeakGuard(server_url), "postgres-connection-leak-guard"
    )
