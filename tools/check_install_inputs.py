"""Fail when an install input names something only this machine has.

A requirement such as ``atheris @ file:///tmp/x.whl`` installs here and fails on every other
machine (and CI, which runs here, cannot tell). Every line of the install inputs must name a
package the registry serves: ``name==version``, ``name>=x``, ``name[extra]``, never a path or a
``file:`` URL, and no option (``-e``, ``-f``, ``--find-links``, ``-r`` to a local index...) that
points pip at local files.

Usage: ``python tools/check_install_inputs.py [FILE ...]``; with no file, the project's own
inputs (``constraints*.txt``, ``requirements*.txt`` anywhere in the tree, ``pyproject.toml``).
Exit 1 and one line per problem when any is found.
"""

from __future__ import annotations

import re
import sys
import tomllib
from collections.abc import Iterable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SKIP_DIRS = {".venv", ".git", "node_modules", ".mypy_cache", ".ruff_cache", ".pytest_cache"}

# A requirement as the registry serves it: a name, optional extras, optional version clauses,
# optional environment marker. Anything else (a URL, a path, an option) is refused.
NAME = r"[A-Za-z0-9][A-Za-z0-9._-]*"
REQUIREMENT = re.compile(
    rf"^{NAME}(\[[A-Za-z0-9._,\s-]+\])?"  # name[extras]
    r"\s*(?:(?:===|==|~=|!=|<=|>=|<|>)\s*[A-Za-z0-9.*+!_-]+\s*,?\s*)*"  # version clauses
    r"(?:;.*)?$"  # environment marker
)
# An option line that keeps pip on the registry (hashes pin what the registry serves).
HARMLESS_OPTION = re.compile(r"^--hash=sha256:[0-9a-f]{64}$")


def default_inputs(root: Path = ROOT) -> list[Path]:
    found = [root / "pyproject.toml"] if (root / "pyproject.toml").exists() else []
    for pattern in ("constraints*.txt", "requirements*.txt"):
        for path in root.rglob(pattern):
            if not SKIP_DIRS.intersection(path.relative_to(root).parts):
                found.append(path)
    return sorted(found)


def check_requirement(text: str) -> str | None:
    """Why ``text`` (one requirement, comments stripped) is not a plain registry requirement."""
    if "file:" in text.lower():
        return "a file: URL names a file on this machine"
    if "://" in text or " @ " in text or text.startswith("@"):
        return "a direct URL bypasses the registry (and its pins)"
    if text.startswith("-"):
        return f"pip option {text.split()[0]!r} in an install input (local files or indexes)"
    if re.search(r"(^|[\s=])(\.{0,2}/|~/)", text) or text.endswith((".whl", ".tar.gz", ".zip")):
        return "a local path"
    if not REQUIREMENT.match(text):
        return "not a plain `name==version` requirement"
    return None


def _requirement_lines(path: Path) -> Iterator[tuple[int, str]]:
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        text = re.sub(r"(^|\s)#.*$", "", raw).strip()
        if text.endswith("\\"):
            text = text[:-1].strip()
        parts = [p for p in text.split() if not HARMLESS_OPTION.match(p)]
        if parts:
            yield number, " ".join(parts)


def _pyproject_requirements(path: Path) -> Iterator[tuple[int, str]]:
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    lines = path.read_text(encoding="utf-8").splitlines()
    project = data.get("project", {})
    requirements: list[str] = list(data.get("build-system", {}).get("requires", []))
    requirements += project.get("dependencies", [])
    for extra in project.get("optional-dependencies", {}).values():
        requirements += extra
    for group in data.get("dependency-groups", {}).values():
        requirements += [r for r in group if isinstance(r, str)]
    for requirement in requirements:
        number = next((i for i, line in enumerate(lines, 1) if requirement in line), 0)
        yield number, requirement.strip()


def problems(paths: Iterable[Path]) -> list[str]:
    found: list[str] = []
    for path in paths:
        read = _pyproject_requirements if path.suffix == ".toml" else _requirement_lines
        try:
            entries = list(read(path))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
            found.append(f"{path}: cannot be read: {error}")
            continue
        for number, text in entries:
            reason = check_requirement(text)
            if reason:
                found.append(f"{path}:{number}: {text!r}: {reason}")
    return found


def main(argv: list[str]) -> int:
    paths = [Path(arg) for arg in argv] or default_inputs()
    found = problems(paths)
    for line in found:
        print(line)
    if found:
        print(
            "install inputs must name only packages the registry serves (name==version); "
            "regenerate constraints.txt with `make constraints`"
        )
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
