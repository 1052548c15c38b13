"""Measure how tangled the house is (issue 11), the same way before and after the refactor.

    python tools/house_metrics.py            # the table
    python tools/house_metrics.py --details  # plus every offender, file:line
    python tools/house_metrics.py --json     # machine-readable, for a before/after diff

Standard library only (ast), so it runs without the virtualenv. What each figure counts:

* import edges: one per import statement (``import a, b`` counts per name) from a module of one
  top-level unit of ``src/undersign`` to another; a unit is a subpackage (``enforcement``) or a
  top-level module (``cli``, ``config``, ``db``, ``demo``, ``serving``); the root
  ``undersign/__init__.py`` is ``(root)``. Function-local and ``TYPE_CHECKING`` imports count too
  (they are dependencies all the same; import-linter sees them as well).
* cycles: strongly connected components of that unit graph, and the pairs importing each other.
* function-local imports: import statements of an ``undersign`` module inside a function body
  under ``src/`` (``if TYPE_CHECKING:`` at module level is not function-local).
* private cross-imports: ``from undersign.m import _name`` in a module other than ``m``, and
  ``mod._name`` where ``mod`` is a name the file bound by importing an undersign module
  (``from undersign.emulator import rest`` ... ``rest._state()``). Dunders are public.
* emulator private reads: in ``emulator/*.py`` other than ``state.py``, attribute reads
  ``<expr>._x`` where ``_x`` is a private attribute or method of ``GitHubEmulator`` (assigned as
  ``self._x`` or defined as ``def _x`` in that class) and ``<expr>`` is not bare ``self``. This
  is an approximation: a different object with a same-named private attribute would be
  counted too (none exists today), and a read through ``getattr`` would not.
* ``type: ignore`` in tests: comment occurrences in ``tests/**/*.py``.
* live-server start-ups in tests: functions and fixtures outside ``tests/support/`` that construct
  ``LiveServer()`` (bind, settings naming its URL, OAuth client on the emulator, ``create_app``,
  start): each is one copy of that start-up sequence. Emulator start-ups (``EmulatorServer(``
  constructed in a test function) are counted on their own line. Plain ``http.server`` helpers
  (webhook receivers, a hostile page) are not app servers and are not counted.
* lease writers: functions under ``src/`` that write a lease column in an UPDATE or INSERT
  (a ``.values(...)``/constructor keyword ``lease_until``, ``locked_until``, ``lease_owner``,
  ``lock_owner``), or that read/write a lease row by a ``lease:``-prefixed key; grouped by
  module, they show how many places implement a row lease (``jobs/queue.py`` only gives a new
  job row its first lease). Nested functions that match count on their own.
* lease sequences: functions whose ``try``/``finally`` releases (a call named ``*unlock*`` or
  ``*release*`` in the ``finally``): the take / keep / release sequence written out by hand.
"""

from __future__ import annotations

import argparse
import ast
import json
import re
import sys
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "undersign"
LEASE_COLUMNS = {"lease_until", "locked_until", "lease_owner", "lock_owner"}
PRIVATE = re.compile(r"^_(?!_)")
TYPE_IGNORE = re.compile(r"#\s*type:\s*ignore(?:\[([^\]]*)\])?")


@dataclass
class Module:
    name: str
    rel: str  # path from the checkout's root, for file:line
    tree: ast.Module
    is_package: bool

    @property
    def unit(self) -> str:
        parts = self.name.split(".")
        return parts[1] if len(parts) > 1 else "(root)"


@dataclass
class Import:
    module: Module
    line: int
    target: str  # the undersign module (or package) imported from
    names: list[str]  # the names imported (empty for ``import a.b``)
    local: bool  # inside a function body


@dataclass
class Report:
    edges: dict[tuple[str, str], int] = field(default_factory=dict)
    cycles: list[list[str]] = field(default_factory=list)
    module_level_cycles: list[list[str]] = field(default_factory=list)
    mutual: list[tuple[str, str, int, int]] = field(default_factory=list)
    local_imports: list[str] = field(default_factory=list)
    private_src: list[str] = field(default_factory=list)
    private_tests: list[str] = field(default_factory=list)
    emulator_private: dict[str, int] = field(default_factory=dict)
    type_ignores: dict[str, int] = field(default_factory=dict)
    live_startups: list[str] = field(default_factory=list)
    emulator_startups: list[str] = field(default_factory=list)
    type_ignore_codes: dict[str, int] = field(default_factory=dict)
    lease_writers: dict[str, list[str]] = field(default_factory=dict)
    lease_sequences: list[str] = field(default_factory=list)


