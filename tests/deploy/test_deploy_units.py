"""The systemd units in deploy/ are valid for Debian 12's systemd: ``systemd-analyze verify``
(which reads unit files without a running systemd) accepts every unit as installed, and
refuses a unit with a planted mistake, so the check can fail."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from tests.support.docs import REPO_ROOT

UNITS = ("undersign-web@.service", "undersign-migrate.service", "undersign-worker.service")
INSTALLED_BINARY = "/opt/undersign/current/bin/undersign"


def systemd_analyze() -> str:
    """Debian's systemd-analyze; installed from Debian's packages when missing and root."""
    found = shutil.which("systemd-analyze")
    if found is None:
        subprocess.run(
            ["apt-get", "install", "-y", "-qq", "systemd"],
            check=True,
            capture_output=True,
            env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
        )
        found = shutil.which("systemd-analyze")
    assert found, "systemd-analyze is needed (apt-get install systemd)"
    return found


def install_units(target: Path) -> list[Path]:
    """The units as an operator installs them, with the release's binary pointing at this
    checkout's (the only thing ``verify`` checks outside the file: that it is executable)."""
    binary = str(Path(sys.executable).parent / "undersign")
    installed = []
    for name in UNITS:
        text = (REPO_ROOT / "deploy" / name).read_text(encoding="utf-8")
        assert INSTALLED_BINARY in text, name
        # A template is verified through an instance of it, as `systemctl enable` makes one.
        path = target / name.replace("@.service", "@8000.service")
        path.write_text(text.replace(INSTALLED_BINARY, binary), encoding="utf-8")
        installed.append(path)
    return installed


def verify(units: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [systemd_analyze(), "verify", *map(str, units)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_every_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    result = verify(install_units(tmp_path))
    assert result.returncode == 0 and result.stderr.strip() == "", result.stderr


@pytest.mark.parametrize(
    ("unit", "change"),
    [
        ("undersign-worker.service", ("[Service]\n", "[Service]\nRestartSecs=2\n")),
        ("undersign-migrate.service", ("[Service]\n", "[Sevrice]\n")),
    ],
)
def test_a_planted_mistake_fails_the_check(
    tmp_path: Path, unit: str, change: tuple[str, str]
) -> None:
    units = install_units(tmp_path)
    path = next(p for p in units if p.name == unit)
    path.write_text(path.read_text().replace(*change, 1))
    result = verify(units)
    assert unit in result.stderr and (
        "Unknown key" in result.stderr or "Unknown section" in result.stderr
    ), result.stderr


def test_the_admin_wrapper_is_valid_sh() -> None:
    result = subprocess.run(
        ["sh", "-n", str(REPO_ROOT / "deploy" / "undersign-admin")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _directives(name: str) -> dict[str, list[str]]:
    """A unit's ``Key=value`` lines (comments and sections dropped), values by key."""
    found: dict[str, list[str]] = {}
    for line in (REPO_ROOT / "deploy" / name).read_text(encoding="utf-8").splitlines():
        if "=" in line and not line.lstrip().startswith(("#", ";")):
            key, _, value = line.partition("=")
            found.setdefault(key.strip(), []).append(value.strip())
    return found


def test_only_the_migrate_unit_runs_db_upgrade_and_the_others_start_after_it() -> None:
    """Web processes restarted one at a time must not each migrate (racing, and putting the
    schema ahead while the previous release still serves): migrating is its own unit."""
    migrate = _directives("undersign-migrate.service")
    assert migrate["ExecStart"] == [f"{INSTALLED_BINARY} db upgrade"]
    assert migrate["Type"] == ["oneshot"]
    for name in ("undersign-web@.service", "undersign-worker.service"):
        unit = _directives(name)
        commands = [
            value for key, values in unit.items() if key.startswith("Exec") for value in values
        ]
        assert commands and not any("db upgrade" in command for command in commands), name
        assert "undersign-migrate.service" in " ".join(unit["After"]), name
        # Wants, not Requires: restarting the migration must not restart every process.
        assert "undersign-migrate.service" in " ".join(unit["Wants"]), name
        assert "Requires" not in unit and "BindsTo" not in unit, name
