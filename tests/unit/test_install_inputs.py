"""The guard in `make lint` that keeps install inputs free of this machine's paths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUARD = ROOT / "tools" / "check_install_inputs.py"


def run_guard(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(GUARD), *map(str, paths)],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
    )


def test_the_projects_own_install_inputs_pass() -> None:
    result = run_guard()
    assert result.returncode == 0, result.stdout


def test_every_constraint_is_a_plain_pin() -> None:
    lines = [
        line
        for line in (ROOT / "constraints.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines and all(line.count("==") == 1 and " " not in line for line in lines), [
        line for line in lines if "==" not in line or " " in line
    ]


@pytest.mark.parametrize(
    "line",
    [
        # The very line that broke every new machine.
        "atheris @ file:///tmp/atheris_dl/atheris-3.0.0-cp311-cp311-manylinux2014_x86_64.whl",
        "atheris @ https://example.org/atheris-3.0.0.whl",
        "/root/wheels/atheris-3.0.0-cp311-cp311-manylinux2014_x86_64.whl",
        "./vendor/atheris-3.0.0.tar.gz",
        "../atheris",
        "-e /home/someone/atheris",
        "--find-links /opt/wheels",
        "-f file:///opt/wheels",
        "file:/tmp/x.whl",
    ],
)
def test_a_local_path_in_constraints_fails_the_guard(tmp_path: Path, line: str) -> None:
    constraints = tmp_path / "constraints.txt"
    constraints.write_text(f"alembic==1.20.1\n{line}\nzipp==3.23.0\n")
    result = run_guard(constraints)
    assert result.returncode == 1
    assert f"{constraints}:2:" in result.stdout
    assert "alembic" not in result.stdout and "zipp" not in result.stdout


def test_a_local_path_in_pyproject_fails_the_guard(tmp_path: Path) -> None:
    pyproject = tmp_path / "pyproject.toml"
    pyproject.write_text(
        '[build-system]\nrequires = ["setuptools>=77"]\n\n'
        '[project]\nname = "x"\nversion = "1"\ndependencies = ["flask>=3.1,<4"]\n\n'
        '[project.optional-dependencies]\ntest = ["atheris @ file:///tmp/atheris.whl"]\n'
    )
    result = run_guard(pyproject)
    assert result.returncode == 1
    assert f"{pyproject}:10:" in result.stdout and "file: URL" in result.stdout


def test_plain_requirements_pass(tmp_path: Path) -> None:
    requirements = tmp_path / "requirements-dev.txt"
    requirements.write_text(
        "# pinned by make constraints\n"
        "psycopg[binary]==3.2.9\n"
        "huey>=2.5,<4  # queue\n"
        'tomli==2.0.1; python_version < "3.11"\n'
        "requests==2.32.3 \\\n"
        "    --hash=sha256:" + "0" * 64 + "\n"
    )
    result = run_guard(requirements)
    assert result.returncode == 0, result.stdout
