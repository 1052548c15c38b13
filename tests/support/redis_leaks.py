"""A guard that fails a test file which leaves Redis connections open.

The PostgreSQL pass keeps its job queues on one shared Redis (``UNDERSIGN_TEST_QUEUE=redis``):
a test that forgets to close a runtime or a client passes, and its idle connections pile up on
a server other workers, engineers and CI share (until ``maxclients`` refuses one). Like
``tests/support/pg_leaks.py`` for PostgreSQL, ``tests/conftest.py`` registers this guard on the
runs whose queue is on Redis only.

After the last test of each file (its module fixtures torn down), the guard reads the server's
``CLIENT LIST`` and counts the clients that were not there before the file's first test
(client ids are never reused) and belong to this test process. A client belongs to this process
when either

- its name is this process's own: ``named_url`` adds it to a URL's query
  (``?client_name=...``, which redis-py's ``ConnectionPool.from_url`` sends at every connect;
  Huey's ``RedisHuey(url=...)`` builds its pool that way), and the tests' queue URLs carry it,
  so what a subprocess started with one leaves open is found too; or
- its address and port are those of a TCP socket this process holds to the server, which
  still finds a client built from a URL without the name.

Depends on redis and pytest only (and ``leak_guard``, what the guards share)."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import pytest
import redis
from tests.support.leak_guard import NAME_PREFIX, ConnectionLeakGuard, connection_name, sockets_to


def named_url(url: str) -> str:
    """``url`` with this process's client name in its query (any name it had replaced)."""
    parts = urlsplit(url)
    query = [(key, value) for key, value in parse_qsl(parts.query) if key != "client_name"]
    query.append(("client_name", connection_name()))
    return urlunsplit(parts._replace(query=urlencode(query)))


@dataclass(frozen=True)
class Client:
    """One connection as the server's ``CLIENT LIST`` shows it."""

    id: int
    name: str
    address: str
    age: int
    idle: int
    db: int
    last_command: str

    @classmethod
    def from_row(cls, row: dict[str, str]) -> Client:
        """From one line of ``CLIENT LIST`` as redis-py parses it."""
        return cls(
            id=int(row["id"]),
            name=row.get("name", ""),
            address=row.get("addr", ""),
            age=int(row.get("age", 0)),
            idle=int(row.get("idle", 0)),
            db=int(row.get("db", 0)),
            last_command=row.get("cmd", ""),
        )

    def host_and_port(self) -> tuple[str, int]:
        """Its address as this machine's sockets show their local ends."""
        host, _, port = self.address.rpartition(":")
        host = host.removeprefix("[").removesuffix("]").removeprefix("::ffff:")
        return host, int(port or 0)

    def describe(self) -> str:
        return (
            f"client {self.id} from {self.address} (name={self.name!r}, db {self.db}, "
            f"open {self.age}s, idle {self.idle}s): last command {self.last_command or '?'}"
        )


class RedisConnectionLeakGuard(ConnectionLeakGuard[Client]):
    """A pytest plugin: fails the last test of a file that leaves connections open."""

    server = "Redis"
    advice = "close every runtime, queue and Redis client it makes (tests/support/redis_leaks.py)."

    def __init__(self, server_url: str) -> None:
        super().__init__()
        url = urlsplit(server_url)
        self.server_port = url.port or 6379
        # The server's own URL: no client name (the guard's is its own) and db 0 (CLIENT LIST
        # lists the clients of every db).
        self.server_url = urlunsplit(url._replace(path="", query=""))
        self.name = connection_name()
        self._connection: redis.Redis | None = None
        self._own_id: int | None = None

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        self._close()

    # -- what the guard sees ---------------------------------------------------------------

    def open_ids(self) -> set[int]:
        return set(self.open_clients())

    def ours_since(self, before: set[int]) -> list[Client]:
        return self.ours([c for c in self.open_clients().values() if c.id not in before])

    def open_clients(self) -> dict[int, Client]:
        """Every connection to the server (the guard's own aside), by client id: whose they
        are is only asked of the new ones (``ours``)."""
        for attempt in (1, 2):
            try:
                rows = self._connect().client_list()
                break
            except redis.ConnectionError:
                # A test may have restarted the server or killed every client: connect again.
                self._close()
                if attempt == 2:
                    raise
        return {
            client.id: client for client in map(Client.from_row, rows) if client.id != self._own_id
        }

    def ours(self, clients: list[Client]) -> list[Client]:
        """Those of ``clients`` this process (or a subprocess given its URLs) opened. A client
        with this process's name is; another is only if it is at the other end of one of this
        process's sockets, which costs a look at the machine's sockets (~10 ms): done only when
        a client without a test process's name is new, which the tests' named URLs make rare."""
        named = [client for client in clients if client.name == self.name]
        # Another test process's (another xdist worker's): not ours, no need to look.
        others = [client for client in clients if not client.name.startswith(NAME_PREFIX)]
        if not others:
            return named
        sockets = sockets_to(self.server_port)
        return named + [client for client in others if client.host_and_port() in sockets]

    def _connect(self) -> redis.Redis:
        if self._connection is None:
            self._connection = redis.Redis.from_url(
                self.server_url, client_name=f"{self.name}-guard", single_connection_client=True
            )
            self._own_id = int(self._connection.client_id())
        return self._connection

    def _close(self) -> None:
        if self._connection is not None:
            self._connection.close()
        self._connection, self._own_id = None, None


def register_redis_leak_guard(config: pytest.Config, server_url: str) -> None:
    """Fail each test file that leaves connections to ``server_url`` open (Redis runs)."""
    config.pluginmanager.register(
        RedisConnectionLeakGuard(server_url), "redis-connection-leak-guard"
    )
