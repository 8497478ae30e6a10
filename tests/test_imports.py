"""No import circles inside the core: a static graph of every ``verticals`` import, function-level ones too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
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
    assert "verticals.backbones.loading" in graph["verticals.tasks.transformer"]  # module level
    assert "verticals.tasks" in graph["verticals.plugins.builtins"]


def test_no_import_circles():
    # the package root re-exports the public API, so every submodule is below it: leave it out
    graph = {name: edges - {"verticals"} for name, edges in _graph().items() if name != "verticals"}
    cycle = _cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])


# ---- the layers (issue 26): dependencies point one way ----------------------------------------------------------
# CLI and delivery -> public API -> tasks -> trainers/heads/backbones/data/bundles/plugin contract -> config/errors.
# A module may import modules of its own layer or below, never above. Longest prefix wins.
LAYERS: dict[str, int] = {
    "verticals.errors": 0, "verticals._version": 0, "verticals.config": 0, "verticals.metrics": 0,
    "verticals.runtime": 0, "verticals.console": 0,
    "verticals.plugins": 1, "verticals.data": 1, "verticals.bundles": 1, "verticals.backbones": 1,
    "verticals.heads": 1, "verticals.trainers": 1,
    "verticals.tasks": 2, "verticals.plugins.builtins": 2, "verticals.plugins.options": 2,
    "verticals.api": 3, "verticals.predictor": 3, "verticals.distill": 3, "verticals.testing": 3, "verticals": 3,
    "verticals.delivery": 4, "verticals.scale": 4, "verticals.authoring": 4, "verticals.conformance": 4,
    "verticals.operate": 4, "verticals.workshop": 4, "verticals._compat": 4,
    "verticals.cli": 5, "verticals.__main__": 5,
}
LAYER_NAMES = ["config/errors/metrics", "components", "tasks", "public API", "delivery", "CLI"]


def layer(module: str) -> int:
    parts = module.split(".")
    for i in range(len(parts), 0, -1):
        if ".".join(parts[:i]) in LAYERS:
            return LAYERS[".".join(parts[:i])]
    raise AssertionError(f"{module} is in no layer: add its sub-package to LAYERS")


def test_every_module_has_a_layer():
    for name in _modules():
        layer(name)


def test_dependencies_point_down():
    upward = []
    for name, targets in _graph().items():
        for target in targets - {"verticals"}:  # the root re-exports the public API: every module is below it
            if layer(target) > layer(name):
                upward.append(f"{name} ({LAYER_NAMES[layer(name)]}) imports {target} ({LAYER_NAMES[layer(target)]})")
    assert not upward, "imports that point up:\n" + "\n".join(sorted(upward))


def test_the_tree_shows_the_architecture():
    top = sorted(p.name for p in ROOT.glob("*.py"))
    assert len(top) <= 12, f"{len(top)} modules directly in verticals/: {top}"
    sources = [*ROOT.rglob("*.py"), *PACKS_ROOT.glob("*/src/**/*.py")]
    too_long = {p.name if p.is_relative_to(ROOT) else str(p.relative_to(PACKS_ROOT)): n for p in sources
                if (n := len(p.read_text(encoding="utf-8").splitlines())) > 450}
    assert not too_long, f"modules over 450 lines: {too_long}"


def test_documented_old_module_paths_still_import():
    import importlib

    for old, new in [("verticals.engines", "verticals.backbones.engines"),
                     ("verticals.embeddings", "verticals.backbones.embeddings"),
                     ("verticals.retrieval", "verticals.backbones.retrieval"),
                     ("verticals.streaming", "verticals.scale.streaming"),
                     ("verticals.ray_scoring", "verticals.scale.ray_scoring")]:
        assert importlib.import_module(old) is importlib.import_module(new)
    from verticals.backbones import check_max_length  # noqa: F401
    from verticals.data import RawRecord, records_from  # noqa: F401


# ---- packs: no circle, no other pack, only the documented core ----------------------------------------------------
PACKS_ROOT = Path(__file__).resolve().parents[1] / "plugins"


def _pack_graph(src: Path) -> tuple[str, dict[str, set[str]], set[str]]:
    (package_dir,) = [p for p in src.iterdir() if p.is_dir() and (p / "__init__.py").exists()]
    package = package_dir.name
    modules = {package + "." + ".".join(p.relative_to(package_dir).with_suffix("").parts).removesuffix(".__init__")
               .removesuffix("__init__").rstrip("."): p for p in package_dir.rglob("*.py")}
    modules = {name.rstrip("."): path for name, path in modules.items()}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    external: set[str] = set()
    for name, path in modules.items():
        pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.level:
                anchor = pkg.split(".")[: len(pkg.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
                for alias in node.names:
                    target = f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base
                    if target in modules and target != name:
                        graph[name].add(target)
            elif isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                external.update(n for n in names if n.startswith("verticals"))
    return package, graph, external


@pytest.mark.parametrize("pack", sorted(p.name for p in PACKS_ROOT.iterdir() if (p / "src").is_dir()))
def test_packs_have_no_circles_and_import_no_other_pack(pack):
    package, graph, external = _pack_graph(PACKS_ROOT / pack / "src")
    graph = {name: edges - {package} for name, edges in graph.items() if name != package}
    cycle = _cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle or [])
    others = {name for name in external if name.split(".")[0] not in ("verticals", package)}
    assert not others, f"{pack} imports another pack: {others}"
    for name in external:
        if name.startswith("verticals.") or name == "verticals":
            assert layer(name) <= LAYERS["verticals"], f"{pack} imports {name}, above the public API"
