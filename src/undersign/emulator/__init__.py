"""A GitHub emulator: a real HTTP server that behaves like GitHub (GHES layout) for everything
undersign uses, so tests and the demo run the real client code against it over loopback.

    state = GitHubEmulator()
    with EmulatorServer(state) as server:
        ...  # OAuth at server.url + "/login/oauth/...", REST at server.api_url
"""

from undersign.emulator.models import Delivery, RecordedRequest
from undersign.emulator.server import EmulatorServer, create_app
from undersign.emulator.state import GitHubEmulator
from undersign.emulator.webhooks import signatures

__all__ = [
    "Delivery",
    "EmulatorServer",
    "GitHubEmulator",
    "RecordedRequest",
    "create_app",
    "signatures",
]
