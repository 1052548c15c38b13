"""Real `undersign` processes for tests: serve, worker, db upgrade; their output in files."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

UNDERSIGN = str(Path(sys.executable).parent / "undersign")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def clean_env(**values: str) -> dict[str, str]:
    """The test's environment without any UNDERSIGN_ variable, plus ``values``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERSIGN_")}
    env.update(values)
    return env


def run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [UNDERSIGN, *args], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == 0, result.stderr
    return result


@dataclass
class Process:
    popen: subprocess.Popen[bytes]
    log: Path
    url: str | None = None

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def stop(self) -> None:
        if self.popen.poll() is None:
            os.killpg(self.popen.pid, signal.SIGTERM)
            try:
                self.popen.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.popen.pid, signal.SIGKILL)
                self.popen.wait(timeout=10)


def start(args: list[str], env: dict[str, str], log: Path) -> Process:
    with log.open("wb") as handle:
        popen = subprocess.Popen(
            [UNDERSIGN, *args],
            env=env,
            stdout=handle,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return Process(popen, log)


def start_serve(
    env: dict[str, str], log: Path, *, workers: int = 1, port: int | None = None
) -> Process:
    port = port or free_port()
    process = start(
        ["serve", "--port", str(port), "--workers", str(workers), "--no-embedded-worker"], env, log
    )
    process.url = f"http://127.0.0.1:{port}"
    return process


def wait_ready(process: Process, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.popen.poll() is not None:
            raise AssertionError(f"the process ended:\n{process.output()}")
        try:
            if httpx.get(f"{process.url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"not ready in {timeout} s:\n{process.output()}")