def load(root: Path, base: Path) -> list[Module]:
    """Every .py file under ``base`` parsed, named as its dotted module (from ``base``'s
    parent: ``src/undersign/db.py`` is ``undersign.db``, ``tests/conftest.py`` is
    ``tests.conftest``)."""
    modules = []
    for path in sorted(base.rglob("*.py")):
        if "migrations/versions" in path.as_posix() or "__pycache__" in path.parts:
            continue  # generated Alembic scripts: schema history, not structure
        parts = list(path.relative_to(base.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        rel = path.relative_to(root).as_posix()
        modules.append(Module(".".join(parts), rel, tree, is_package))
    return modules


def _resolve(module: Module, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.name.split(".")
    if not module.is_package:
        base.pop()
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _walk(node: ast.AST, in_function: bool = False) -> Iterator[tuple[ast.AST, bool]]:
    for child in ast.iter_child_nodes(node):
        yield child, in_function
        nested = in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        yield from _walk(child, nested)


def imports_of(module: Module, known: set[str]) -> list[Import]:
    """The undersign imports of one module. ``from pkg import sub`` targets ``pkg.sub`` when
    ``sub`` is a module, so ``from undersign import config`` is an edge to ``config``."""
    found = []
    for node, local in _walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == PACKAGE or alias.name.startswith(PACKAGE + "."):
                    found.append(Import(module, node.lineno, alias.name, [], local))
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            if target != PACKAGE and not target.startswith(PACKAGE + "."):
                continue
            # One Import per target module: ``from undersign.web import auth, main`` is one
            # statement (one function-local import) but an edge to each submodule's unit.
            plain = [a.name for a in node.names if f"{target}.{a.name}" not in known]
            subs = [a.name for a in node.names if f"{target}.{a.name}" in known]
            if plain or not subs:
                found.append(Import(module, node.lineno, target, plain, local))
            for sub in subs:
                found.append(Import(module, node.lineno, f"{target}.{sub}", [], local))
    return found


def unit_of(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else "(root)"


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm; components of more than one unit, sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    result: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                result.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return sorted(result)


def emulator_private_members(modules: list[Module]) -> set[str]:
    state = next(m for m in modules if m.name == f"{PACKAGE}.emulator.state")
    cls = next(
        n for n in state.tree.body if isinstance(n, ast.ClassDef) and n.name == "GitHubEmulator"
    )
    members = set()
    for node in ast.walk(cls):
        if isinstance(node, ast.FunctionDef) and PRIVATE.match(node.name):
            members.add(node.name)
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            if (
                isinstance(target, ast.Attribute)
                and isinstance(target.value, ast.Name)
                and target.value.id == "self"
                and PRIVATE.match(target.attr)
            ):
                members.add(target.attr)
    return members


def private_uses(module: Module, imports: list[Import], known: set[str]) -> list[str]:
    """Private names taken from another module: imported by name, or read off an imported
    module object."""
    found = []
    bound_modules: set[str] = set()
    for imp in imports:
        for name in imp.names:
            if PRIVATE.match(name) and imp.target != module.name:
                found.append(f"{module.rel}:{imp.line} from {imp.target} import {name}")
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom):
            target = _resolve(module, node)
            for alias in node.names:
                if f"{target}.{alias.name}" in known:
                    bound_modules.add(alias.asname or alias.name)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(PACKAGE + ".") and alias.asname:
                    bound_modules.add(alias.asname)
    for node in ast.walk(module.tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in bound_modules
            and PRIVATE.match(node.attr)
        ):
            found.append(f"{module.rel}:{node.lineno} {node.value.id}.{node.attr}")
    return found


def _function_nodes(tree: ast.AST) -> Iterator[ast.FunctionDef | ast.AsyncFunctionDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            yield node


def _calls(node: ast.AST) -> Iterator[ast.Call]:
    for child in ast.walk(node):
        if isinstance(child, ast.Call):
            yield child


def _call_name(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def startups(test_modules: list[Module], constructor: str) -> list[str]:
    """Test functions (outermost) that construct ``constructor(...)`` themselves."""
    found = []
    for module in test_modules:
        if module.rel.startswith("tests/support/"):
            continue
        for fn in module.tree.body:  # outermost functions: a nested match is the same copy
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef) and any(
                _call_name(c) == constructor for c in _calls(fn)
            ):
                found.append(f"{module.rel}:{fn.lineno} {fn.name}")
            elif isinstance(fn, ast.ClassDef):
                for method in _function_nodes(fn):
                    if any(_call_name(c) == constructor for c in _calls(method)):
                        found.append(f"{module.rel}:{method.lineno} {fn.name}.{method.name}")
    return sorted(set(found))


def lease_writers(modules: list[Module]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = defaultdict(list)
    for module in modules:
        if module.rel.endswith("models.py"):
            continue
        for fn in _function_nodes(module.tree):
            writes = (
                any(kw.arg in LEASE_COLUMNS for call in _calls(fn) for kw in call.keywords)
                or any(
                    isinstance(n, ast.Constant)
                    and isinstance(n.value, str)
                    and n.value.startswith("lease:")
                    for n in ast.walk(fn)
                )
                or any(isinstance(n, ast.Name) and n.id.endswith("LEASE_KEY") for n in ast.walk(fn))
            )
            if writes:
                found[module.rel].append(f"{fn.name}:{fn.lineno}")
    return {k: sorted(set(v), key=lambda s: int(s.rsplit(":", 1)[1])) for k, v in found.items()}


def lease_sequences(modules: list[Module]) -> list[str]:
    """Functions that write out take / keep / release by hand: a ``try`` whose ``finally``
    calls something named ``*unlock*`` or ``*release*``. A context manager holding the
    sequence counts once (itself); each ``with`` that uses it does not count."""
    found = []
    for module in modules:
        for fn in _function_nodes(module.tree):
            for node in ast.walk(fn):
                if isinstance(node, ast.Try) and any(
                    re.search(r"unlock|release", _call_name(call))
                    for stmt in node.finalbody
                    for call in _calls(stmt)
                ):
                    found.append(f"{module.rel}:{fn.lineno} {fn.name}")
                    break
    return found


def measure(root: Path = ROOT) -> Report:
    """Every figure for the checkout at ``root`` (its ``src/undersign`` and ``tests``)."""
    tests = root / "tests"
    src_modules = load(root, root / "src" / PACKAGE)
    test_modules = load(root, tests)
    known = {m.name for m in src_modules}
    report = Report()

    edges: dict[tuple[str, str], int] = defaultdict(int)
    module_level: dict[str, set[str]] = defaultdict(set)
    for module in src_modules:
        imports = imports_of(module, known)
        for imp in imports:
            target_unit = unit_of(imp.target)
            if target_unit != module.unit:
                edges[(module.unit, target_unit)] += 1
                if not imp.local:
                    module_level[module.unit].add(target_unit)
        local: dict[int, list[str]] = defaultdict(list)  # per statement (its line)
        for imp in imports:
            if imp.local:
                local[imp.line].append(
                    imp.target + (f" ({', '.join(imp.names)})" if imp.names else "")
                )
        for line, what in sorted(local.items()):
            report.local_imports.append(f"{module.rel}:{line} {'; '.join(what)}")
        report.private_src += private_uses(module, imports, known)
    for module in test_modules:
        report.private_tests += private_uses(module, imports_of(module, known), known)
    report.edges = dict(sorted(edges.items()))

    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    report.cycles = strongly_connected(graph)
    report.module_level_cycles = strongly_connected(module_level)
    report.mutual = sorted(
        (a, b, n, edges[(b, a)]) for (a, b), n in edges.items() if a < b and (b, a) in edges
    )

    members = emulator_private_members(src_modules)
    for module in src_modules:
        if not module.name.startswith(f"{PACKAGE}.emulator.") or module.name.endswith(".state"):
            continue
        count = 0
        for node in ast.walk(module.tree):
            if (
                isinstance(node, ast.Attribute)
                and node.attr in members
                and not (isinstance(node.value, ast.Name) and node.value.id == "self")
            ):
                count += 1
        if count:
            report.emulator_private[module.rel] = count

    codes: dict[str, int] = defaultdict(int)
    for path in sorted(tests.rglob("*.py")):
        found = TYPE_IGNORE.findall(path.read_text(encoding="utf-8"))
        if found:
            report.type_ignores[path.relative_to(root).as_posix()] = len(found)
        for code in found:
            for one in (code or "(bare)").split(","):
                codes[one.strip()] += 1
    report.type_ignore_codes = dict(sorted(codes.items(), key=lambda kv: -kv[1]))

    report.live_startups = startups(test_modules, "LiveServer")
    report.emulator_startups = startups(test_modules, "EmulatorServer")
    report.lease_writers = lease_writers(src_modules)
    report.lease_sequences = lease_sequences(src_modules)
    return report


def summary(report: Report) -> list[tuple[str, int]]:
    return [
        ("import edges between top-level units (statements)", sum(report.edges.values())),
        ("unit pairs that import each other", len(report.mutual)),
        ("units caught in an import cycle", sum(len(c) for c in report.cycles)),
        (
            "units in a cycle of module-level imports only",
            sum(len(c) for c in report.module_level_cycles),
        ),
        ("function-local imports of undersign modules (src)", len(report.local_imports)),
        ("private names taken from another module (src)", len(report.private_src)),
        ("private names taken from another module (tests)", len(report.private_tests)),
        (
            "GitHubEmulator private reads from other emulator modules",
            sum(report.emulator_private.values()),
        ),
        ("'type: ignore' comments in tests", sum(report.type_ignores.values())),
        ("live-server start-up copies in tests", len(report.live_startups)),
        ("emulator start-up copies in tests", len(report.emulator_startups)),
        ("modules implementing a row lease (src)", len(report.lease_writers)),
        ("functions writing a lease (src)", sum(len(v) for v in report.lease_writers.values())),
        ("lease take/keep/release written out by hand (src)", len(report.lease_sequences)),
    ]


def print_table(report: Report, details: bool) -> None:
    rows = summary(report)
    width = max(len(label) for label, _ in rows)
    print(f"{'figure'.ljust(width)}  count")
    print(f"{'-' * width}  -----")
    for label, value in rows:
        print(f"{label.ljust(width)}  {value:>5}")

    print("\nImport cycles (strongly connected units):")
    for component in report.cycles:
        print("  " + " <-> ".join(component))
    print("\nThe same, module-level imports only (function-local ones hide the rest):")
    for component in report.module_level_cycles:
        print("  " + " <-> ".join(component))
    print("\nUnits importing each other (a -> b statements / b -> a statements):")
    for a, b, ab, ba in report.mutual:
        print(f"  {a} -> {b}: {ab}    {b} -> {a}: {ba}")
    print("\nImport edges (importer -> imported: statements):")
    by_importer: dict[str, list[str]] = defaultdict(list)
    for (a, b), n in report.edges.items():
        by_importer[a].append(f"{b} {n}")
    for a, targets in by_importer.items():
        print(f"  {a} -> " + ", ".join(targets))
    sections: list[tuple[str, list[str]]] = [
        (
            "GitHubEmulator private reads by module",
            [f"{path}: {n}" for path, n in report.emulator_private.items()],
        ),
        (
            "Lease writers by module",
            [f"{path}: {', '.join(fns)}" for path, fns in report.lease_writers.items()],
        ),
        ("Lease take/keep/release sequences written out", report.lease_sequences),
        ("Live-server start-ups in tests", report.live_startups),
        ("Emulator start-ups in tests", report.emulator_startups),
        (
            "'type: ignore' in tests by error code",
            [", ".join(f"{code} {n}" for code, n in report.type_ignore_codes.items())],
        ),
    ]
    if details:
        sections += [
            ("Function-local imports of undersign modules", report.local_imports),
            ("Private names from another module (src)", report.private_src),
            ("Private names from another module (tests)", report.private_tests),
            (
                "'type: ignore' in tests by file",
                [f"{path}: {n}" for path, n in report.type_ignores.items()],
            ),
        ]
    for title, lines in sections:
        print(f"\n{title}:")
        for line in lines:
            print(f"  {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--details", action="store_true", help="list every offender")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.add_argument("--root", type=Path, default=ROOT, help="another checkout to measure")
    args = parser.parse_args(argv)
    report = measure(args.root.resolve())
    if args.json:
        data: dict[str, object] = dict(summary(report))
        data["details"] = {
            "edges": {f"{a} -> {b}": n for (a, b), n in report.edges.items()},
            "cycles": report.cycles,
            "module_level_cycles": report.module_level_cycles,
            "local_imports": report.local_imports,
            "private_src": report.private_src,
            "private_tests": report.private_tests,
            "emulator_private": report.emulator_private,
            "type_ignores": report.type_ignores,
            "live_startups": report.live_startups,
            "emulator_startups": report.emulator_startups,
            "type_ignore_codes": report.type_ignore_codes,
            "lease_writers": report.lease_writers,
            "lease_sequences": report.lease_sequences,
        }
        json.dump(data, sys.stdout, indent=2)
        print()
    else:
        print_table(report, args.details)
    return 0


if __name__ == "__main__":
    sys.exit(main())
