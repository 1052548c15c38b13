"""`undersign emulator` and `python -m undersign.emulator`: the GitHub emulator on its own,
printing the settings that point an undersign at it."""

from __future__ import annotations

import signal
import subprocess
import sys

import httpx
import pytest
from tests.support.processes import UNDERSIGN, clean_env

COMMANDS = {
    "undersign emulator": [UNDERSIGN, "emulator", "--port", "0"],
    "python -m undersign.emulator": [sys.executable, "-m", "undersign.emulator", "--port", "0"],
}


@pytest.mark.parametrize("name", list(COMMANDS))
def test_the_emulator_runs_alone_and_prints_working_settings(name: str) -> None:
    proc = subprocess.Popen(
        COMMANDS[name], env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stdout is not None
        settings = dict(proc.stdout.readline().strip().split("=", 1) for _ in range(6))
        api = settings["UNDERSIGN_GITHUB_API_URL"]
        assert api == settings["UNDERSIGN_GITHUB_URL"] + "/api/v3"
        assert api.startswith("http://127.0.0.1:")
        auth = {"Authorization": f"token {settings['UNDERSIGN_GITHUB_TOKEN']}"}
        me = httpx.get(f"{api}/user", headers=auth, timeout=10)
        assert me.status_code == 200
        assert me.json()["login"] == settings["UNDERSIGN_BOT_LOGIN"] == "undersign-bot"
        pulls = httpx.get(f"{api}/repos/acme/widgets/pulls", headers=auth, timeout=10).json()
        assert sorted(p["user"]["login"] for p in pulls) == ["bob", "dave", "erin"]
        # The OAuth app is registered for the default callback.
        authorize = httpx.get(
            settings["UNDERSIGN_GITHUB_URL"] + "/login/oauth/authorize",
            params={
                "client_id": settings["UNDERSIGN_GITHUB_CLIENT_ID"],
                "redirect_uri": "http://127.0.0.1:8000/login/callback",
                "state": "s",
            },
            timeout=10,
        )
        assert authorize.status_code == 200, authorize.text
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    assert proc.returncode == 0
