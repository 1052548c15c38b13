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

Depends on psycopg and pytest only (and ``leak_guard``, what the guards share)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
import pytest
from sqlalchemy import make_url
from tests.support.leak_guard import ConnectionLeakGuard, connection_name, sockets_to

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


class PostgresConnectionLeakGuard(ConnectionLeakGuard[Backend]):
    """A pytest plugin: fails the last test of a file that leaves connections open."""

    server = "PostgreSQL"
    advice = (
        "dispose every Database or engine it makes and close every runtime "
        "(tests/support/pg_leaks.py)."
    )

    def __init__(self, server_url: str) -> None:
        super().__init__()
        url = make_url(server_url)
        self.server_port = url.port or 5432
        # libpq's own URL form: no SQLAlchemy driver name, no per-test options (search_path).
        self.conninfo = url.set(drivername="postgresql", query={}).render_as_string(
            hide_password=False
        )
        self.application_name = connection_name()
        self._previous_appname = os.environ.get("PGAPPNAME")
        self._connection: psycopg.Connection[Any] | None = None

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

    # -- what the guard sees ---------------------------------------------------------------

    def open_ids(self) -> set[int]:
        return set(self.open_backends())

    def ours_since(self, before: set[int]) -> list[Backend]:
        return [b for pid, b in self.open_backends().items() if pid not in before]

    def open_backends(self) -> dict[int, Backend]:
        """This process's connections to the server (its own aside), by backend pid."""
        sockets = sockets_to(self.server_port)
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

    def _connect(self) -> psycopg.Connection[Any]:
        if self._connection is None or self._connection.closed:
            self._connection = psycopg.connect(
                self.conninfo, autocommit=True, application_name=f"{self.application_name}-guard"
            )
        return self._connection


def register_leak_guard(config: pytest.Config, server_url: str) -> None:
    """Fail each test file that leaves connections to ``server_url`` open (PostgreSQL runs)."""
    config.pluginmanager.register(
        PostgresConnectionLeakGuard(server_url), "postgres-connection-leak-guard"
    )
