"""No import circles inside the core: a static graph of every ``verticals`` import, function-level ones too."""

from __future__ import annotations

import ast
from pathlib import Path

import verticals

ROOT = Path(verticals.__file__).parent


def _module_name(path: Path) -> str:
    parts = ["verticals", *path.relative_to(ROOT).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in ROOT.rglob("*.py") if "_templates" not in p.parts}


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(anchor + ([base] if base else []))
                # `from . import x` and `from .pkg import mod` name submodules
                targets = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                           for alias in node.names]
            for target in targets:
                while target and target not in modules:  # `import verticals.x.y` -> the nearest module
                    target = target.rpartition(".")[0]
                if not target.startswith("verticals") or target == name:
                    continue
                graph[name].add(target)
                # importing a subpackage's module runs the subpackage's __init__ first
                parent = target.rpartition(".")[0]
                if parent not in ("", "verticals") and not name.startswith(parent + ".") and name != parent:
                    graph[name].add(parent)
    return graph


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = 2
        stack.pop()
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_graph_sees_the_imports_it_should():
    graph = _graph()
    assert "verticals.backbones" in graph["verticals.tasks.transformer"]  # module level
    assert "verticals.tasks" in graph["verticals._builtins"]


def test_no_import_circles():
    # the package root re-exports the public API, so every submodule is below it: leave it out
    graph = {name: edges - {"verticals"} for name, edges in _graph().items() if name != "verticals"}
    cycle = _cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])
