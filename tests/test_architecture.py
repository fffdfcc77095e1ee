"""The shape of the code: dependencies point one way, modules and classes stay small.

The import graph is read from the source with ``ast`` (every import counts: at the top of a
module, inside a function, or under ``if TYPE_CHECKING``), over ``jobmaster/`` and the
dashboard's package. Importing a submodule is an edge to that submodule only, not to the
packages above it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

from tests.conftest import ROOT

MAX_MODULE_LINES = 450
MAX_CLASS_LINES = 300
PACKAGES = {
    "jobmaster": ROOT / "jobmaster",
    "jobmaster_dashboard": ROOT / "dashboard" / "jobmaster_dashboard",
}
CORE = "jobmaster"
DASHBOARD = "jobmaster_dashboard"

# Known offenders, being reshaped at the moment: each entry exempts one module (by its path
# from the repository's root) from the checks below. A cycle is exempt only when every module
# in it is listed. Remove entries as the modules they name are split; the list should be empty.
KNOWN_OFFENDERS: dict[str, str] = {}


def module_name(package: str, root: Path, path: Path) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    """Every module of the packages, by dotted name."""
    found: dict[str, Path] = {}
    for package, root in PACKAGES.items():
        for path in sorted(root.rglob("*.py")):
            found[module_name(package, root, path)] = path
    return found


def imported(name: str, path: Path, known: set[str]) -> Iterator[str]:
    """The modules of ``known`` that module ``name`` imports, anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from package import module`` imports the module; ``from module import name``
            # imports the module that holds the name
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        else:
            continue
        for target in targets:
            while target and target not in known:
                target = target.rpartition(".")[0]  # ``import a.b.c`` where c is a name
            if target and target != name:
                yield target


def import_graph() -> dict[str, set[str]]:
    found = modules()
    known = set(found)
    return {name: set(imported(name, path, known)) for name, path in found.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component: list[str] = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                components.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return components


def relative(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def test_the_core_never_imports_the_dashboard() -> None:
    graph = import_graph()
    wrong = {
        f"{source} imports {target}"
        for source, targets in graph.items()
        if source.split(".")[0] == CORE
        for target in targets
        if target.split(".")[0] == DASHBOARD
    }
    assert not wrong, sorted(wrong)


def test_no_import_cycles() -> None:
    paths = modules()
    found = [
        component
        for component in cycles(import_graph())
        if not all(relative(paths[name]) in KNOWN_OFFENDERS for name in component)
    ]
    assert not found, "import cycles: " + "; ".join(" <-> ".join(c) for c in found)


def test_modules_stay_small() -> None:
    large = {
        relative(path): lines
        for path in modules().values()
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
        and relative(path) not in KNOWN_OFFENDERS
    }
    assert not large, f"modules over {MAX_MODULE_LINES} lines: {large}"


def test_classes_stay_small() -> None:
    large: dict[str, int] = {}
    for path in modules().values():
        if relative(path) in KNOWN_OFFENDERS:
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                lines = node.end_lineno - node.lineno + 1
                if lines > MAX_CLASS_LINES:
                    large[f"{relative(path)}:{node.name}"] = lines
    assert not large, f"classes over {MAX_CLASS_LINES} lines: {large}"


def test_the_checks_see_a_cycle_and_a_type_only_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "a.py").write_text("from pkg.b import B\n")
    (package / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\nB = 1\n"
    )
    (package / "c.py").write_text("from . import b\n")
    found = {module_name("pkg", package, p): p for p in package.glob("*.py")}
    graph = {name: set(imported(name, path, set(found))) for name, path in found.items()}
    assert graph == {"pkg": set(), "pkg.a": {"pkg.b"}, "pkg.b": {"pkg.a"}, "pkg.c": {"pkg.b"}}
    assert cycles(graph) == [["pkg.a", "pkg.b"]]
