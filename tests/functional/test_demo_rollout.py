"""The demo's rollout steps, as its terminal tells them: from a second shell, import a CLA
Assistant Lite file and a CLA assistant export, run acme/widgets in report mode, then switch
it to enforce. Real processes: ``undersign demo`` and the ``undersign`` commands."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

from tests.support.demo import Demo, wait_for
from tests.support.demo import demo as demo  # the fixture
from tests.support.processes import UNDERSIGN


def undersign(env_file: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """One command in a second shell that sourced the demo's env file."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNDERSIGN_")}
    for line in env_file.read_text(encoding="utf-8").splitlines():
        name, _, value = line.partition("=")
        env[name] = value
    return subprocess.run(
        [UNDERSIGN, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )


def widgets_status(demo: Demo) -> dict[str, str] | None:
    found = [s for s in demo.pull()["statuses"] if s["context"] == "license/cla"]
    return found[0] if found else None


def test_import_then_report_mode_then_enforce(demo: Demo) -> None:
    told = wait_for(
        lambda: "Moving from another CLA tool" in (text := demo.log.read_text()) and text,
        60,
        "the rollout steps",
    )
    env_line = next(line for line in told.splitlines() if "set -a; ." in line)
    env_file = Path(env_line.split(". ", 1)[1].split(";", 1)[0])
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600  # it holds the demo bot's token
    imports = env_file.parent / "imports"

    lite = undersign(
        env_file,
        "import",
        "cla-assistant-lite",
        str(imports / "cla-assistant-lite.json"),
        "--agreement",
        "individual-cla",
    )
    assert lite.returncode == 0, lite.stderr
    assert "imported 2, already present 0, problems 0" in lite.stdout
    export = undersign(
        env_file,
        "import",
        "cla-assistant",
        str(imports / "cla-assistant.csv"),
        "--agreement",
        "individual-cla",
    )
    assert export.returncode == 0, export.stderr
    assert "imported 1, already present 1, problems 0 (2 GitHub lookup(s))" in export.stdout

    wait_for(lambda: widgets_status(demo), 30, "the demo PR's first status")
    link = undersign(env_file, "repo", "link", "acme/widgets", "individual-cla", "--mode", "report")
    assert link.returncode == 0, link.stderr
    wait_for(
        lambda: (
            (widgets_status(demo) or {}).get("description") == "report only: 0 of 1 have signed"
        ),
        30,
        "acme/widgets#1 to pass in report mode",
    )
    assert widgets_status(demo)["state"] == "success"  # type: ignore[index]
    enforce = undersign(env_file, "repo", "link", "acme/widgets", "individual-cla")
    assert enforce.returncode == 0, enforce.stderr
    wait_for(
        lambda: (widgets_status(demo) or {}).get("state") == "failure",
        30,
        "acme/widgets#1 to turn red once enforced",
    )
