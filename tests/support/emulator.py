"""The GitHub emulator on a loopback port for a test: started, seeded, stopped.

Depends on ``undersign.emulator`` only."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

from undersign.emulator import EmulatorServer, GitHubEmulator

#: The people every test's emulator knows unless it is given another state.
DEFAULT_USERS = ("alice", "bob", "carol")


@contextmanager
def running_emulator(
    state: GitHubEmulator | None = None, users: Iterable[str] = ()
) -> Iterator[EmulatorServer]:
    """Serve ``state`` (a fresh emulator if None) on a free port, adding ``users`` (named
    after their login, with an example.com address); stop it on exit."""
    server = EmulatorServer(state or GitHubEmulator(), host="127.0.0.1", port=0).start()
    try:
        for login in users:
            server.state.add_user(login, name=login.title(), email=f"{login}@example.com")
        yield server
    finally:
        server.stop()
