"""The layer contract (.importlinter, run by `make lint`) and the house metrics (issue 11).

The contract passes on the tree as it is, with today's upward imports listed as a ratchet; these
tests prove it is not a rubber stamp: on a throwaway copy of the package, one planted upward or
sideways import, a new top-level module without a layer, the emulator importing the product, or
a ratchet entry whose import has gone each make ``lint-imports`` fail.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).parent / "lint-imports"
CONFIG = ROOT / ".importlinter"
METRICS = ROOT / "tools" / "house_metrics.py"
# Only the Python files matter to both tools; templates, assets and fixtures are left behind.
NOT_CODE = shutil.ignore_patterns("__pycache__", "*.pyc", "static", "templates", "fixtures")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` as `make lint` runs it, on the package found under ``root/src``."""
    env = {**os.environ, "PYTHONPATH": str(root / "src"), "COLUMNS": "400", "NO_COLOR": "1"}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--no-logo", str(root / ".importlinter")],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """A throwaway checkout: the package's modules, the tests' modules and the contract."""
    shutil.copytree(ROOT / "src" / "undersign", tmp_path / "src" / "undersign", ignore=NOT_CODE)
    shutil.copytree(ROOT / "tests", tmp_path / "tests", ignore=NOT_CODE)
    shutil.copy(CONFIG, tmp_path / ".importlinter")
    return tmp_path


def plant(root: Path, module: str, code: str) -> None:
    """Append ``code`` to ``undersign/<module>.py`` in the copy (created when missing)."""
    path = root / "src" / "undersign" / f"{module}.py"
    before = path.read_text() if path.exists() else '"""Planted by tests/unit/test_layers.py."""\n'
    path.write_text(before + "\n" + code + "\n")


def test_the_contract_holds_on_the_tree() -> None:
    done = lint_imports(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "0 broken" in done.stdout


def test_the_copy_passes_until_something_is_planted(copy: Path) -> None:
    """The copy is really what the planted tests analyse (not the installed package)."""
    done = lint_imports(copy)
    assert done.returncode == 0, done.stdout + done.stderr
    plant(copy, "config", "import undersign.web")
    assert lint_imports(copy).returncode == 1


@pytest.mark.parametrize(
    ("module", "code", "expected"),
    [
        pytest.param(
            "config",
            "from undersign.web import create_app",
            "undersign.config is not allowed to import undersign.web",
            id="leaf-imports-the-web-layer",
        ),
        pytest.param(
            "enforcement/policy",
            "from undersign.web.context import runtime",
            "undersign.enforcement is not allowed to import undersign.web",
            id="domain-imports-the-web-layer",
        ),
        pytest.param(
            "accounts/service",
            "from undersign.auth.redirects import safe_next_path",
            "undersign.accounts is not allowed to import undersign.auth",
            id="independent-siblings",
        ),
        pytest.param(
            # jobs -> enforcement has ratchet entries, but only for the pairs main had.
            "jobs/queue",
            "def later() -> None:\n    from undersign.enforcement import triggers",
            "undersign.jobs.queue -> undersign.enforcement.triggers",
            id="new-pair-in-a-ratcheted-direction",
        ),
        pytest.param(
            "github/client",
            "from undersign.jobs.queue import new_job",
            "undersign.github is not allowed to import undersign.jobs",
            id="github-imports-the-queue",
        ),
        pytest.param(
            "toolbox",
            "import undersign.config",
            "undersign.toolbox",
            id="new-top-level-module-without-a-layer",
        ),
        pytest.param(
            "emulator/models",
            "from undersign.config import Settings",
            "undersign.emulator is not allowed to import undersign.config",
            id="emulator-imports-the-product",
        ),
        pytest.param(
            "enforcement/report",
            "from undersign.emulator import GitHubEmulator",
            "undersign.enforcement is not allowed to import undersign.emulator",
            id="product-imports-the-emulator",
        ),
    ],
)
def test_a_planted_import_breaks_the_contract(
    copy: Path, module: str, code: str, expected: str
) -> None:
    plant(copy, module, code)
    done = lint_imports(copy)
    assert done.returncode == 1, done.stdout
    assert expected in done.stdout


def test_the_contracts_have_no_exception_list() -> None:
    """The ratchet of upward imports is empty and gone: no contract may ignore an import (an
    exception would let the next upward import in unnoticed)."""
    config = (ROOT / ".importlinter").read_text()
    assert "ignore_imports" not in config
    assert "exhaustive = true" in config


def metrics(root: Path) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, str(METRICS), "--json", "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return dict(json.loads(done.stdout))


def test_house_metrics_count_what_is_planted(copy: Path) -> None:
    """tools/house_metrics.py sees one more function-local import, private cross-import,
    edge and mutual pair for what is planted in the copy (and config joins a cycle), and
    nothing else changes."""
    before = metrics(copy)
    plant(
        copy,
        "config",
        "def planted() -> object:\n"
        "    from undersign.web import csrf\n"
        "    from undersign.db import _is_sqlite_file\n"
        "    return csrf, _is_sqlite_file",
    )
    after = metrics(copy)
    changed = {k: (before[k], after[k]) for k in before if k != "details" and before[k] != after[k]}
    local = "function-local imports of undersign modules (src)"
    private = "private names taken from another module (src)"
    edges = "import edges between top-level units (statements)"
    pairs = "unit pairs that import each other"
    # config imports nothing of undersign, so the planted config -> web import (web imports
    # config) also puts config, and what lies between, in an import cycle.
    cycle = "units caught in an import cycle"
    assert set(changed) == {local, private, edges, pairs, cycle}, changed
    assert int(str(after[cycle])) > int(str(before[cycle]))
    for figure in (private, pairs):
        assert after[figure] == int(str(before[figure])) + 1
    for figure in (local, edges):
        assert after[figure] == int(str(before[figure])) + 2
    details = after["details"]
    assert isinstance(details, dict)
    assert any(
        line.startswith("src/undersign/config.py:") and "_is_sqlite_file" in line
        for line in details["private_src"]
    )
