"""``undersign demo`` as a real process for a test (the ``demo`` fixture, imported by the test
modules that use it), and waiting on what it shows.

Depends on httpx and ``tests.support.processes``."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.support.processes import UNDERSIGN, clean_env, free_port


def wait_for(predicate: Any, timeout: float, what: str) -> Any:
    """``predicate()``'s first truthy answer within ``timeout`` seconds; fails naming ``what``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


class Demo:
    """A running demo: the app's and its GitHub emulator's addresses, and its output."""

    def __init__(self, app_url: str, github_url: str, log: Path) -> None:
        self.app_url = app_url
        self.github_url = github_url
        self.log = log

    def pull(self, number: int = 1) -> dict[str, Any]:
        """acme/widgets#number as the emulator holds it."""
        pulls = httpx.get(f"{self.github_url}/_emulator/pulls").json()
        found: dict[str, Any] = next(
            p for p in pulls if p["repo"] == "acme/widgets" and p["number"] == number
        )
        return found


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """``undersign demo`` on free ports, answering /healthz; stopped with its process group."""
    port, github_port = free_port(), free_port()
    env = clean_env(UNDERSIGN_INSTANCE_PATH=str(tmp_path / "instance"))
    log = tmp_path / "demo.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [UNDERSIGN, "demo", "--port", str(port), "--github-port", str(github_port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    running = Demo(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{github_port}", log)

    def healthy() -> bool:
        try:
            return httpx.get(f"{running.app_url}/healthz").status_code == 200
        except httpx.TransportError:
            return process.poll() is not None and _exited(log)

    try:
        wait_for(healthy, 60, "the demo to answer /healthz")
        yield running
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)


def _exited(log: Path) -> bool:
    raise AssertionError(f"the demo exited:\n{log.read_text()}")
