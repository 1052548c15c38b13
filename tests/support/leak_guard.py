"""What the connection leak guards share (``pg_leaks`` for PostgreSQL, ``redis_leaks`` for
Redis): when to look (before each file's first test, after its last test's and module
fixtures' teardown), the garbage collection and wait before blaming a file, and the message.
A guard says only what is open on its server and which of it is this process's.

Depends on psutil and pytest only."""

from __future__ import annotations

import gc
import os
import time
from collections.abc import Generator
from typing import ClassVar, Generic, Protocol, TypeVar

import psutil
import pytest

#: Connections a file may leave open. Zero: after a file's teardown no fixture of the suite
#: holds one (database fixtures are function- or module-scoped, queues are closed with their
#: runtime, and a guard's own connection is not counted), so any connection still open was
#: leaked by that file.
ALLOWED_PER_FILE = 0

#: How long a file's connections may take to go after a garbage collection: a server drops a
#: connection a moment after its client closes the socket (or after a subprocess is killed).
SETTLE_SECONDS = 1.0


#: The start of every test process's connection name.
NAME_PREFIX = "undersign-tests-"


def connection_name() -> str:
    """The name this test process gives its connections (PostgreSQL's ``application_name``,
    Redis' client name): unique to the xdist worker and process, so the connections of other
    workers and other runs on a shared server are not taken for its own."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "main")
    return f"{NAME_PREFIX}{worker}-{os.getpid()}"


def sockets_to(server_port: int) -> set[tuple[str, int]]:
    """The local (address, port) of each TCP socket this process holds to ``server_port``: a
    server sees them as its clients' addresses and ports. About 10 ms (every socket of the
    machine is listed)."""
    return {
        (sock.laddr.ip.removeprefix("::ffff:"), sock.laddr.port)
        for sock in psutil.Process().net_connections(kind="tcp")
        if sock.raddr and sock.raddr.port == server_port
    }


class Connection(Protocol):
    """One open connection as a guard found it on its server."""

    def describe(self) -> str: ...


ConnectionT = TypeVar("ConnectionT", bound=Connection)


class ConnectionLeakGuard(Generic[ConnectionT]):
    """A pytest plugin: fails the last test of a file that leaves connections open."""

    #: The server's name in the failure message ("PostgreSQL").
    server: ClassVar[str]
    #: What the message tells a file that leaks to do.
    advice: ClassVar[str]

    def __init__(self) -> None:
        self._before: set[int] | None = None

    def open_ids(self) -> set[int]:
        """The ids of the connections open now: those a file finds are not its own."""
        raise NotImplementedError

    def ours_since(self, before: set[int]) -> list[ConnectionT]:
        """This process's connections open now whose ids are not in ``before``."""
        raise NotImplementedError

    # -- pytest hooks ----------------------------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item: pytest.Item) -> None:
        if self._before is None:  # the first test of a file
            self._before = self.open_ids()

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

    # -- the verdict -----------------------------------------------------------------------

    def leaked_since(self, before: set[int]) -> list[ConnectionT]:
        """Connections opened since ``before`` that stay open once garbage is collected."""
        leaked = self.ours_since(before)
        if len(leaked) <= ALLOWED_PER_FILE:
            return leaked  # the usual case costs one query, no collection
        gc.collect()
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            leaked = self.ours_since(before)
            if len(leaked) <= ALLOWED_PER_FILE or time.monotonic() > deadline:
                return leaked
            time.sleep(0.05)

    def message(self, item: pytest.Item, leaked: list[ConnectionT]) -> str:
        count = len(leaked)
        plural = "connection" if count == 1 else "connections"
        path = item.nodeid.split("::")[0]
        lines = [
            f"{path} left {count} {self.server} {plural} open after its last test and "
            f"fixtures finished (garbage collected; {ALLOWED_PER_FILE} allowed): {self.advice}",
            *(f"  {connection.describe()}" for connection in leaked),
        ]
        return "\n".join(lines)
