"""No import cycle between the modules of ``src/medspikeformer`` — module by module, not only
between subpackages (``test_import_order.py``): ``engine/config.py`` once closed a five-file circle
inside ``engine`` (config → loggers → step → config) that the subpackage scan could not see.

Every ``import`` is read with ``ast``, function-level ones included (a lazy import hides a cycle
from Python's import system, not from a reader). ``from pkg import name`` is an edge to the
module ``pkg.name`` when there is one, else to ``pkg`` (its ``__init__``); a module's parent
packages, which Python runs first, are not edges (every submodule would close a cycle with an
``__init__`` that re-exports it).
"""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

from .helpers import REPO

PACKAGE = "medspikeformer"


def modules_of(src: Path, package: str) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` of ``src/package``."""
    out = {}
    for path in sorted((src / package).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _resolve(name: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``name`` that is a module (``a.b.Class`` → ``a.b``)."""
    parts = name.split(".")
    while parts:
        if ".".join(parts) in modules:
            return ".".join(parts)
        parts.pop()
    return None


def import_graph(src: Path, package: str) -> dict[str, dict[str, int]]:
    """module → {imported module: line of the first such import} within ``package``."""
    modules = modules_of(src, package)
    graph: dict[str, dict[str, int]] = {}
    for name, path in modules.items():
        own = name if path.name == "__init__.py" else name.rpartition(".")[0]
        edges: dict[str, int] = {}
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
            targets: list[str | None] = []
            if isinstance(node, ast.Import):
                targets = [_resolve(a.name, modules) for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = own.split(".")[: len(own.split(".")) - (node.level - 1)]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for a in node.names:
                    sub = f"{module}.{a.name}"
                    targets.append(sub if sub in modules else _resolve(module, modules))
            for target in targets:
                if target is not None and target != name:
                    edges.setdefault(target, node.lineno)
        graph[name] = edges
    return graph


def find_cycles(graph: dict[str, dict[str, int]]) -> list[list[str]]:
    """One cycle (``[a, b, …, a]``) per strongly connected group of modules (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, {})):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = set()
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.add(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(group)

    for v in sorted(graph):
        if v not in index:
            connect(v)
    return [_one_cycle(graph, group) for group in groups]


def _one_cycle(graph: dict[str, dict[str, int]], group: set[str]) -> list[str]:
    """A shortest cycle through the group's first module (breadth first inside the group)."""
    start = min(group)
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(graph[v]):
            if w == start:
                return [*paths[v], start]
            if w in group and w not in paths:
                paths[w] = [*paths[v], w]
                queue.append(w)
    raise AssertionError(f"no cycle through {start}")  # a group always has one


def describe(graph: dict[str, dict[str, int]], cycle: list[str]) -> str:
    """``a:3 -> b:7 -> a``: each module with the line where it imports the next one."""
    steps = [f"{a}:{graph[a][b]}" for a, b in itertools.pairwise(cycle)]
    return " -> ".join([*steps, cycle[-1]])


def test_no_import_cycle_between_modules() -> None:
    graph = import_graph(REPO / "src", PACKAGE)
    cycles = [describe(graph, c) for c in find_cycles(graph)]
    assert cycles == [], "import cycles:\n" + "\n".join(cycles)


def test_the_scan_sees_module_imports() -> None:
    """Guard against a scan that finds nothing: known edges, a function-level one included."""
    graph = import_graph(REPO / "src", PACKAGE)
    assert "medspikeformer.config.schema" in graph["medspikeformer.config.coerce"]
    assert "medspikeformer.engine.loggers" in graph["medspikeformer.engine.config"]  # lazy
    assert "medspikeformer.engine.checkpoint" in graph["medspikeformer.engine.step"]


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_an_injected_cycle_is_found_and_named(tmp_path: Path) -> None:
    """Self-test on a tmp package: a three-module cycle through a lazy import and a relative
    one is reported with its modules and lines; an ``__init__`` re-exporting its modules and a
    ``from pkg import sub`` are not cycles."""
    _write(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg.a import A\nfrom pkg.sub import helper\n",
            "pkg/a.py": "from pkg.b import B\nA = 1\n",
            "pkg/b.py": "def f():\n    from . import c\n\n\nB = 2\n",
            "pkg/c.py": "import pkg.a\n",
            "pkg/sub/__init__.py": "from pkg.sub.helper import x\n",
            "pkg/sub/helper.py": "from pkg import errors\nx = 1\n",
            "pkg/errors.py": "",
        },
    )
    graph = import_graph(tmp_path, "pkg")
    cycles = find_cycles(graph)
    assert cycles == [["pkg.a", "pkg.b", "pkg.c", "pkg.a"]]
    assert describe(graph, cycles[0]) == "pkg.a:1 -> pkg.b:2 -> pkg.c:1 -> pkg.a"
    (tmp_path / "pkg/c.py").write_text("import pkg.errors\n")
    assert find_cycles(import_graph(tmp_path, "pkg")) == []
