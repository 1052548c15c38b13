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
