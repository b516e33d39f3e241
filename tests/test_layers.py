"""The layering DESIGN.md promises, checked on the source: no import circles, the core imports
nothing below it, and no module grows past 600 lines."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("chatd", "chatc")
MAX_LINES = 600
LOWER_FLOORS = ("chatd.history", "chatd.cluster", "chatd.backends", "chatd.cli", "chatd.workers", "chatd.config_file")


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}


def _run_time_imports(path: Path, known: set[str]) -> set[str]:
    """Modules of ours imported when ``path`` is imported: not those under ``if TYPE_CHECKING``
    nor those inside functions (imported when called, after every module is loaded)."""
    tree = ast.parse(path.read_text())
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                visit(node.orelse)
                continue
            if isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                found.add(node.module)
                found.update(f"{node.module}.{alias.name}" for alias in node.names)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
                visit(node.orelse)

    visit(tree.body)
    return {name for name in found if name in known}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _run_time_imports(path, known) - {name} for name, path in modules.items()}


def test_no_import_circles() -> None:
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    circles: list[list[str]] = []

    def walk(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for target in sorted(graph[name]):
            if state.get(target) == 1:
                circles.append([*stack[stack.index(target) :], target])
            elif target not in state:
                walk(target)
        stack.pop()
        state[name] = 2

    for name in sorted(graph):
        if name not in state:
            walk(name)
    # A package importing its own submodules (``chatd.core`` → ``chatd.core.hub``) is how
    # packages re-export; a circle through that edge alone is not a design circle.
    real = [circle for circle in circles if not all(b.startswith(a + ".") for a, b in itertools.pairwise(circle))]
    assert real == []


def test_the_core_and_the_protocol_import_nothing_below_them() -> None:
    graph = _graph()
    offending = {
        name: sorted(target for target in targets if target.startswith(LOWER_FLOORS))
        for name, targets in graph.items()
        if name.startswith(("chatd.core", "chatd.protocol"))
    }
    assert {name: targets for name, targets in offending.items() if targets} == {}


def test_chatc_uses_only_the_protocol_of_chatd() -> None:
    graph = _graph()
    offending = {
        name: sorted(t for t in targets if t.startswith("chatd") and not t.startswith("chatd.protocol"))
        for name, targets in graph.items()
        if name.startswith("chatc")
    }
    assert {name: targets for name, targets in offending.items() if targets} == {}


def test_no_module_over_600_lines() -> None:
    long = {
        name: lines
        for name, path in _modules().items()
        if (lines := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}
