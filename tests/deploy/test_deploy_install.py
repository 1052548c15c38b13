"""The runtime-only install of docs/deploy.md section 2, run as documented (into a temporary
folder instead of /opt/undersign), from the package registry with no pip cache: undersign
and its runtime dependencies, none of the test tools."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from tests.support.docs import REPO_ROOT, replace_all, shell_block

TEST_TOOLS = {"pytest", "mypy", "ruff", "semgrep", "playwright", "hypothesis", "bandit", "atheris"}


def _source_copy(destination: Path) -> None:
    """The working tree as a fresh clone would have it (no virtualenv, no build leftovers)."""
    shutil.copytree(
        REPO_ROOT,
        destination,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", "build", "dist", "*.egg-info", "__pycache__", ".*_cache", "instance"
        ),
    )
    git = ["git", "-C", str(destination), "-c", "user.name=t", "-c", "user.email=t@t.invalid"]
    subprocess.run([*git, "init", "-q"], check=True, timeout=60)
    subprocess.run([*git, "add", "-A"], check=True, timeout=60)
    subprocess.run([*git, "commit", "-qm", "release"], check=True, timeout=60)


@pytest.mark.timeout(900)
def test_runtime_only_install_as_documented(tmp_path: Path) -> None:
    opt = tmp_path / "opt-undersign"
    _source_copy(opt / "src")
    script = replace_all(
        shell_block("deploy.md", "install-release"),
        [("sudo ", ""), ("/opt/undersign", str(opt))],
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith(("UNDERSIGN_", "VIRTUAL_ENV"))}
    env["PIP_NO_CACHE_DIR"] = "1"
    env["PIP_FIND_LINKS"] = ""  # the package registry only, no wheels of this machine
    env["PATH"] = "/usr/local/bin:/usr/bin:/bin"  # the system's python3, not this virtualenv's
    result = subprocess.run(
        ["bash", "-euc", script], env=env, capture_output=True, text=True, timeout=850, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "undersign, version" in result.stdout

    current = opt / "current"
    assert current.is_symlink()
    [release] = list((opt / "releases").iterdir())
    assert current.resolve() == release.resolve()
    listed = subprocess.run(
        [str(current / "bin" / "python"), "-m", "pip", "list", "--format=freeze"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    installed = {line.split("==")[0].lower() for line in listed.splitlines()}
    assert "undersign" in installed
    assert not installed & TEST_TOOLS, installed & TEST_TOOLS

    # The code that runs is the release's copy, not the source folder (a later `git pull`
    # there changes nothing that runs until the next release is built and migrated).
    imported = subprocess.run(
        [str(current / "bin" / "python"), "-c", "import undersign; print(undersign.__file__)"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout.strip()
    assert Path(imported).resolve().is_relative_to(release.resolve()), imported

    # Package data made it in: the migrations run and the emulator starts.
    undersign = str(current / "bin" / "undersign")
    run_env = {**env, "UNDERSIGN_ENV": "development", "UNDERSIGN_INSTANCE_PATH": str(tmp_path)}
    upgraded = subprocess.run(
        [undersign, "db", "upgrade"], env=run_env, capture_output=True, text=True, timeout=120
    )
    assert upgraded.returncode == 0, upgraded.stderr
    helped = subprocess.run(
        [str(current / "bin" / "python"), "-m", "undersign.emulator", "--help"],
        env=run_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert helped.returncode == 0 and "--port" in helped.stdout, helped.stderr
