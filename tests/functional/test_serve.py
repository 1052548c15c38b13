"""`undersign serve` and `undersign db upgrade` as an operator runs them: real processes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import httpx
from tests.support.processes import UNDERSIGN, free_port, run


def _production_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERSIGN_")}
    env.update(
        UNDERSIGN_INSTANCE_PATH=str(tmp_path),
        UNDERSIGN_SECRET_KEY="production-secret-key-0123456789-abcdefghij",
        UNDERSIGN_GITHUB_CLIENT_ID="Ov23liProd",
        UNDERSIGN_GITHUB_CLIENT_SECRET="prod-client-secret-0123456789",
        UNDERSIGN_WEBHOOK_SECRET="prod-webhook-secret-0123456789",
        UNDERSIGN_GITHUB_TOKEN="ghp_productionbottoken",
        UNDERSIGN_METRICS_TOKEN="prod-metrics-token-0123456789",
        UNDERSIGN_DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}",
    )
    env.update(extra)
    return env


def test_production_refuses_to_start_without_a_secret_key(tmp_path: Path):
    env = _production_env(tmp_path)
    del env["UNDERSIGN_SECRET_KEY"]
    result = subprocess.run(
        [UNDERSIGN, "serve", "--port", str(free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "UNDERSIGN_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_an_unmigrated_database(tmp_path: Path):
    result = subprocess.run(
        [UNDERSIGN, "serve", "--port", str(free_port())],
        env=_production_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode != 0
    assert "undersign db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_runs_gunicorn_and_logs_paths_without_query_strings(tmp_path: Path):
    env = _production_env(tmp_path)
    run(["db", "upgrade"], env)
    port = free_port()
    log_path = tmp_path / "serve.log"
    with log_path.open("w") as log:
        process = subprocess.Popen(
            [UNDERSIGN, "serve", "--port", str(port), "--workers", "1"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(100):
            try:
                if httpx.get(f"{url}/healthz").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError(log_path.read_text())
        # A generous timeout: this test is about what gets logged, not latency (a fresh
        # server once took over 5 s to answer here on a loaded machine; see the session note).
        callback = httpx.get(
            f"{url}/login/callback?code=SECRETCODE123&state=SECRETSTATE456", timeout=30
        )
        assert callback.status_code == 400
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)
    output = log_path.read_text()
    assert "gunicorn" in output.lower()
    assert "/login/callback" in output
    assert "SECRETCODE123" not in output
    assert "SECRETSTATE456" not in output
