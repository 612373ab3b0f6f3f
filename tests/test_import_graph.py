"""The module-level import graph of ``privis``: no circle, and the layering of DESIGN.md ("Import direction").

Built with ``ast`` from the ``import privis...`` / ``from privis... import`` statements at the top level of
every module under ``src/privis`` (including those under ``if``/``try`` at top level); imports inside
functions are deferred on purpose and are not counted. Importing ``privis.a.b`` also runs the package
``privis.a``, so an edge goes to every package on the way (except the importer's own packages, which are
already being imported).
"""

from __future__ import annotations

import ast
from pathlib import Path

import privis

ROOT = Path(privis.__file__).parent

#: DESIGN.md: cli, serve, experiments -> engine, attacks, methods -> latent, identity, detectors -> models,
#: metrics, privacy -> data. A package may import its own layer and the layers below, never one above.
LAYERS = (("cli", "serve", "experiments"), ("engine", "attacks", "methods"), ("latent", "identity", "detectors"),
          ("models", "metrics", "privacy"), ("data",))
LAYER = {package: depth for depth, packages in enumerate(LAYERS) for package in packages}


def _module_names() -> dict[str, Path]:
    modules = {}
    for path in ROOT.rglob("*.py"):
        parts = ["privis", *path.relative_to(ROOT).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


def _top_level_statements(body: list[ast.stmt]) -> list[ast.stmt]:
    out: list[ast.stmt] = []
    for node in body:
        out.append(node)
        if isinstance(node, ast.If):
            out += _top_level_statements(node.body) + _top_level_statements(node.orelse)
        elif isinstance(node, ast.Try):
            out += _top_level_statements(node.body) + _top_level_statements(node.orelse)
            for handler in node.handlers:
                out += _top_level_statements(handler.body)
    return out


def import_graph() -> dict[str, set[str]]:
    """Module -> the privis modules (and packages) its top-level imports run."""
    modules = _module_names()

    def known(name: str) -> str:
        while name not in modules:
            name = name.rpartition(".")[0]
        return name

    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        targets: set[str] = set()
        for node in _top_level_statements(ast.parse(path.read_text(), str(path)).body):
            if isinstance(node, ast.Import):
                targets |= {known(a.name) for a in node.names if a.name.split(".")[0] == "privis"}
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "privis":
                assert node.module is not None
                for alias in node.names:  # ``from privis.a import b`` imports the module privis.a.b when it is one
                    full = f"{node.module}.{alias.name}"
                    targets.add(full if full in modules else known(node.module))
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                raise AssertionError(f"{path}: relative import; privis imports by absolute name")
        own = {".".join(module.split(".")[:i]) for i in range(1, module.count(".") + 1)}
        edges = set()
        for target in targets:
            parts = target.split(".")
            edges |= {".".join(parts[:i]) for i in range(2, len(parts) + 1)} - own
        graph[module] = edges - {module}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One circle of ``graph`` as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt, path)):
                return found
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node, [])):
            return found
    return None


def test_the_cycle_finder_finds_a_circle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"d": {"b"}, "b": {"c"}, "c": {"b"}}) == ["b", "c", "b"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_graph_sees_top_level_imports_only() -> None:
    graph = import_graph()
    assert "privis.engine.core" in graph["privis.engine.run"]  # ``from privis.engine.core import ...``
    assert "privis.methods" in graph["privis.engine.core"]  # the package runs with privis.methods.base
    assert "privis.engine.local" not in graph["privis.engine.run"]  # imported inside a function


def test_the_import_graph_has_no_circle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, "import circle at module level: " + " -> ".join(cycle or [])


def _package(module: str) -> str:
    return module.split(".")[1] if module.count(".") else ""


def test_imports_follow_the_layers_of_design_md() -> None:
    wrong = []
    for module, targets in import_graph().items():
        mine = _package(module)
        for target in targets:
            theirs = _package(target)
            if mine == theirs:
                continue
            if mine not in LAYER and theirs in LAYER:  # shared modules (errors, registry, results, ...) sit below all
                wrong.append(f"{module} -> {target} (a shared module imports a layered package)")
            elif mine in LAYER and theirs in LAYER and LAYER[theirs] < LAYER[mine]:
                wrong.append(f"{module} -> {target} (imports upward)")
    assert not wrong, "\n".join(sorted(wrong))
