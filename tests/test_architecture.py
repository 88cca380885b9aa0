"""The package's structure, as docs/architecture.md states it.

* No import cycle among the modules of ``sim`` (type-only imports included), once the two
  type-only back edges explained in :data:`EXPLAINED_BACK_EDGES` are set aside.
* Layers depend one way: the model core (``sim/*.py``) imports no layer above it; ``batch``
  imports only the core; ``analysis`` and ``calibration`` (one layer) the core and ``batch``; ``explorer`` anything below it;
  only the CLI (and ``__main__``) sits on top. Lazy imports inside functions count too.
* No module is longer than :data:`MAX_LINES` unless :data:`LONG_MODULES` says why.
* docs/architecture.md and the README's layout section name every module that exists.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SIM = ROOT / "sim"
MAX_LINES = 600

#: Modules allowed past MAX_LINES, and why.
LONG_MODULES = {
    "sim.scenario": "the scenario schema: every parameter's declaration with its default, "
                    "bounds, unit and source (declarations, not logic; docs/MODEL.md section 8 "
                    "is generated from it), plus loading with extends/--set",
}

#: Type-only imports that point back up the core (importer -> imported), and why. Without
#: them the import graph has no cycle; each of them sits in an ``if TYPE_CHECKING:`` block.
EXPLAINED_BACK_EDGES = {
    ("sim.agents", "sim.model"):
        "agents are Mesa agents: mesa.Agent(model) needs the model, and the model creates them",
    ("sim.metrics", "sim.model"):
        "metrics.record_day/summarise read the finished day of a model; the annotation names it",
}

LAYER_ORDER = {"core": 0, "batch": 1, "analysis": 2, "explorer": 3, "cli": 4}


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(p): p for p in sorted(SIM.rglob("*.py"))}


def _layer(module: str) -> str:
    parts = module.split(".")
    if module in ("sim.cli", "sim.cli_checks", "sim.__main__"):
        return "cli"
    if len(parts) >= 2 and parts[1] == "calibration":
        return "analysis"  # one layer: both read batches; each uses the other's pieces
    if len(parts) >= 2 and parts[1] in ("batch", "analysis", "explorer"):
        return parts[1]
    return "core"


def _imports(module: str) -> set[str]:
    """Modules of ``sim`` that ``module`` imports anywhere (top level, functions, TYPE_CHECKING)."""
    path = MODULES[module]
    pkg = module if path.name == "__init__.py" else module.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = pkg.split(".")
                base = base[: len(base) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            names = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for n in names:
            while n and n not in MODULES:
                n = n.rpartition(".")[0]
            if n and n != module and n.startswith("sim"):
                out.add(n)
    out.discard("sim")  # the package's __init__ re-exports; importing it is importing the core
    return out


GRAPH = {m: _imports(m) for m in MODULES}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles_except_the_explained_back_edges():
    graph = {m: {d for d in deps if (m, d) not in EXPLAINED_BACK_EDGES} for m, deps in GRAPH.items()}
    assert not _cycles(graph), f"import cycles: {_cycles(graph)}"


def test_the_cycle_test_can_fail():
    graph = {m: set(deps) for m, deps in GRAPH.items()}
    graph["sim.codes"] = {"sim.model"}  # codes -> model -> ... -> codes
    assert _cycles(graph)


def _type_checking_only(importer: str, imported: str) -> bool:
    tree = ast.parse(MODULES[importer].read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for sub in ast.walk(node):
                sub.type_only = True  # type: ignore[attr-defined]
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module == imported:
            if not getattr(node, "type_only", False):
                return False
    return True


@pytest.mark.parametrize("edge", sorted(EXPLAINED_BACK_EDGES))
def test_explained_back_edges_are_type_only(edge):
    assert _type_checking_only(*edge), f"{edge[0]} imports {edge[1]} at run time"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_layers_depend_one_way(module):
    mine = LAYER_ORDER[_layer(module)]
    upward = sorted(m for m in GRAPH[module] if LAYER_ORDER[_layer(m)] > mine)
    assert not upward, f"{module} ({_layer(module)}) imports the layer above: {upward}"
    if _layer(module) == "batch":
        assert not [m for m in GRAPH[module] if _layer(m) == "analysis"]


@pytest.mark.parametrize("module", sorted(MODULES))
def test_no_module_is_too_long_without_a_reason(module):
    n = len(MODULES[module].read_text(encoding="utf-8").splitlines())
    if module in LONG_MODULES:
        return
    assert n <= MAX_LINES, f"{module} has {n} lines (> {MAX_LINES}): split it by concept or say why in LONG_MODULES"


@pytest.mark.parametrize("doc", ["docs/architecture.md", "README.md"])
def test_docs_name_every_module(doc):
    text = (ROOT / doc).read_text(encoding="utf-8")
    missing = [str(p.relative_to(ROOT)) for p in sorted(SIM.rglob("*.py"))
               if p.name not in ("__init__.py", "__main__.py")
               and str(p.relative_to(ROOT)) not in text and p.name not in text]
    assert not missing, f"{doc} does not mention: {missing}"


def test_docs_name_no_module_that_does_not_exist():
    import re

    text = (ROOT / "docs/architecture.md").read_text(encoding="utf-8")
    named = set(re.findall(r"`(sim/[\w/]+\.py)`", text))
    gone = sorted(n for n in named if not (ROOT / n).is_file())
    assert not gone, f"docs/architecture.md names modules that do not exist: {gone}"
