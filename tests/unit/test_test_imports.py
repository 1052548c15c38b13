"""No test module imports another test module: what tests share lives in ``tests/support/``.

Importing a ``test_*`` module from another runs its module-level code (and registers its
fixtures) a second time under another name, and ties one file's private helpers to another
file's tests. This scans every Python file under ``tests/`` and names each such import; the
planted cases prove the scan is not a rubber stamp."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

TESTS = Path(__file__).resolve().parents[1]


def _is_test_module(dotted: str) -> bool:
    return any(part.startswith("test_") for part in dotted.split("."))


def _package_of(path: Path, root: Path) -> list[str]:
    """The dotted package of ``path``, counted from the folder holding ``root``."""
    return list(path.relative_to(root.parent).parent.parts)


def _imported(node: ast.Import | ast.ImportFrom, package: list[str]) -> list[str]:
    """Every dotted name ``node`` may import (``from a import b`` may import module ``a.b``)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = package[: len(package) - (node.level - 1)] if node.level else []
    module = ".".join([*base, *([node.module] if node.module else [])])
    return [module] + [f"{module}.{alias.name}" for alias in node.names]


def imports_of_test_modules(root: Path) -> list[str]:
    """``file:line: module`` for each import, in a file under ``root``, of a ``test_*`` module."""
    found: list[str] = []
    for path in sorted(root.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        package = _package_of(path, root)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Import | ast.ImportFrom):
                continue
            offending = next(
                (name for name in _imported(node, package) if _is_test_module(name)), None
            )
            if offending is not None:
                found.append(f"{path.relative_to(root.parent)}:{node.lineno}: {offending}")
    return found


def test_no_test_module_imports_another() -> None:
    found = imports_of_test_modules(TESTS)
    assert found == [], "move what is shared into tests/support/:\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("line", "named"),
    [
        ("from tests.functional.test_signing import publish", "tests.functional.test_signing"),
        ("from tests.functional import test_signing", "tests.functional.test_signing"),
        ("import tests.unit.test_migrations", "tests.unit.test_migrations"),
        ("from .test_signing import publish", "tests.functional.test_signing"),
        ("from test_signing import publish", "test_signing"),
    ],
)
def test_each_form_of_such_an_import_is_found(tmp_path: Path, line: str, named: str) -> None:
    root = tmp_path / "tests"
    (root / "functional").mkdir(parents=True)
    (root / "functional" / "test_planted.py").write_text(f"{line}\n", encoding="utf-8")
    assert imports_of_test_modules(root) == [f"tests/functional/test_planted.py:1: {named}"]


def test_support_modules_and_the_library_are_not_test_modules(tmp_path: Path) -> None:
    root = tmp_path / "tests"
    (root / "functional").mkdir(parents=True)
    (root / "functional" / "test_planted.py").write_text(
        "import pytest\nfrom tests.support.pages import csrf_token\nfrom undersign import cli\n",
        encoding="utf-8",
    )
    assert imports_of_test_modules(root) == []
