"""Fixtures for the GitHub emulator's tests: a real server on loopback per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import httpx
import pytest
from emulator_support import CALLBACK, CLIENT_ID, CLIENT_SECRET, SSL_CONTEXT, Receiver
from tests.support.emulator import running_emulator

from undersign.emulator import EmulatorServer, GitHubEmulator


@pytest.fixture
def emulator() -> Iterator[EmulatorServer]:
    """A started emulator with users alice/bob/carol, an OAuth app and the org/repo from the
    demo-like setup; each test gets a fresh one."""
    state = GitHubEmulator()
    state.add_user("alice", name="Alice Liddell", email="alice@example.com")
    state.add_user("bob", name="Bob Builder", email="bob@example.com")
    state.add_user("carol", name="Carol Danvers", email="carol@example.com")
    state.add_oauth_client(CLIENT_ID, CLIENT_SECRET, CALLBACK)
    with running_emulator(state) as server:
        yield server


@pytest.fixture
def state(emulator: EmulatorServer) -> GitHubEmulator:
    return emulator.state


@pytest.fixture
def api(emulator: EmulatorServer) -> Iterator[Callable[[str | None], httpx.Client]]:
    """``api(token)`` -> an httpx client on the REST root sending ``Authorization: token ...``."""
    clients: list[httpx.Client] = []

    def make(token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"token {token}"} if token else {}
        client = httpx.Client(
            base_url=emulator.api_url, headers=headers, timeout=10, verify=SSL_CONTEXT
        )
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def web(emulator: EmulatorServer) -> Iterator[httpx.Client]:
    """A browser-ish client on the emulator's root that does not follow redirects."""
    with httpx.Client(
        base_url=emulator.url, timeout=10, follow_redirects=False, verify=SSL_CONTEXT
    ) as client:
        yield client


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    rec = Receiver()
    try:
        yield rec
    finally:
        rec.close()
