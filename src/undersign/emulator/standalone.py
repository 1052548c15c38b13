"""``undersign emulator`` / ``python -m undersign.emulator``: the GitHub emulator on its own.

For operators trying undersign out without a GitHub organisation, and for integration tests
of their own: it serves the demo's GitHub (users alice, bob, carol, dave; org ``acme`` with
``acme/widgets`` and open pull request #1 by bob), registers an OAuth app for undersign's
sign-in and issues a token for the bot, then prints the ``UNDERSIGN_*`` settings that point
an undersign at it. Everything lives in memory and is gone when it stops.
"""

from __future__ import annotations

import secrets
import signal
import threading
from types import FrameType

import click

from undersign.emulator.demo import build_demo_state
from undersign.emulator.server import EmulatorServer

BOT_LOGIN = "undersign-bot"


def settings_for_undersign(server: EmulatorServer, client_id: str, client_secret: str) -> str:
    """The environment an undersign needs to use this emulator as its GitHub (one a line)."""
    token = server.state.issue_token(BOT_LOGIN)
    return "\n".join(
        [
            f"UNDERSIGN_GITHUB_URL={server.url}",
            f"UNDERSIGN_GITHUB_API_URL={server.api_url}",
            f"UNDERSIGN_GITHUB_CLIENT_ID={client_id}",
            f"UNDERSIGN_GITHUB_CLIENT_SECRET={client_secret}",
            f"UNDERSIGN_GITHUB_TOKEN={token}",
            f"UNDERSIGN_BOT_LOGIN={BOT_LOGIN}",
        ]
    )


def _stop_on(stop: threading.Event) -> None:
    def handler(_signum: int, _frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)


@click.command("emulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="address to listen on")
@click.option(
    "--port",
    default=8001,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="port to listen on (0: any free port, printed)",
)
@click.option(
    "--callback-url",
    default="http://127.0.0.1:8000/login/callback",
    show_default=True,
    help="undersign's OAuth callback (UNDERSIGN_BASE_URL/login/callback)",
)
def emulator_command(host: str, port: int, callback_url: str) -> None:
    """Run the built-in GitHub emulator alone, with the demo's users and repository.

    Prints the UNDERSIGN_* settings that make an undersign use it (stdout, one a line, so
    `undersign emulator > emulator.env` works), then serves until stopped.
    """
    client_id = "Ov23li" + secrets.token_hex(7)
    client_secret = secrets.token_hex(20)
    state = build_demo_state(client_id, client_secret, callback_url, bot_login=BOT_LOGIN)
    stop = threading.Event()
    _stop_on(stop)
    with EmulatorServer(state, host=host, port=port) as server:
        click.echo(settings_for_undersign(server, client_id, client_secret))
        click.echo(
            f"GitHub emulator on {server.url} (pages: {server.url}/_emulator/); "
            "users alice, bob, carol, dave; acme/widgets#1 by bob. Stop with Ctrl-C.",
            err=True,
        )
        stop.wait()
