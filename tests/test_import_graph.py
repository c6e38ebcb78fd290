"""The package's import graph: no circle, and the model imports nothing from the layers above
it (engines, runner, results, compare, check, sweep, plots, the CLI).

Every ``import`` counts, at module level or inside a function: a lazy import still ties two
modules together (the built-in engines are listed in engines/builtin.py rather than registering
themselves with their package, so no edge needs leaving out).
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "migrc_bench"

# What the model may use: the package's version, the layers below it, and itself.
MODEL_MAY_IMPORT = ("migrc_bench", "migrc_bench.errors", "migrc_bench.units", "migrc_bench.config",
                    "migrc_bench.cache", "migrc_bench.atomic", "migrc_bench.interrupts")
MODEL_MAY_IMPORT_PACKAGES = ("migrc_bench.model", "migrc_bench.trace")


def modules() -> dict[str, tuple[Path, bool]]:
    out = {}
    for p in PKG.rglob("*.py"):
        parts = list(p.relative_to(PKG.parent).with_suffix("").parts)
        is_pkg = parts[-1] == "__init__"
        out[".".join(parts[:-1] if is_pkg else parts)] = (p, is_pkg)
    return out


def graph() -> dict[str, set[str]]:
    mods = modules()
    edges: dict[str, set[str]] = {}
    for name, (path, is_pkg) in mods.items():
        package = name if is_pkg else name.rsplit(".", 1)[0]
        tree = ast.parse(path.read_text())
        deps = set()
        for node in ast.walk(tree):
            targets = []
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package.split(".")
                    base = base[: len(base) - node.level + 1]
                    mod = ".".join(base + ([node.module] if node.module else []))
                else:
                    mod = node.module or ""
                targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            deps.update(t for t in targets if t in mods and t != name)
        edges[name] = deps
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(v: str) -> list[str] | None:
        state[v] = 1
        stack.append(v)
        for w in sorted(edges[v]):
            if state.get(w) == 1:
                return stack[stack.index(w):] + [w]
            if w not in state and (found := visit(w)):
                return found
        stack.pop()
        state[v] = 2
        return None

    for v in sorted(edges):
        if v not in state and (found := visit(v)):
            return found
    return None


def test_the_graph_sees_the_imports():
    edges = graph()
    assert "migrc_bench.catalogue" in edges["migrc_bench.check"]
    assert "migrc_bench.catalogue" in edges["migrc_bench.compare"]
    assert "migrc_bench.model.migrate_reason" in edges["migrc_bench.model.tiering"]
    assert "migrc_bench.engines.baseline" in edges["migrc_bench.engines.builtin"]  # lazy ones too
    assert "migrc_bench.trace.gencore" in edges["migrc_bench.trace.gups"]
    assert "migrc_bench.trace.generators" in edges["migrc_bench.trace.generated"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]


def test_no_import_circle():
    assert find_cycle(graph()) is None


def upward_imports(layer: str, may_import_packages: tuple[str, ...]) -> list[str]:
    bad = []
    for name, deps in graph().items():
        if not name.startswith(layer):
            continue
        for d in deps:
            if d not in MODEL_MAY_IMPORT and not d.startswith(may_import_packages):
                bad.append(f"{name} imports {d}")
    return bad


def test_the_model_imports_nothing_from_above():
    bad = upward_imports("migrc_bench.model", MODEL_MAY_IMPORT_PACKAGES)
    assert not bad, bad


def test_the_trace_layer_imports_nothing_from_above():
    """The model reads traces, so the trace layer (readers, the generators, their registry and
    the generated-trace cache) keeps the model's rule, and does not import the model either."""
    bad = upward_imports("migrc_bench.trace", ("migrc_bench.trace",))
    assert not bad, bad


def test_the_old_import_paths_still_work():
    from migrc_bench.check import load_runs, write_baseline  # noqa: F401
    from migrc_bench.compare import KNOWN, better  # noqa: F401
    from migrc_bench.engines.base import MR_DEMOTION, MR_NUMA_MISPLACED
    from migrc_bench.model import migrate_reason

    assert (MR_DEMOTION, MR_NUMA_MISPLACED) == (migrate_reason.MR_DEMOTION,
                                                migrate_reason.MR_NUMA_MISPLACED)
