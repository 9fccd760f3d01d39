"""The package's layers (docs/design.md "Layout"): data flows one way, with no import loops."""
import ast
from pathlib import Path

import compress

ROOT = Path(compress.__file__).parent
FOUNDATION = {"profiles", "data", "models", "train", "metrics", "paired", "checkpoint", "files", "provenance", "allocator", "kernels", "schema", "device", "published", "resume_point"}
ALGORITHMS = {"sensitivity", "ratios", "pruning", "sparse", "quant", "budget", "iterative", "peer"}
LAYER = {**{m: 0 for m in FOUNDATION}, **{m: 1 for m in ALGORITHMS}, "steps": 2, "report": 2,
         "cli": 3, "reproduce": 3, "study": 3, "verification": 3, "interactive": 3, "__main__": 3, "__init__": 3}


def _module(path: Path) -> str:
    return ".".join(path.relative_to(ROOT).with_suffix("").parts)


def _imports() -> dict[str, set[str]]:
    """Every compress module -> the compress modules it imports anywhere (function-level imports included)."""
    graph = {}
    for path in ROOT.rglob("*.py"):
        name = _module(path)
        package = name.split(".")[:-1]  # the package a relative import starts from
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level:
                base = package[: len(package) - node.level + 1] if node.level > 1 else package
                if node.module:
                    found.add(".".join([*base, node.module]))
                else:  # `from . import steps`: each name is a module
                    found.update(".".join([*base, a.name]) for a in node.names)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("compress"):
                found.add(node.module.removeprefix("compress").lstrip("."))
        graph[name] = {t for t in found if t and t != name}
    return graph


def _top(module: str) -> str:
    return module.split(".")[0]


def test_every_module_has_a_layer():
    assert {_top(m) for m in _imports()} <= set(LAYER)


def test_imports_only_go_down_or_sideways():
    upward = [(m, t) for m, targets in _imports().items() for t in targets
              if _top(t) in LAYER and LAYER[_top(t)] > LAYER[_top(m)]]
    assert not upward, upward


def test_algorithms_never_see_a_session_a_cache_or_the_steps():
    for m, targets in _imports().items():
        if _top(m) in ALGORITHMS:
            assert not {t for t in targets if _top(t) == "steps"}, (m, targets)


def test_reports_read_tables_only():
    for m, targets in _imports().items():
        if _top(m) == "report":
            # `published`: the manifest of the published models, read as a table (which model backs which row)
            assert {_top(t) for t in targets} <= {"report", "files", "provenance", "models", "schema", "published"}, (m, targets)


def test_no_import_loops():
    modules = _imports()
    package = {m.removesuffix(".__init__"): m for m in modules if m.endswith("__init__")}
    graph = {m: {package.get(t, t) for t in ts if package.get(t, t) in modules} for m, ts in modules.items()}
    state = {}

    def visit(m, path):
        state[m] = "open"
        for t in graph.get(m, ()):
            assert state.get(t) != "open", " -> ".join([*path, t])
            if t not in state:
                visit(t, [*path, t])
        state[m] = "done"

    for m in graph:
        if m not in state:
            visit(m, [m])
