"""``undersign demo``: the whole service on a laptop, with a GitHub emulator and sample data.

Nobody needs a GitHub account or a network: the emulator plays GitHub on another loopback
port, with demo users (alice, bob, ...), a repository and a pull request waiting on a
signature. Everything runs in one process; state lives in ``instance/demo``.
"""

from __future__ import annotations

import os
import secrets
import sys
from pathlib import Path

import click

from undersign.config import Settings, load_settings

DEMO_CLIENT_ID = "Ov23liDemoUndersign01"
DEMO_AGREEMENT = Path(__file__).parent / "demo_data" / "individual-cla.md"


def demo_settings(port: int, github_port: int, instance: Path) -> Settings:
    base = load_settings(
        {
            "UNDERSIGN_ENV": "demo",
            "UNDERSIGN_INSTANCE_PATH": str(instance),
            "UNDERSIGN_BASE_URL": f"http://127.0.0.1:{port}",
            "UNDERSIGN_GITHUB_URL": f"http://127.0.0.1:{github_port}",
            "UNDERSIGN_GITHUB_API_URL": f"http://127.0.0.1:{github_port}/api/v3",
            "UNDERSIGN_GITHUB_CLIENT_ID": DEMO_CLIENT_ID,
            "UNDERSIGN_LOG_LEVEL": os.environ.get("UNDERSIGN_LOG_LEVEL", "INFO"),
        }
    )
    return base.replace(
        github_client_secret=secrets.token_hex(20), webhook_secret=secrets.token_hex(20)
    )


def run_demo(*, port: int, github_port: int) -> None:
    from undersign.emulator import EmulatorServer
    from undersign.emulator.demo import build_demo_state
    from undersign.migrations import upgrade
    from undersign.serving import serve
    from undersign.web import create_app

    instance = Path(os.environ.get("UNDERSIGN_INSTANCE_PATH", "instance")) / "demo"
    settings = demo_settings(port, github_port, instance)
    state = build_demo_state(
        client_id=settings.github_client_id or "",
        client_secret=settings.github_client_secret or "",
        callback_url=settings.callback_url,
    )
    settings = settings.replace(github_token=state.issue_token("undersign-bot"))
    emulator = EmulatorServer(state, host="127.0.0.1", port=github_port).start()
    upgrade(settings.database_url or "")
    _seed(settings)
    click.echo(
        f"\n  undersign demo\n"
        f"  undersign:        {settings.base_url}\n"
        f"  GitHub emulator:  {emulator.url}/_emulator/  (demo users: alice, bob, carol, dave)\n"
        f"  Stop with Ctrl-C.\n",
        err=True,
    )
    try:
        serve(
            lambda: create_app(settings),
            host="127.0.0.1",
            port=port,
            workers=1,
            threads=8,
        )
    finally:
        emulator.stop()
    sys.exit(0)


def _seed(settings: Settings) -> None:
    """Sample agreement and links, added once (re-running the demo keeps signatures)."""
    try:
        from undersign.demo_seed import seed
    except ModuleNotFoundError:
        return
    seed(settings)
